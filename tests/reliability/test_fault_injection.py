"""Nothing lost when the study process dies: SIGKILL at random moments, then ``--resume``.

Each seeded trial starts ``llem run study.yaml`` (2 fake-engine configs × 2 cycles, no
gaps) as a real process, SIGKILLs it after a random delay (anywhere from start-up to the
end of the study), checks what is on disk, then runs ``--resume`` (or a fresh run when
the study had not yet created its manifest) and checks the end state:

- the manifest always loads (after the kill, and at the end);
- every planned (config, cycle) is in it exactly once, completed, pointing at its own
  result folder whose result.json parses and carries the entry's config hash;
- the study folder holds exactly one run folder per run: a folder the killed parent
  never recorded was adopted on resume, a partial one moved to ``_incomplete/``;
- every result.json anywhere in the study folder parses (a run killed while writing
  leaves a folder without result.json, never a torn one);
- the killed process's children (the fork server and any experiment) exit on their own.

A kill lands between a child's write and the parent's record only now and then, so one
more trial makes that window certain: it stops the study process (SIGSTOP) while a run
is in flight, lets the child write its folder, then kills the parent.

The trial processes cannot import torch or transformers (a sitecustomize on their
PYTHONPATH marks them unimportable): a fake-engine study needs neither, and the fork
server preloads them only for transformers runs. Loading them would cost 5-30 s per
process on a loaded 2-core machine and put 50 trials far over the 10-minute budget, so a
regression there fails the trials instead of slowing them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from llenergymeasure.records.files import load_result
from llenergymeasure.study.manifest import MANIFEST_FILE, Manifest

pytestmark = pytest.mark.slow

N_TRIALS = 50
STUDY = """\
study_name: faults
engine: fake
task: {dataset: {n_prompts: 2}, max_output_tokens: 2}
fake: {token_latency_ms: 20}
measurement: {warmup: {enabled: false}, baseline: {enabled: false}, energy_sampler: estimate}
sweep:
  fake.batch_size: [1, 2]
study_execution: {n_cycles: 2, experiment_order: interleave, experiment_gap_s: 0, cycle_gap_s: 0}
"""
N_PLANNED = 4
# The kill lands uniformly in [0, MAX_DELAY_S): start-up, each run, the summary, or after.
MAX_DELAY_S = 6.0
NO_TORCH = """\
import sys

# Fault-injection trials: a fake-engine study must need neither.
for name in ("torch", "transformers"):
    sys.modules[name] = None
