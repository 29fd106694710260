"""The bad-input corpus (tests/corpus/bad/cases.yaml): load cases, lay out their files, check.

Each case is an ``llem`` command line plus the files it needs, copied from the corpus
folder (or made on the spot: folders, FIFOs, huge files) into an empty working folder.
What must hold for every case (:func:`check`): the expected exit code, one ``error:``
line naming the field, line or file, at most one ``hint:`` line after it, no traceback,
nothing on stdout, and nothing new in the working folder (no results folder).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bad"
CASES_FILE = CORPUS / "cases.yaml"
HUGE_BYTES = 50 * 2**20  # "huge" inputs are made in the temp folder, never committed


@dataclass(frozen=True)
class Case:
    """One bad invocation and what it must produce."""

    case_id: str
    args: tuple[str, ...]
    exit_code: int
    error: tuple[str, ...]  # each appears in the `error:` line
    files: tuple[str, ...] = ()  # corpus paths copied into the working folder
    make: Mapping[str, str] = field(default_factory=dict)  # name -> dir | empty | fifo | huge-*
    env: Mapping[str, str] = field(default_factory=dict)  # `{cwd}` = the working folder
    anywhere: tuple[str, ...] = ()  # each appears somewhere on stderr (e.g. the hint)
    subprocess: bool = False  # also run as a real `python -m llenergymeasure` process
    skip_if_rapl: bool = False  # the case needs a host without a readable RAPL counter


def load_cases() -> dict[str, Case]:
    """Every case of cases.yaml, by id."""
    raw = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
    cases: dict[str, Case] = {}
    for case_id, spec in raw["cases"].items():
        cases[case_id] = Case(
            case_id=case_id,
            args=tuple(str(a) for a in spec["args"]),
            exit_code=int(spec["exit"]),
            error=tuple(str(w) for w in spec["error"]),
            files=tuple(spec.get("files", ())),
            make=dict(spec.get("make", {})),
            env={str(k): str(v) for k, v in spec.get("env", {}).items()},
            anywhere=tuple(spec.get("anywhere", ())),
            subprocess=bool(spec.get("subprocess", False)),
            skip_if_rapl=bool(spec.get("skip_if_rapl", False)),
        )
    return cases


def argv(case: Case) -> list[str]:
    """The command line; a `run` writes to ``out`` so that a stray results folder shows."""
    args = list(case.args)
    if args and args[0] == "run" and "--output" not in args and "-o" not in args:
        args += ["--output", "out"]
    return args


def lay_out(case: Case, cwd: Path) -> None:
    """Copy the case's corpus files into ``cwd`` (by base name) and make its generated ones."""
    cwd.mkdir(parents=True, exist_ok=True)
    for rel in case.files:
        source = CORPUS / rel
        target = cwd / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
    for name, kind in case.make.items():
        _make(cwd / name, kind)


def _make(path: Path, kind: str) -> None:
    if kind == "dir":
        path.mkdir()
    elif kind == "empty":
        path.touch()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge-yaml":  # valid YAML, just far too big to be a config
        line = b"# " + b"x" * 1021 + b"\n"
        with path.open("wb") as fh:
            fh.write(b"engine: fake\n")
            for _ in range(2 * 1024):
                fh.write(line)
    elif kind == "huge-jsonl":  # 50 MB on one line: neither text nor JSON
        block = bytes(range(1, 256)) * 4096
        with path.open("wb") as fh:
            written = 0
            while written < HUGE_BYTES:
                fh.write(block.replace(b"\n", b" "))
                written += len(block)
    else:
        raise ValueError(f"unknown generated input kind {kind!r}")


def environment(case: Case, cwd: Path, scratch: Path) -> dict[str, str]:
    """Variables for the case: an empty user config, a private cache, no HF cache."""
    user = scratch / "user-config.yaml"
    if not user.exists():
        scratch.mkdir(parents=True, exist_ok=True)
        user.write_text("{}\n", encoding="utf-8")
        (scratch / "hf-hub").mkdir()
    env = {
        "LLEM_USER_CONFIG": str(user),
        "LLEM_CACHE_DIR": str(scratch / "cache"),
        "HF_HUB_CACHE": str(scratch / "hf-hub"),
        "HF_HUB_OFFLINE": "1",
    }
    env.update({k: v.replace("{cwd}", str(cwd)) for k, v in case.env.items()})
    return env


def listing(cwd: Path) -> set[str]:
    """Every path under ``cwd`` (relative), to see that a failed run created nothing."""
    return {str(p.relative_to(cwd)) for p in cwd.rglob("*")}


def check(case: Case, code: int, stdout: str, stderr: str) -> None:
    """Assert the user-visible contract for one finished case."""
    lines = stderr.splitlines()
    assert code == case.exit_code, f"exit {code}, expected {case.exit_code}: {stderr}"
    assert "Traceback" not in stderr, stderr
    assert lines, "nothing on stderr"
    assert lines[0].startswith("error: "), stderr
    assert "internal error" not in lines[0], stderr
    for word in case.error:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    for word in case.anywhere:
        assert word in stderr, f"{word!r} not on stderr: {stderr!r}"
    assert len(lines) <= 2, stderr  # the error line, and at most one hint line
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), stderr
    assert stdout == "", stdout


def rapl_readable() -> bool:
    """True when this host exposes a readable RAPL energy counter."""
    return os.access("/sys/class/powercap/intel-rapl:0/energy_uj", os.R_OK)


def corpus_files() -> set[str]:
    """Every file of the corpus except the index (folders count as their files)."""
    return {
        str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p != CASES_FILE
    }


def used_files(cases: Mapping[str, Case]) -> set[str]:
    """The corpus files some case copies (a copied folder uses every file inside it)."""
    used: set[str] = set()
    for case in cases.values():
        for rel in case.files:
            source = CORPUS / rel
            if source.is_dir():
                used |= {str(p.relative_to(CORPUS)) for p in source.rglob("*") if p.is_file()}
            else:
                used.add(rel)
    return used
