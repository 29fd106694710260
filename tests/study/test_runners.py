"""Runs in another environment's interpreter (a runner): same guarantees as forked children.

The "other" interpreter here is this virtual environment's own python, started fresh
as ``python -m llenergymeasure.study`` with the config as JSON: the code path a
vLLM run takes from the base environment into ``.venv-vllm``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import child_targets
import pytest
import runner_targets
import yaml
from study_helpers import Phases, gone, isolated, tiny

from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import UserConfig, load_user_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.engines.registry import RUNNER_ENV_PREFIX, Runner, find_runner
from llenergymeasure.errors import ConfigError, EngineError, PreflightError
from llenergymeasure.experiment.preflight import run_preflight
from llenergymeasure.study.events import RunEvent
from llenergymeasure.study.isolation import log_path, run_in_runner

HERE = {"fake": sys.executable}  # this interpreter, started fresh: a runner of `fake`


def _runner() -> Runner:
    return Runner("fake", Path(sys.executable), "test")


def _entry(path: Path) -> dict[str, object]:
    facts: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return facts


def test_a_runner_runs_the_experiment_in_a_fresh_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = tmp_path / "entry.json"
    monkeypatch.setenv(runner_targets.ENTRY_FILE_ENV, str(entry))
    config = tiny()
    steps = Phases()
    outcome = isolated(
        tmp_path,
        4,
        2,
        config=config,
        on_progress=steps,
        target=runner_targets.noting_entry,
        runners=HERE,
    )
    assert outcome.status == "completed", outcome.message
    facts = _entry(entry)
    assert facts["main"] == "llenergymeasure.study.__main__"  # not a fork-server child
    assert facts["pid"] == facts["pgid"] != os.getpid()  # it leads its own process group
    # The config crossed as JSON and came back as the same config.
    assert facts["config_hash"] == measurement_config_hash(config)
    assert outcome.result_dir is not None and outcome.result_dir.parent == tmp_path
    assert outcome.result_dir.name.startswith("004_c2_")
    result = json.loads((outcome.result_dir / "result.json").read_text(encoding="utf-8"))
    assert result["tokens"]["n_output_tokens"] == 4
    assert outcome.metrics is not None
    assert outcome.metrics.output_tokens_per_s == result["throughput"]["output_tokens_per_s"]
    assert outcome.metrics.j_per_output_token == result["energy"]["j_per_output_token"]
    assert steps.index("loading model") < steps.index("measuring")
    assert not log_path(tmp_path, 4, 2).exists()  # quiet and successful: no log


def test_a_failure_in_a_runner_is_typed_with_its_traceback_in_the_log(tmp_path: Path) -> None:
    outcome = isolated(tmp_path, 3, target=child_targets.always_fail, runners=HERE)
    assert outcome.status == "failed"
    assert outcome.message == "ValueError: this target always fails"
    assert outcome.log_path == log_path(tmp_path, 3, 1)
    log = outcome.log_path.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and "in always_fail" in log


def test_a_hang_in_a_runner_times_out_and_its_process_group_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pids"
    monkeypatch.setenv(child_targets.PID_FILE_ENV, str(pid_file))
    began = time.monotonic()
    outcome = isolated(
        tmp_path, timeout_s=8, target=child_targets.hang_with_grandchild, runners=HERE
    )
    assert outcome.status == "timed_out", outcome.message
    assert time.monotonic() - began < 8 + 10
    child_pid, grandchild_pid = map(int, pid_file.read_text().split())
    assert gone(child_pid) and gone(grandchild_pid)
    assert outcome.log_path is not None  # the stack dumped just before the deadline
    assert "hang_with_grandchild" in outcome.log_path.read_text(encoding="utf-8")


def test_a_stop_interrupts_a_runner_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = tmp_path / "pids"
    monkeypatch.setenv(child_targets.PID_FILE_ENV, str(pid_file))
    stop = threading.Event()

    def on_progress(event: RunEvent) -> None:
        if event.kind == "phase" and event.text == "hanging":
            stop.set()

    outcome = isolated(
        tmp_path,
        on_progress=on_progress,
        stop_event=stop,
        target=child_targets.hang_with_grandchild,
        runners=HERE,
    )
    assert outcome.status == "interrupted"
    assert all(gone(int(pid)) for pid in pid_file.read_text().split())


def _fake_interpreter(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "venv" / "bin" / "python"
    script.parent.mkdir(parents=True)
    script.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_a_runner_that_cannot_start_is_a_crash_naming_its_last_words(tmp_path: Path) -> None:
    python = _fake_interpreter(
        tmp_path, "echo \"ModuleNotFoundError: No module named 'llenergymeasure'\" >&2; exit 1"
    )
    outcome = isolated(tmp_path / "study", timeout_s=30, runners={"fake": str(python)})
    assert outcome.status == "crashed"
    assert outcome.exit_code == 1
    assert outcome.message is not None
    assert "No module named 'llenergymeasure'" in outcome.message


def test_a_missing_runner_fails_the_run_and_the_preflight(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "python")
    outcome = isolated(tmp_path, timeout_s=30, runners={"fake": missing})
    assert outcome.status == "failed"
    assert outcome.error_type == "ConfigError"
    assert outcome.message is not None and missing in outcome.message
    with pytest.raises(ConfigError, match="not an executable file"):
        find_runner("fake", {"fake": missing})


def test_a_single_run_in_a_runner_returns_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = tmp_path / "entry.json"
    monkeypatch.setenv(runner_targets.ENTRY_FILE_ENV, str(entry))
    steps = Phases()
    folder = run_in_runner(
        tiny(),
        _runner(),
        results_root=tmp_path / "results",
        on_progress=steps,
        target=runner_targets.noting_entry,
    )
    assert folder.parent.parent == tmp_path / "results"
    assert folder.name.startswith("001_c1_")
    assert (folder / "result.json").is_file()
    assert _entry(entry)["main"] == "llenergymeasure.study.__main__"
    assert "measuring" in steps
    assert not (tmp_path / "results" / "logs").exists()


def test_a_single_run_raises_the_childs_error_class_with_its_hint(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="the scripted engine failed") as caught:
        run_in_runner(
            tiny(),
            _runner(),
            results_root=tmp_path,
            target=runner_targets.engine_error_with_hint,
        )
    assert caught.value.hint == "a scripted hint"
    bad_model = tiny().model_copy(
        update={"task": tiny().task.model_copy(update={"model": str(tmp_path / "no.gguf")})}
    )
    with pytest.raises(PreflightError) as preflight:
        run_in_runner(bad_model, _runner(), results_root=tmp_path)
    assert any("no.gguf" in p for p in preflight.value.problems)


def test_explicit_runners_win_and_importable_engines_need_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _fake_interpreter(tmp_path, "exit 0")
    monkeypatch.delenv(RUNNER_ENV_PREFIX + "FAKE", raising=False)
    assert find_runner("fake", {}) is None  # importable here: runs here
    monkeypatch.setenv(RUNNER_ENV_PREFIX + "FAKE", sys.executable)
    from_env = find_runner("fake", {})
    assert from_env is not None and from_env.python == Path(sys.executable)
    assert from_env.source == "$LLEM_RUNNER_FAKE"
    configured = find_runner("fake", {"fake": str(other)})
    assert configured is not None and configured.python == other  # the user config wins
    assert configured.source == "user config `runners.fake`"


def test_an_uninstalled_engine_finds_the_venv_beside_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _vllm_importable():
        pytest.skip("vllm is importable in this environment: it needs no runner")
    python = _fake_interpreter(tmp_path / "project" / ".venv-vllm-root", "exit 0")
    beside = tmp_path / "project" / ".venv-vllm" / "bin" / "python"
    beside.parent.mkdir(parents=True)
    beside.symlink_to(python)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "project" / ".venv"))
    monkeypatch.delenv(RUNNER_ENV_PREFIX + "VLLM", raising=False)
    found = find_runner("vllm", {})
    assert found is not None and found.python == beside.absolute()
    assert "found beside this environment" in found.source


def _vllm_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def test_preflight_here_defers_the_engine_checks_to_its_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _vllm_importable():
        pytest.skip("vllm is importable in this environment")
    monkeypatch.setattr(sys, "prefix", str(tmp_path / ".venv"))  # no .venv-vllm beside it
    monkeypatch.delenv(RUNNER_ENV_PREFIX + "VLLM", raising=False)
    config = ExperimentConfig.model_validate(
        {"engine": "vllm", "task": {"dataset": {"n_prompts": 2}}}
    )
    python = _fake_interpreter(tmp_path, "exit 0")
    with pytest.raises(PreflightError, match="vllm is not installed"):
        run_preflight(config, user=UserConfig())
    try:
        plan = run_preflight(config, user=UserConfig(runners={"vllm": str(python)}))
    except PreflightError as err:  # only the bundled model may be missing on this host
        assert all("vllm" not in p for p in err.problems), err.problems
    else:
        assert plan.runner is not None and plan.runner.python == python


def test_user_config_runners_name_known_engines_only(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"runners": {"vlm": "/usr/bin/python3"}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean `vllm`"):
        load_user_config(path)


def test_llem_run_goes_through_the_configured_runner(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text(yaml.safe_dump({"runners": {"fake": sys.executable}}), encoding="utf-8")
    env = {**os.environ, "LLEM_USER_CONFIG": str(user)}
    out = tmp_path / "out"
    args = ["--engine", "fake", "-n", "4", "--max-output-tokens", "4", "--energy", "estimate"]
    proc = subprocess.run(
        [sys.executable, "-m", "llenergymeasure", "run", *args, "--output", str(out), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"engine `fake` runs in {sys.executable}" in proc.stderr
    assert "measuring" in proc.stderr  # the child's steps shown as they happened
    printed = json.loads(proc.stdout)
    [folder] = list(out.glob("*/001_c1_*"))
    written = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    assert printed["experiment_id"] == written["experiment_id"]
    assert written["tokens"]["n_output_tokens"] == 16
