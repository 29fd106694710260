"""The environment snapshot: read-only facts about the host, taken once per experiment.

Nothing here imports the packages it reports on: versions come from installed
metadata, so a snapshot never loads torch or CUDA. GPU facts (accelerators, driver,
the CUDA version the driver supports) come from NVML (:func:`survey_gpus`), which
creates no CUDA context.

Each fact is read on its own and a fact that cannot be read is ``None``, so a
snapshot is always produced; :class:`EnvironmentCapture` takes it in a background
thread while the experiment gets on with its steps.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import psutil

from llenergymeasure.records.environment import EnvironmentSnapshot
from llenergymeasure.system.cpu import PROC_CPUINFO, cpu_model
from llenergymeasure.system.gpus import survey_gpus
from llenergymeasure.system.keyfile import key_value

__all__ = ["DEFAULT_PACKAGES", "EnvironmentCapture", "capture_environment", "detect_container"]

DEFAULT_PACKAGES: tuple[str, ...] = (
    "llenergymeasure",
    "torch",
    "transformers",
    "accelerate",
    "gguf",
    "vllm",
    "tensorrt_llm",
    "pynvml",
    "nvidia-ml-py",
    "zeus",
    "codecarbon",
    "numpy",
    "pydantic",
)

OS_RELEASE = Path("/etc/os-release")
DOCKERENV = Path("/.dockerenv")
CONTAINERENV = Path("/run/.containerenv")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")

# Words in /proc/self/cgroup that name a container runtime, most specific first:
# a Kubernetes pod's cgroups also mention its docker or containerd runtime.
_CGROUP_MARKERS: tuple[tuple[str, str], ...] = (
    ("kubepods", "kubernetes"),
    ("libpod", "podman"),
    ("docker", "docker"),
    ("containerd", "containerd"),
    ("lxc", "lxc"),
)

_T = TypeVar("_T")


def capture_environment(
    packages: Sequence[str] = DEFAULT_PACKAGES,
    *,
    proc_cpuinfo: Path = PROC_CPUINFO,
    os_release: Path = OS_RELEASE,
    dockerenv: Path = DOCKERENV,
    containerenv: Path = CONTAINERENV,
    cgroup: Path = PROC_SELF_CGROUP,
    environ: Mapping[str, str] | None = None,
    nvml: object | None = None,
) -> EnvironmentSnapshot:
    """Read the host's OS, CPU, memory, Python, packages, GPUs and container runtime.

    The paths are parameters so tests can point them at fake files, and ``nvml`` stands
    in for pynvml. A fact that cannot be read is ``None``; a package that is not
    installed has version ``None``; without NVML there are no accelerators.
    """
    gpus = _read(lambda: survey_gpus(nvml), None)
    return EnvironmentSnapshot(
        os=_read(lambda: _os_name(os_release), platform.system() or "unknown"),
        kernel=_read(platform.release, "") or "unknown",
        hostname=_read(socket.gethostname, "") or "unknown",
        cpu_model=_read(lambda: cpu_model(proc_cpuinfo), None),
        n_cpus_logical=_read(lambda: psutil.cpu_count(logical=True), None),
        n_cpus_physical=_read(lambda: psutil.cpu_count(logical=False), None),
        memory_total_mib=_read(lambda: psutil.virtual_memory().total / 2**20, None),
        python=_python_version(),
        packages={name: _package_version(name) for name in packages},
        accelerators=gpus.accelerators() if gpus is not None else (),
        cuda_version=gpus.cuda_version if gpus is not None else None,
        driver_version=gpus.driver_version if gpus is not None else None,
        container=_read(
            lambda: detect_container(
                dockerenv=dockerenv,
                containerenv=containerenv,
                cgroup=cgroup,
                environ=os.environ if environ is None else environ,
            ),
            None,
        ),
        captured_at=datetime.now(timezone.utc),
    )


def detect_container(
    *,
    dockerenv: Path = DOCKERENV,
    containerenv: Path = CONTAINERENV,
    cgroup: Path = PROC_SELF_CGROUP,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The container runtime this process runs in ("kubernetes", "podman", "docker", ...), or None.

    Under cgroup v2 a container sees its cgroup as ``0::/``, so the marker files
    and the Kubernetes service variable are checked as well as the cgroup text.
    """
    env = os.environ if environ is None else environ
    try:
        cgroup_text = cgroup.read_text(encoding="utf-8", errors="replace")
    except OSError:
        cgroup_text = ""
    found = {runtime for marker, runtime in _CGROUP_MARKERS if marker in cgroup_text}
    if "kubernetes" in found or "KUBERNETES_SERVICE_HOST" in env:
        return "kubernetes"
    if "podman" in found or containerenv.exists():
        return "podman"
    if "docker" in found or dockerenv.exists():
        return "docker"
    for runtime in ("containerd", "lxc"):
        if runtime in found:
            return runtime
    return None


class EnvironmentCapture:
    """Takes the environment snapshot in a background thread.

    ``result`` never raises: if the capture failed or is still running after the
    timeout, it returns a snapshot of the facts that are cheap and safe to read
    (``error`` keeps the exception, if there was one).
    """

    def __init__(self, capture: Callable[[], EnvironmentSnapshot] | None = None) -> None:
        self._capture = capture if capture is not None else capture_environment
        self._snapshot: EnvironmentSnapshot | None = None
        self.error: BaseException | None = None
        # Daemon: a hung read (e.g. a stale network mount) must not keep the process alive.
        self._thread = threading.Thread(target=self._run, name="llem-environment", daemon=True)
        self._started = False

    def start(self) -> EnvironmentCapture:
        """Start the capture; calling it again does nothing."""
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def result(self, timeout_s: float = 10.0) -> EnvironmentSnapshot:
        """Wait up to ``timeout_s`` for the snapshot; never raises."""
        self.start()
        self._thread.join(timeout_s)
        if self._snapshot is not None:
            return self._snapshot
        return _minimal_snapshot()

    def _run(self) -> None:
        try:
            self._snapshot = self._capture()
        except Exception as err:  # a snapshot is provenance: never fail the experiment for it
            self.error = err


def _read(read: Callable[[], _T], default: _T) -> _T:
    """One fact, or ``default`` when the host will not give it."""
    try:
        return read()
    except Exception:  # any failure of one fact leaves that fact unknown, not the snapshot
        return default


def _os_name(os_release: Path) -> str:
    """``PRETTY_NAME`` from os-release on Linux, else system and release, e.g. ``macOS 14.5``."""
    pretty = key_value(os_release, "PRETTY_NAME", "=", quotes="\"'")
    if pretty:
        return pretty
    system = platform.system()
    if system == "Darwin":
        return f"macOS {platform.mac_ver()[0]}".strip()
    return f"{system} {platform.release()}".strip() or "unknown"


def _python_version() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
    except Exception:  # broken metadata of one package must not hide the others
        return None


def _minimal_snapshot() -> EnvironmentSnapshot:
    """The facts that need no file or library: used when the full capture did not finish."""
    return EnvironmentSnapshot(
        os=_read(platform.system, "") or "unknown",
        kernel=_read(platform.release, "") or "unknown",
        hostname=_read(platform.node, "") or "unknown",
        cpu_model=None,
        n_cpus_logical=_read(os.cpu_count, None),
        n_cpus_physical=None,
        memory_total_mib=None,
        python=_read(_python_version, sys.version.split()[0]),
        packages={},
        captured_at=datetime.now(timezone.utc),
    )
