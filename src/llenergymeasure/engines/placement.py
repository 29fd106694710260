"""Which GPUs an engine runs on, from NVML: whether there are any, the physical GPU behind each
CUDA device a run uses, its name, and whether it is a MIG slice.

NVML answers without creating a CUDA context (an engine's own processes create theirs).
pynvml is imported only when :func:`nvml_gpus` runs; ``nvml=`` takes any object with the
same calls (such as :class:`~llenergymeasure.testing.simulated_nvml.SimulatedNvml`).

CUDA numbers the devices it sees from 0, in the order of ``CUDA_VISIBLE_DEVICES`` (NVML
indices, GPU UUIDs or unique prefixes of them, or MIG instance UUIDs), all GPUs when it is
unset. A MIG slice has no energy counter of its own: NVML's power and energy figures are
the whole GPU's, so a run on a slice is measured as the whole GPU, and says so.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NvmlGpu", "Placement", "nvml_gpus", "place", "visible"]


@dataclass(frozen=True)
class NvmlGpu:
    """One physical GPU as NVML lists it."""

    index: int
    name: str
    uuid: str
    mig_enabled: bool


def nvml_gpus(nvml: Any = None) -> list[NvmlGpu]:
    """Every GPU NVML lists; empty without pynvml, a driver or a GPU. Never raises."""
    try:
        module = nvml if nvml is not None else importlib.import_module("pynvml")
        module.nvmlInit()
    except Exception:  # no pynvml, no driver: no GPU this process can use
        return []
    try:
        gpus = []
        for index in range(int(module.nvmlDeviceGetCount())):
            handle = module.nvmlDeviceGetHandleByIndex(index)
            try:
                mig = bool(module.nvmlDeviceGetMigMode(handle)[0])
            except module.NVMLError:  # a GPU without MIG support
                mig = False
            gpus.append(
                NvmlGpu(
                    index, _text(module.nvmlDeviceGetName(handle)),
                    _text(module.nvmlDeviceGetUUID(handle)), mig,
                )
            )  # fmt: skip
        return gpus
    except Exception:  # a GPU NVML cannot describe: treat the host as having none we can use
        return []
    finally:
        with contextlib.suppress(Exception):
            module.nvmlShutdown()


@dataclass(frozen=True)
class Placement:
    """The CUDA devices a run uses and what stands behind each."""

    devices: tuple[str, ...]
    gpus: tuple[NvmlGpu | None, ...]  # the physical GPU; None when NVML cannot tell which
    mig: tuple[bool, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Device names as reported for peaks: a MIG slice is named as one."""
        return tuple(
            f"{gpu.name if gpu else 'unknown GPU'}{' MIG slice' if mig else ''}"
            for gpu, mig in zip(self.gpus, self.mig, strict=True)
        )

    def note(self) -> str | None:
        """What the result must say about MIG slices; None when there are none."""
        if not any(self.mig):
            return None
        whole = sorted(
            {f"gpu:{g.index}" for g, m in zip(self.gpus, self.mig, strict=True) if m and g}
        )
        return (
            "runs on a MIG slice; NVML's power and energy figures are the whole GPU's "
            f"({', '.join(whole) or 'its parent GPU'}), so the slice is measured as the whole GPU"
        )

    def as_dict(self) -> dict[str, Any]:
        """For the result's engine arguments."""
        return {
            "devices": list(self.devices),
            "gpus": list(self.names),
            "nvml_indices": [g.index if g else None for g in self.gpus],
            "mig": self.note(),
        }


def visible(
    gpus: Sequence[NvmlGpu], environ: Mapping[str, str]
) -> list[tuple[NvmlGpu | None, bool]]:
    """The GPUs CUDA shows, in CUDA order: each physical GPU and whether it is a MIG slice.

    As in CUDA, the list ends at the first entry that names nothing; an empty value hides
    every GPU. A MIG instance's parent is the one GPU with MIG enabled (None if several).
    """
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return [(gpu, gpu.mig_enabled) for gpu in gpus]
    with_mig = [g for g in gpus if g.mig_enabled]
    shown: list[tuple[NvmlGpu | None, bool]] = []
    for entry in (e.strip() for e in value.split(",")):
        if entry.startswith("MIG-"):
            shown.append((with_mig[0] if len(with_mig) == 1 else None, True))
            continue
        found = _by_entry(gpus, entry)
        if found is None:
            break
        shown.append((found, found.mig_enabled))
    return shown


def place(n_devices: int, gpus: Sequence[NvmlGpu], environ: Mapping[str, str]) -> Placement:
    """The first ``n_devices`` CUDA devices (as many as are visible, if fewer)."""
    chosen = visible(gpus, environ)[:n_devices]
    return Placement(
        devices=tuple(f"cuda:{i}" for i in range(len(chosen))),
        gpus=tuple(gpu for gpu, _ in chosen),
        mig=tuple(mig for _, mig in chosen),
    )


def _by_entry(gpus: Sequence[NvmlGpu], entry: str) -> NvmlGpu | None:
    if entry.isdigit():
        index = int(entry)
        return gpus[index] if index < len(gpus) else None
    if not entry:
        return None
    wanted = entry if entry.startswith("GPU-") else f"GPU-{entry}"
    matches = [g for g in gpus if g.uuid.startswith(wanted)]
    return matches[0] if len(matches) == 1 else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
