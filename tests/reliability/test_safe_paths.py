"""Names from model ids and study names stay inside the results folder; links are not followed.

- ``safe_name`` (and the folder names built on it) is one path component on every OS for
  any text: no separator, NUL, ``.``/``..``, Windows device name, or overlong name.
- ``create_unique_dir`` refuses a name that is not one component, and never reuses
  what is already there (a folder, a file, a symbolic link).
- ``atomic_write`` refuses a folder that is a symbolic link, and replaces a link that sits
  at the target instead of writing through it.
- Configs are read with the safe YAML loader only; ``trust_remote_code`` is false unless
  the config says true, and the CLI says so when it is.
"""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone
from pathlib import Path, PureWindowsPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llenergymeasure.cli.app import main
from llenergymeasure.config.loading import load_experiment_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ConfigError, ResultError
from llenergymeasure.records.atomic import atomic_write_text
from llenergymeasure.records.files import create_unique_dir, run_dir_name, safe_name

WINDOWS_DEVICES = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=timezone.utc)
NASTY = [
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "",
    "a/../../b",
    "C:\\Windows\\System32",
    "\\\\server\\share",
    "x\x00y",
    "con",
    "NUL.txt",
    "Com1",
    "lpt9.log",
    "aux.",
    "model\n-name",
    "é" * 300,
    "x" * 10_000,
    "~root",
    "$(rm -rf ~)",
    " . ",
    "-rf",
]


def _assert_one_safe_component(name: str) -> None:
    assert name and len(name) <= 80
    assert name not in (".", "..")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
    assert not name.startswith((".", "-")) and not name.endswith((".", "-"))
    assert not WINDOWS_DEVICES.match(name), name
    assert Path(name).name == name and PureWindowsPath(name).name == name


@pytest.mark.parametrize("text", NASTY)
def test_nasty_names_become_one_safe_component(text: str, tmp_path: Path) -> None:
    name = safe_name(text)
    _assert_one_safe_component(name)
    folder = create_unique_dir(tmp_path, run_dir_name(text, AT))
    assert folder.parent == tmp_path
    assert folder.resolve().parent == tmp_path.resolve()


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_becomes_one_safe_component(text: str) -> None:
    _assert_one_safe_component(safe_name(text))
    _assert_one_safe_component(run_dir_name(text, AT))


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "/abs", "a\\b", "x\x00"])
def test_create_unique_dir_refuses_a_name_that_is_not_one_component(
    name: str, tmp_path: Path
) -> None:
    with pytest.raises(ResultError, match="one path component"):
        create_unique_dir(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


def test_a_planted_symlink_at_a_folder_name_is_skipped_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    results = tmp_path / "results"
    results.mkdir()
    (results / "run").symlink_to(elsewhere, target_is_directory=True)
    folder = create_unique_dir(results, "run")
    assert folder == results / "run_1"
    assert not folder.is_symlink() and folder.is_dir()
    assert list(elsewhere.iterdir()) == []


def test_atomic_write_refuses_a_folder_that_is_a_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "study"
    link.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ResultError) as info:
        atomic_write_text(link / "manifest.json", "{}")
    assert "symbolic link" in info.value.message
    assert list(elsewhere.iterdir()) == []


def test_atomic_write_replaces_a_planted_symlink_instead_of_writing_through_it(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "result.json").symlink_to(victim)
    atomic_write_text(folder / "result.json", "{}")
    assert victim.read_text(encoding="utf-8") == "precious"
    assert not (folder / "result.json").is_symlink()
    assert (folder / "result.json").read_text(encoding="utf-8") == "{}"


def test_a_results_root_that_is_a_symlink_is_the_users_choice(tmp_path: Path) -> None:
    """Only folders llem writes into must be real; the root may live on another disk."""
    disk = tmp_path / "big-disk"
    disk.mkdir()
    root = tmp_path / "results"
    root.symlink_to(disk, target_is_directory=True)
    folder = create_unique_dir(root, "run")
    atomic_write_text(folder / "result.json", "{}")
    assert (disk / "run" / "result.json").read_text(encoding="utf-8") == "{}"


# --------------------------------------------------------------- YAML and remote code


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch pwned']",
        "!!python/name:os.system",
        "!!python/object/new:subprocess.Popen [['touch', 'pwned']]",
    ],
)
def test_python_tags_are_refused_not_run(
    tag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.yaml"
    path.write_text(f"engine: fake\ntask: {tag}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_experiment_config(path)
    assert not (tmp_path / "pwned").exists()


def test_trust_remote_code_is_off_unless_the_config_sets_it() -> None:
    assert ExperimentConfig().task.trust_remote_code is False
    assert ExperimentConfig.model_validate({"task": {}}).task.trust_remote_code is False
    for not_true in ("yes", "true", 1, "on"):
        with pytest.raises(ValueError, match="trust_remote_code"):
            ExperimentConfig.model_validate({"task": {"trust_remote_code": not_true}})


def _dry_run(args: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


def test_the_cli_says_when_remote_code_will_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "on.yaml").write_text(
        "engine: fake\ntask: {model: smollm2-135m, trust_remote_code: true}\n"
        "measurement: {energy_sampler: estimate}\n",
        encoding="utf-8",
    )
    (tmp_path / "off.yaml").write_text(
        "engine: fake\ntask: {model: smollm2-135m}\nmeasurement: {energy_sampler: estimate}\n",
        encoding="utf-8",
    )
    (tmp_path / "study.yaml").write_text(
        "engine: fake\ntask: {model: smollm2-135m}\nmeasurement: {energy_sampler: estimate}\n"
        "sweep:\n  task.trust_remote_code: [false, true]\n",
        encoding="utf-8",
    )
    code, err = _dry_run(["run", "on.yaml", "--dry-run"])
    assert code == 0, err
    assert "trust_remote_code is true" in err
    code, err = _dry_run(["run", "off.yaml", "--dry-run"])
    assert code == 0, err
    assert "trust_remote_code" not in err
    code, err = _dry_run(["run", "study.yaml", "--dry-run"])
    assert code == 0, err
    assert "trust_remote_code is true in 1 of 2 configs" in err


def test_only_the_safe_yaml_loader_is_used_anywhere_in_the_package() -> None:
    src = Path(__file__).resolve().parents[2] / "src" / "llenergymeasure"
    unsafe = re.compile(
        r"yaml\.(load|load_all|full_load|unsafe_load)\(|yaml\.(Full|Unsafe)?Loader\b"
        r"|import .*\b(Full|Unsafe)?Loader\b"
    )
    hits = [
        f"{path.relative_to(src)}:{number}: {line.strip()}"
        for path in sorted(src.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if unsafe.search(line.replace("SafeLoader", ""))
    ]
    assert hits == []
