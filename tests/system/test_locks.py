"""Device locks: flock files in the user runtime directory, naming their holder, released by
the kernel however the holder ends."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from llenergymeasure.errors import ConfigError
from llenergymeasure.experiment.options import DEFAULT_LOCK_TIMEOUT_S, RunOptions
from llenergymeasure.system.locks import DeviceLocks, runtime_dir

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from llenergymeasure.system.locks import DeviceLocks\n"
    "locks = DeviceLocks(sys.argv[1:], Path(sys.argv[0]).parent)\n"
    "assert locks.try_acquire() == {}\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def hold_in_another_process(folder: Path, *keys: str) -> subprocess.Popen[str]:
    script = folder / "hold.py"
    script.write_text(HOLD, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), *keys], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_the_runtime_dir_follows_xdg_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert runtime_dir() == tmp_path / "llenergymeasure" / "locks"
    assert runtime_dir().is_dir()


def test_a_lock_held_elsewhere_names_its_holder_and_frees_when_it_dies(tmp_path: Path) -> None:
    proc = hold_in_another_process(tmp_path, "GPU-aaaa")
    try:
        busy = DeviceLocks(["GPU-aaaa", "GPU-bbbb"], tmp_path).try_acquire()
        assert list(busy) == ["GPU-aaaa"]
        holder = busy["GPU-aaaa"]
        assert holder.pid == proc.pid
        assert holder.command is not None and "hold.py GPU-aaaa" in holder.command
        assert f"PID {proc.pid} (" in holder.describe()
        # all or nothing: the free GPU was not kept either
        free = DeviceLocks(["GPU-bbbb"], tmp_path)
        assert free.try_acquire() == {}
        free.release()
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.05)
    mine = DeviceLocks(["GPU-aaaa"], tmp_path)
    assert mine.try_acquire() == {}  # the kernel released the dead holder's lock
    mine.release()


def test_run_options_come_from_the_environment_and_go_back_to_it() -> None:
    assert RunOptions.from_environ({}) == RunOptions(False, True, DEFAULT_LOCK_TIMEOUT_S)
    options = RunOptions(strict=True, lock=False, lock_timeout_s=12.5)
    assert RunOptions.from_environ(options.environ()) == options
    with pytest.raises(ConfigError, match="LLEM_LOCK_TIMEOUT_S='soon'"):
        RunOptions.from_environ({"LLEM_LOCK_TIMEOUT_S": "soon"})
    with pytest.raises(ConfigError, match="--lock-timeout"):
        RunOptions(lock_timeout_s=-1)
