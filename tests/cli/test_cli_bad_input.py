"""`llem run` on bad input: the right exit code, one `error:` line (+ a hint), no files.

Every case runs the real CLI in a subprocess, so what is checked is what a user
sees: exit code, stderr, and that no results folder was created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

EXIT_RUNTIME = 1
EXIT_USAGE = 2

# The fake engine on the bundled model: nothing loads torch, and naming a model
# keeps the run out of the zero-config quick look (whose note would add stderr lines).
FAKE = ("--engine", "fake", "--model", "smollm2-135m")
SMALL = ("-n", "2", "--max-output-tokens", "2")

# A study file (a reduced copy of examples/study.yaml) with a typo in its execution block.
STUDY_YAML = """\
study_name: batch-and-precision
task:
  model: smollm2-135m
  dataset: {n_prompts: 40}
engine: [transformers, vllm]
sweep:
  task.max_output_tokens: [32, 128]
  transformers.batch_size: [1, 4, 16]
experiments:
  - engine: transformers
    transformers: {batch_size: 32, dtype: bfloat16}
study_execution:
  n_cylces: 3
"""


@dataclass(frozen=True)
class Case:
    """One bad invocation. ``files`` are created under the working folder (None = a folder)."""

    args: tuple[str, ...]
    exit_code: int
    names: tuple[str, ...]  # each must appear in the `error:` line
    files: Mapping[str, str | bytes | None] = field(default_factory=dict)
    anywhere: tuple[str, ...] = ()  # each must appear somewhere on stderr (e.g. in the hint)


CASES: dict[str, Case] = {
    "config-missing": Case(("missing.yaml", *SMALL), EXIT_USAGE, ("missing.yaml", "not found")),
    "config-is-a-directory": Case(
        ("conf.yaml",), EXIT_USAGE, ("conf.yaml", "not a file"), {"conf.yaml": None}
    ),
    "config-txt-suffix": Case(
        ("conf.txt",), EXIT_USAGE, ("conf.txt", ".yaml"), {"conf.txt": "engine: fake\n"}
    ),
    "config-yaml-syntax-error": Case(
        ("bad.yaml",),
        EXIT_USAGE,
        ("bad.yaml", "line 4"),
        {"bad.yaml": "engine: fake\ntask:\n  model: [a\n  x: 1\n"},
    ),
    "config-json-syntax-error": Case(
        ("bad.json",),
        EXIT_USAGE,
        ("bad.json", "line 2"),
        {"bad.json": '{"engine": "fake",\n "task": }\n'},
    ),
    "config-empty": Case(("empty.yaml",), EXIT_USAGE, ("empty.yaml", "empty"), {"empty.yaml": ""}),
    "config-top-level-list": Case(
        ("list.yaml",), EXIT_USAGE, ("list.yaml", "list"), {"list.yaml": "- engine: fake\n"}
    ),
    "config-unknown-top-level-key": Case(
        ("unknown.yaml",),
        EXIT_USAGE,
        ("`taks`", "did you mean `task`"),
        {"unknown.yaml": "engine: fake\ntaks: {max_output_tokens: 2}\n"},
    ),
    "config-unknown-nested-key": Case(
        ("nested.yaml",),
        EXIT_USAGE,
        ("`task.datset`", "dataset"),
        {"nested.yaml": "engine: fake\ntask:\n  datset: {n_prompts: 2}\n"},
    ),
    "config-wrong-type": Case(
        ("type.yaml",),
        EXIT_USAGE,
        ("task.max_output_tokens", "integer"),
        {"type.yaml": "engine: fake\ntask: {max_output_tokens: lots}\n"},
    ),
    "flag-negative-n-prompts": Case(
        (*FAKE, "-n", "-3", "--max-output-tokens", "2"),
        EXIT_USAGE,
        ("task.dataset.n_prompts", "greater than or equal to 1"),
    ),
    "flag-zero-batch-size": Case(
        (*FAKE, *SMALL, "--batch-size", "0"), EXIT_USAGE, ("fake.batch_size",)
    ),
    "config-nan-temperature": Case(
        ("nan.yaml",),
        EXIT_USAGE,
        ("transformers.sampling.temperature", "finite"),
        # Rejected while validating, before the transformers engine is imported.
        {"nan.yaml": "engine: transformers\ntransformers:\n  sampling: {temperature: .nan}\n"},
    ),
    "config-engine-section-mismatch": Case(
        ("section.yaml",),
        EXIT_USAGE,
        ("`vllm:`", "engine: fake"),
        {"section.yaml": "engine: fake\nvllm: {dtype: float16}\n"},
    ),
    "flag-unknown-engine": Case(
        ("--engine", "foo", "--model", "smollm2-135m", *SMALL),
        EXIT_USAGE,
        ("`engine`", "fake"),
    ),
    "model-unknown-id": Case(
        ("--engine", "fake", "--model", "no/such-model", *SMALL),
        EXIT_USAGE,
        ("no/such-model", "not found"),
    ),
    "model-non-gguf-file": Case(
        ("--engine", "fake", "--model", "weights.bin", *SMALL),
        EXIT_USAGE,
        ("weights.bin", ".gguf"),
        {"weights.bin": b"\x00not a model"},
    ),
    "model-folder-without-config-json": Case(
        ("--engine", "fake", "--model", "my-model", *SMALL),
        EXIT_USAGE,
        ("my-model", "config.json"),
        {"my-model": None},
    ),
    "dataset-empty-jsonl": Case(
        (*FAKE, *SMALL, "--dataset", "empty.jsonl"),
        EXIT_USAGE,
        ("empty.jsonl", "no prompts"),
        {"empty.jsonl": ""},
    ),
    "dataset-broken-json-lines": Case(
        (*FAKE, *SMALL, "--dataset", "broken.jsonl"),
        EXIT_USAGE,
        ("broken.jsonl", "line 2", "line 4", "invalid JSON"),
        {"broken.jsonl": '{"prompt": "a"}\n{"prompt": \n{"prompt": "b"}\nnot json\n'},
    ),
    "dataset-non-utf8": Case(
        (*FAKE, *SMALL, "--dataset", "latin1.jsonl"),
        EXIT_USAGE,
        ("latin1.jsonl", "line 2", "not UTF-8"),
        {"latin1.jsonl": b'{"prompt": "a"}\n{"prompt": "caf\xe9"}\n{"prompt": "b"}\n'},
    ),
    "dataset-fewer-prompts-than-requested": Case(
        (*FAKE, "--dataset", "two.jsonl", "-n", "5", "--max-output-tokens", "2"),
        EXIT_USAGE,
        ("two.jsonl", "2 prompts", "n_prompts=5"),
        {"two.jsonl": '{"prompt": "a"}\n{"prompt": "b"}\n'},
    ),
    "dataset-unknown-source-name": Case(
        (*FAKE, *SMALL, "--dataset", "biltin"),
        EXIT_USAGE,
        ("biltin",),
        anywhere=("did you mean `builtin`",),
    ),
    "flag-dtype-float64": Case(
        ("--engine", "transformers", "--model", "smollm2-135m", *SMALL, "--dtype", "float64"),
        EXIT_USAGE,
        ("transformers.dtype", "float16"),
    ),
    "flag-dtype-on-engine-without-dtype": Case(
        (*FAKE, *SMALL, "--dtype", "float16"), EXIT_USAGE, ("--dtype", "fake")
    ),
    "study-unknown-execution-key": Case(
        ("study.yaml",), EXIT_USAGE, ("n_cylces", "n_cycles"), {"study.yaml": STUDY_YAML}
    ),
    "energy-sampler-unavailable": Case(
        (*FAKE, *SMALL, "--energy", "rapl"), EXIT_USAGE, ("pre-flight", "rapl")
    ),
    "energy-sampler-unknown": Case(
        (*FAKE, *SMALL, "--energy", "nosuch"),
        EXIT_USAGE,
        ("measurement.energy_sampler", "estimate"),
    ),
    "flag-unknown": Case((*FAKE, *SMALL, "--nosuch-flag"), EXIT_USAGE, ("--nosuch-flag",)),
    "flag-not-an-integer": Case((*FAKE, "-n", "abc"), EXIT_USAGE, ("--n-prompts",)),
}


def _rapl_readable() -> bool:
    counter = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
    return os.access(counter, os.R_OK)


def _make_files(root: Path, files: Mapping[str, str | bytes | None]) -> None:
    for name, content in files.items():
        path = root / name
        if content is None:
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _run_case(root: Path, case: Case) -> subprocess.CompletedProcess[str]:
    root.mkdir()
    _make_files(root, case.files)
    return subprocess.run(
        [sys.executable, "-m", "llenergymeasure", "run", *case.args, "--output", "out"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Every case's working folder and finished process, run concurrently to save wall time."""
    base = tmp_path_factory.mktemp("bad-input")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {
            case_id: pool.submit(_run_case, base / case_id, case) for case_id, case in CASES.items()
        }
        return {case_id: (base / case_id, f.result()) for case_id, f in futures.items()}


@pytest.mark.parametrize(
    "case_id",
    [case_id for case_id in CASES],
)
def test_bad_input_is_one_clear_error(
    case_id: str, outcomes: dict[str, tuple[Path, subprocess.CompletedProcess[str]]]
) -> None:
    if case_id == "energy-sampler-unavailable" and _rapl_readable():
        pytest.skip("this host exposes a readable RAPL counter")
    case = CASES[case_id]
    root, proc = outcomes[case_id]
    lines = proc.stderr.splitlines()
    assert proc.returncode == case.exit_code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines, "nothing on stderr"
    assert lines[0].startswith("error: "), proc.stderr
    assert "internal error" not in lines[0]
    for word in case.names:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    for word in case.anywhere:
        assert word in proc.stderr
    # the error line, and at most one hint line
    assert len(lines) <= 2, proc.stderr
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), proc.stderr
    assert proc.stdout == ""
    assert not (root / "out").exists(), "a results folder was created for a run that failed"


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llenergymeasure", "nosuchcmd"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stderr.startswith("error: ")
    assert "nosuchcmd" in proc.stderr.splitlines()[0]
    assert "internal error" not in proc.stderr
