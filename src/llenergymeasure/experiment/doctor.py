"""What this machine can measure: GPUs, CPU, energy samplers, engines (``llem doctor``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llenergymeasure.config.loading import UserConfig
from llenergymeasure.energy.rapl import DEFAULT_ROOT, RaplZone, discover_rapl_zones
from llenergymeasure.energy.registry import sampler_class, select_sampler
from llenergymeasure.engines.registry import Runner, engine_names, find_runner, get_engine
from llenergymeasure.errors import LlemError
from llenergymeasure.records.base import Availability
from llenergymeasure.system.cpu import CpuTdp, cpu_model, resolve_cpu_tdp, visible_cpu_count
from llenergymeasure.system.gpus import GpuSurvey, gpu_warnings, survey_gpus

__all__ = ["DoctorReport", "diagnose"]

# Engines the config accepts but this installation does not implement, and what they need.
# Listed only while they are missing from engines/registry.py.
_PLANNED_ENGINES = {"vllm": "vllm", "tensorrt": "tensorrt_llm"}
_EXTRAS = {"transformers": "transformers", "vllm": "vllm", "tensorrt": "tensorrt"}
_SAMPLER_ACCURACY = {
    "nvml": "counter (GPU board, mJ)",
    "zeus": "counter (via NVML/RAPL)",
    "rapl": "counter (CPU package and DRAM, µJ)",
    "codecarbon": "estimated (models + RAPL when readable)",
    "estimate": "estimated (process CPU time x TDP), low confidence",
}


@dataclass(frozen=True)
class DoctorReport:
    """Facts about the host, each with the reason when something is missing."""

    survey: GpuSurvey  # the GPUs, driver and CUDA versions, and why no GPU is listed
    cpu_model: str | None
    n_cpus_visible: int
    cpu_tdp: CpuTdp
    rapl_zones: list[RaplZone]
    samplers: dict[str, Availability]
    engines: dict[str, Availability]
    auto_choice: str
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "gpus": [asdict(g) for g in self.survey.gpus],
            "driver_version": self.survey.driver_version,
            "cuda_version": self.survey.cuda_version,
            "gpu_reason": self.survey.reason,
            "cpu": {
                "model": self.cpu_model,
                "n_cpus_visible": self.n_cpus_visible,
                "tdp": asdict(self.cpu_tdp),
            },
            "rapl_zones": [
                {
                    "zone": z.zone_id,
                    "name": z.name,
                    "domain": z.domain,
                    "readable": z.readable,
                    "error": z.error,
                }
                for z in self.rapl_zones
            ],
            "energy_samplers": {
                name: {**asdict(a), "accuracy": _SAMPLER_ACCURACY.get(name)}
                for name, a in self.samplers.items()
            },
            "engines": {name: asdict(a) for name, a in self.engines.items()},
            "auto_energy_sampler": self.auto_choice,
            "warnings": self.warnings,
        }


def diagnose(
    user: UserConfig, *, nvml: Any = None, powercap_root: Path = DEFAULT_ROOT
) -> DoctorReport:
    """Probe everything; never raises for a missing piece, it reports it."""
    survey = survey_gpus(nvml)
    n_cpus = visible_cpu_count()
    model = cpu_model()
    tdp = resolve_cpu_tdp(model, user.cpu_tdp_w, n_cpus)
    devices = [f"cuda:{i}" for i in range(len(survey.gpus))] or ["cpu"]
    samplers = {
        name: _probe_sampler(name, devices, tdp, powercap_root, nvml) for name in _SAMPLER_ACCURACY
    }
    try:
        auto = select_sampler(
            "auto",
            watts_per_thread=tdp.watts_per_thread,
            tdp_source=tdp.source,
            devices=devices,
            powercap_root=powercap_root,
            nvml=nvml,
        ).reason
    except LlemError as err:
        auto = f"none: {err.message}"
    return DoctorReport(
        survey=survey,
        cpu_model=model,
        n_cpus_visible=n_cpus,
        cpu_tdp=tdp,
        rapl_zones=discover_rapl_zones(powercap_root),
        samplers=samplers,
        engines=_engines(user),
        auto_choice=auto,
        warnings=gpu_warnings(survey.gpus),
    )


def _probe_sampler(
    name: str, devices: list[str], tdp: CpuTdp, powercap_root: Path, nvml: Any
) -> Availability:
    try:
        if name == "estimate":
            return sampler_class(name)(tdp.watts_per_thread, tdp.source).probe()  # type: ignore[call-arg]
        if name == "nvml":
            gpus = [d for d in devices if d.startswith("cuda")] or ["cuda:0"]
            return sampler_class(name)(gpus, nvml=nvml).probe()  # type: ignore[call-arg]
        if name == "rapl":
            return sampler_class(name)(powercap_root).probe()  # type: ignore[call-arg]
        return sampler_class(name)().probe()
    except LlemError as err:
        return Availability(False, err.message)


# A runner's probe imports llenergymeasure in a fresh interpreter: seconds, not minutes.
_RUNNER_PROBE_TIMEOUT_S = 60.0
_RUNNER_PROBE = (
    "import json, sys\n"
    "from llenergymeasure.engines.registry import get_engine\n"
    "a = get_engine(sys.argv[1]).probe()\n"
    "print(json.dumps([a.available, a.reason, a.version]))\n"
)


def _engines(user: UserConfig) -> dict[str, Availability]:
    configured = getattr(user, "runners", None)
    found: dict[str, Availability] = {}
    for name in engine_names():
        found[name] = _engine_availability(name, configured)
    for name, module in _PLANNED_ENGINES.items():
        if name in found:
            continue
        installed = importlib.util.find_spec(module) is not None
        found[name] = Availability(
            False,
            f"{module} is {'installed' if installed else 'not installed'}, but this version of "
            f"llenergymeasure has no `{name}` engine yet",
        )
    return found


def _engine_availability(name: str, configured: Any) -> Availability:
    """The engine as its experiments would run it: in its runner when one is set or found."""
    try:
        runner = find_runner(name, configured)
        if runner is not None:
            return _probe_in_runner(name, runner)
        availability = get_engine(name).probe()
    except LlemError as err:
        return Availability(False, err.message)
    except ImportError as err:
        return Availability(False, f"its module could not be imported: {err}")
    if not availability.available and name in _EXTRAS and "pip install" not in availability.reason:
        availability = Availability(
            False, f"{availability.reason} (pip install 'llenergymeasure[{_EXTRAS[name]}]')"
        )
    return availability


def _probe_in_runner(name: str, runner: Runner) -> Availability:
    """Ask the runner's interpreter for the engine's probe."""
    where = f"in the runner {runner.python} ({runner.source})"
    try:
        proc = subprocess.run(
            [str(runner.python), "-c", _RUNNER_PROBE, name],
            capture_output=True,
            text=True,
            timeout=_RUNNER_PROBE_TIMEOUT_S,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        available, reason, version = json.loads(lines[-1]) if lines else (None, None, None)
    except (OSError, subprocess.TimeoutExpired, ValueError) as err:
        return Availability(False, f"could not probe {where}: {type(err).__name__}: {err}")
    if not isinstance(available, bool):
        errors = proc.stderr.strip().splitlines()
        last = errors[-1] if errors else f"exit code {proc.returncode}"
        return Availability(False, f"could not probe {where}: {last}")
    return Availability(available, f"{reason} {where}", None if version is None else str(version))