"""


@pytest.fixture(scope="module")
def no_torch_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("no-torch")
    (folder / "sitecustomize.py").write_text(NO_TORCH, encoding="utf-8")
    return folder


def _env(no_torch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(no_torch), env.get("PYTHONPATH")) if p)
    return env


def _llem(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "llenergymeasure", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _study_dirs(results: Path) -> list[Path]:
    return (
        sorted(p for p in results.iterdir() if (p / MANIFEST_FILE).is_file())
        if results.is_dir()
        else []
    )


def _kill_and_wait(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    """SIGKILL the study process alone; return its descendants of that moment."""
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return descendants


def _check_results(study_dir: Path) -> Manifest:
    manifest = Manifest.load(study_dir)
    keys = [entry.key for entry in manifest.entries]
    assert len(keys) == len(set(keys)) == N_PLANNED, keys
    folders: set[str] = set()
    for entry in manifest.entries:
        assert entry.status == "completed", entry
        assert entry.result is not None and entry.result not in folders
        folders.add(entry.result)
        result = load_result(study_dir / entry.result)
        assert result.measurement_config_hash == entry.config_hash
    for result_file in study_dir.glob("*/result.json"):
        load_result(result_file)  # every result on disk parses, referenced or not
    runs = sorted(p.name[:6] for p in study_dir.iterdir() if p.name[:3].isdigit())
    assert runs == sorted(f"{e.index:03d}_c{e.cycle}" for e in manifest.entries), runs
    return manifest


@dataclass(frozen=True)
class Trial:
    delay_s: float
    elapsed_s: float
    done_at_kill: int | None  # runs completed when the kill came; None = no manifest yet
    failure: str | None  # the assertion or error that ended the trial early, else None


def _trial(seed: int, root: Path, no_torch: Path) -> Trial:
    began = time.monotonic()
    delay_s = random.Random(seed).uniform(0.0, MAX_DELAY_S)
    done: list[int | None] = [None]
    try:
        _kill_then_resume(root, no_torch, delay_s, done)
    except Exception:  # reported by the trial's own test
        return Trial(delay_s, time.monotonic() - began, done[0], traceback.format_exc())
    return Trial(delay_s, time.monotonic() - began, done[0], None)


def _kill_then_resume(root: Path, no_torch: Path, delay_s: float, done: list[int | None]) -> None:
    root.mkdir()
    (root / "study.yaml").write_text(STUDY, encoding="utf-8")
    env = _env(no_torch)
    results = root / "results"

    first = _llem("run", "study.yaml", "-q", cwd=root, env=env)
    time.sleep(delay_s)
    descendants = _kill_and_wait(first)
    # The fork server sees its parent gone; each experiment child has PDEATHSIG.
    _, alive = psutil.wait_procs(descendants, timeout=20)
    assert not alive, f"left running after the kill: {alive}"
    for study_dir in _study_dirs(results):
        killed = Manifest.load(study_dir)  # never torn, whenever the kill came
        done[0] = sum(entry.status == "completed" for entry in killed.entries)

    resume = ["--resume"] if _study_dirs(results) else []
    second = _llem("run", "study.yaml", "-q", *resume, cwd=root, env=env)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert "Traceback" not in err, err  # whatever the kill left, the resume says it plainly

    (study_dir,) = _study_dirs(results)
    manifest = _check_results(study_dir)
    assert manifest.status == "completed"
    # Folders without a manifest can only be a study killed before its first write.
    for other in results.iterdir():
        if other != study_dir:
            assert not any(other.glob("*/result.json")), other


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory, no_torch_path: Path) -> dict[int, Trial]:
    """Every trial, two at a time: a trial mostly waits on process start-up and sleeps."""
    base = tmp_path_factory.mktemp("sigkill-trials")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            seed: pool.submit(_trial, seed, base / f"trial-{seed:02d}", no_torch_path)
            for seed in range(N_TRIALS)
        }
        return {seed: future.result() for seed, future in futures.items()}


@pytest.mark.parametrize("seed", range(N_TRIALS))
def test_sigkill_at_a_random_moment_then_resume_loses_nothing(
    seed: int, trials: dict[int, Trial]
) -> None:
    trial = trials[seed]
    assert trial.failure is None, f"kill after {trial.delay_s:.2f} s:\n{trial.failure}"


def test_the_kills_landed_before_during_and_between_runs(trials: dict[int, Trial]) -> None:
    done = [trial.done_at_kill for trial in trials.values()]
    assert any(n is None or n == 0 for n in done), done  # before the first run completed
    assert any(n is not None and 0 < n < N_PLANNED for n in done), done  # part-way through
    total_s = sum(trial.elapsed_s for trial in trials.values())
    print(f"{len(trials)} trials, {total_s:.0f} s of trial time; runs done at the kill: {done}")


# ------------------------------------------------------------------------ SIGTERM

SLOW_STUDY = STUDY.replace("token_latency_ms: 20", "token_latency_ms: 1000")


def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached within {timeout_s:g} s")


def _child_running(results: Path) -> bool:
    """A run's child has started its experiment (its log has the attempt's header)."""
    for log in results.glob("*/logs/*.log"):
        if "attempt started" in log.read_text(encoding="utf-8", errors="replace"):
            return True
    return False


def test_sigterm_stops_a_study_like_ctrl_c_and_resume_finishes_it(
    tmp_path: Path, no_torch_path: Path
) -> None:
    (tmp_path / "study.yaml").write_text(SLOW_STUDY, encoding="utf-8")
    env = _env(no_torch_path)
    results = tmp_path / "results"
    study = _llem("run", "study.yaml", cwd=tmp_path, env=env)
    _wait_for(lambda: _child_running(results), 120)
    descendants = psutil.Process(study.pid).children(recursive=True)
    study.send_signal(signal.SIGTERM)
    _, err = study.communicate(timeout=120)
    assert study.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err and "--resume" in err
    _, alive = psutil.wait_procs(descendants, timeout=20)
    assert not alive, f"left running after SIGTERM: {alive}"
    (study_dir,) = _study_dirs(results)
    manifest = Manifest.load(study_dir)
    assert manifest.status == "interrupted"
    statuses = [entry.status for entry in manifest.entries]
    assert "interrupted" in statuses and "running" not in statuses

    resumed = _llem("run", "study.yaml", "--resume", "-q", cwd=tmp_path, env=env)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    _check_results(study_dir)


def test_sigterm_stops_a_single_experiment_with_exit_130(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(
        "engine: fake\nfake: {token_latency_ms: 20}\n"
        "task: {model: smollm2-135m, dataset: {n_prompts: 4}, max_output_tokens: 100}\n"
        "measurement: {energy_sampler: estimate, warmup: {n_warmup: 1}}\n",
        encoding="utf-8",
    )
    log = tmp_path / "stderr.txt"
    with log.open("w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llenergymeasure", "run", "slow.yaml"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        # the window opens once warm-up is done: stop the run inside it
        _wait_for(lambda: "warm-up" in log.read_text(encoding="utf-8"), 120)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    err = log.read_text(encoding="utf-8")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: interrupted"), err
    assert not (tmp_path / "results").exists()


def _result_of(results: Path, index: int, cycle: int) -> bool:
    return any(results.glob(f"*/{index:03d}_c{cycle}_*/result.json"))


def test_a_run_written_but_not_recorded_when_the_study_died_is_adopted_on_resume(
    tmp_path: Path, no_torch_path: Path
) -> None:
    (tmp_path / "study.yaml").write_text(SLOW_STUDY, encoding="utf-8")
    env = _env(no_torch_path)
    results = tmp_path / "results"
    study = _llem("run", "study.yaml", "-q", cwd=tmp_path, env=env)
    try:
        _wait_for(lambda: _child_running(results), 120)
        study.send_signal(signal.SIGSTOP)  # the parent stops; its child runs on
        _wait_for(lambda: _result_of(results, 1, 1), 120)
        (study_dir,) = _study_dirs(results)
        written = Manifest.load(study_dir).entries[0]
        assert (written.index, written.cycle, written.status) == (1, 1, "running")
    finally:
        _kill_and_wait(study)
    resumed = _llem("run", "study.yaml", "--resume", "-q", cwd=tmp_path, env=env)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "Traceback" not in err
    manifest = _check_results(study_dir)
    adopted = manifest.entries[0]
    assert adopted.adopted and adopted.n_attempts == 1
    assert not any(e.adopted for e in manifest.entries[1:])
    assert not (study_dir / "_incomplete").exists()
