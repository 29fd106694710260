"""The environment snapshot on fake proc, os-release and cgroup files."""

from __future__ import annotations

import sys
import threading
from datetime import timezone
from pathlib import Path

import pytest

from llenergymeasure.records.environment import EnvironmentSnapshot
from llenergymeasure.system.environment import (
    DEFAULT_PACKAGES,
    EnvironmentCapture,
    capture_environment,
    detect_container,
)


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Path]:
    """Fake host files; no container markers."""
    (tmp_path / "cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
    )
    (tmp_path / "os-release").write_text('NAME="Ubuntu"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n')
    (tmp_path / "cgroup").write_text("0::/\n")
    return {
        "proc_cpuinfo": tmp_path / "cpuinfo",
        "os_release": tmp_path / "os-release",
        "dockerenv": tmp_path / "no-dockerenv",
        "containerenv": tmp_path / "no-containerenv",
        "cgroup": tmp_path / "cgroup",
    }


def test_capture_reads_the_host(host: dict[str, Path]) -> None:
    snap = capture_environment(("pydantic", "surely-not-installed-pkg"), environ={}, **host)
    assert isinstance(snap, EnvironmentSnapshot)
    assert snap.os == "Ubuntu 22.04.4 LTS"
    assert snap.kernel
    assert snap.hostname
    assert snap.cpu_model == "AMD EPYC 7763 64-Core Processor"
    assert snap.n_cpus_logical is not None and snap.n_cpus_logical >= 1
    assert snap.memory_total_mib is not None and snap.memory_total_mib > 0
    assert snap.python.endswith(".".join(map(str, sys.version_info[:3])))
    assert snap.packages["pydantic"] is not None
    assert snap.packages["surely-not-installed-pkg"] is None
    assert snap.accelerators == ()
    assert snap.container is None
    assert snap.captured_at.tzinfo == timezone.utc


def test_default_packages_are_recorded_without_import(host: dict[str, Path]) -> None:
    snap = capture_environment(
        proc_cpuinfo=host["proc_cpuinfo"], os_release=host["os_release"], environ={}
    )
    assert tuple(snap.packages) == DEFAULT_PACKAGES
    assert snap.packages["numpy"] is not None


def test_os_name_falls_back_without_os_release(host: dict[str, Path], tmp_path: Path) -> None:
    host["os_release"] = tmp_path / "missing"
    snap = capture_environment((), environ={}, **host)
    assert snap.os and snap.os != "Ubuntu 22.04.4 LTS"


@pytest.mark.parametrize(
    ("cgroup_text", "runtime"),
    [
        ("12:cpu:/kubepods/besteffort/pod1/abc\n", "kubernetes"),
        ("0::/machine.slice/libpod-abc.scope\n", "podman"),
        ("11:memory:/docker/0123abcd\n", "docker"),
        ("0::/system.slice/containerd.service/x\n", "containerd"),
        ("5:cpuset:/lxc/box1\n", "lxc"),
        ("0::/\n", None),
        ("4:memory:/user.slice\n", None),
    ],
)
def test_container_from_cgroup(tmp_path: Path, cgroup_text: str, runtime: str | None) -> None:
    cgroup = tmp_path / "cgroup"
    cgroup.write_text(cgroup_text)
    found = detect_container(
        dockerenv=tmp_path / "no", containerenv=tmp_path / "no", cgroup=cgroup, environ={}
    )
    assert found == runtime


def test_container_from_marker_files_and_env(tmp_path: Path) -> None:
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/\n")
    marker = tmp_path / "marker"
    marker.touch()
    missing = tmp_path / "missing"
    args = {"cgroup": cgroup}
    assert detect_container(dockerenv=marker, containerenv=missing, environ={}, **args) == "docker"
    assert detect_container(dockerenv=missing, containerenv=marker, environ={}, **args) == "podman"
    assert (
        detect_container(
            dockerenv=marker,
            containerenv=missing,
            environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
            **args,
        )
        == "kubernetes"
    )


def test_unreadable_cgroup_is_no_container(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert (
        detect_container(dockerenv=missing, containerenv=missing, cgroup=missing, environ={})
        is None
    )


def test_capture_reports_the_container(host: dict[str, Path]) -> None:
    host["dockerenv"].touch()
    assert capture_environment((), environ={}, **host).container == "docker"


def test_background_capture_returns_the_snapshot(host: dict[str, Path]) -> None:
    capture = EnvironmentCapture(lambda: capture_environment(("pydantic",), environ={}, **host))
    capture.start()
    snap = capture.result(timeout_s=30)
    assert snap.cpu_model == "AMD EPYC 7763 64-Core Processor"
    assert capture.error is None


def test_background_capture_with_defaults_returns() -> None:
    snap = EnvironmentCapture().start().result(timeout_s=30)
    assert snap.packages["llenergymeasure"] is not None


def test_failed_capture_still_returns_a_snapshot() -> None:
    def broken() -> EnvironmentSnapshot:
        raise OSError("no /proc here")

    capture = EnvironmentCapture(broken)
    capture.start()
    snap = capture.result(timeout_s=30)
    assert isinstance(snap, EnvironmentSnapshot)
    assert snap.python
    assert snap.cpu_model is None
    assert isinstance(capture.error, OSError)


def test_slow_capture_times_out_with_a_snapshot() -> None:
    release = threading.Event()

    def slow() -> EnvironmentSnapshot:
        release.wait(10)
        raise AssertionError("not reached in time")

    capture = EnvironmentCapture(slow)
    try:
        snap = capture.result(timeout_s=0.05)  # result() starts the capture if needed
        assert isinstance(snap, EnvironmentSnapshot)
        assert snap.packages == {}
    finally:
        release.set()
