"""Which physical GPUs an engine's devices are: CUDA ordinals mapped to NVML indices by UUID.

``cuda:N`` is the N-th GPU this process's CUDA sees; NVML numbers every GPU of the host.
Under ``CUDA_VISIBLE_DEVICES`` the two differ (``cuda:0`` may be NVML's GPU 2), so every
GPU is identified by its UUID and named ``gpu:<NVML index>`` in results.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llenergymeasure.energy.nvml_api import Nvml, text
from llenergymeasure.errors import EnergyError

__all__ = [
    "ScopedGpu",
    "cuda_ordinal",
    "gpu_indices_in_scope",
    "open_scope",
    "order_warning",
    "visible_gpus",
]


@dataclass(frozen=True)
class ScopedGpu:
    """One GPU in scope: its NVML index and handle, UUID, name and CUDA device name."""

    index: int
    handle: Any
    uuid: str
    name: str
    cuda_device: str

    @property
    def domain(self) -> str:
        """The name results use for it: ``gpu:<NVML index>``."""
        return f"gpu:{self.index}"

    @property
    def label(self) -> str:
        """``gpu:N (UUID)``, for messages."""
        return f"{self.domain} ({self.uuid})"


def gpu_indices_in_scope(
    devices: Sequence[str], environ: Mapping[str, str], uuids: Sequence[str]
) -> list[int]:
    """NVML indices of the GPUs that the engine's ``devices`` name, in order, without repeats.

    ``cuda:N`` is the N-th GPU visible to CUDA (``cuda`` alone is ``cuda:0``); other
    devices (``cpu``, ``mps``, ``meta``) are not GPUs and are skipped.
    ``CUDA_VISIBLE_DEVICES`` in ``environ`` lists NVML indices or GPU UUIDs (a unique
    prefix is enough, with or without ``GPU-``). As in CUDA, the list ends at the
    first entry that names no GPU (``0,2,-1,1`` shows 0 and 2) and an empty value
    hides every GPU; unset, every GPU is visible in NVML order. ``uuids`` are the
    UUIDs of all GPUs by NVML index ("" for one that could not be read).

    Indices in ``CUDA_VISIBLE_DEVICES`` and ordinals in ``cuda:N`` are taken to be
    in NVML's (PCI bus) order: true with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or when
    all GPUs are the same model.

    Raises :class:`EnergyError` for ``cuda:N`` beyond the visible GPUs and for MIG
    instances (NVML's energy figures are per physical GPU).
    """
    visible = visible_gpus(environ, uuids)
    indices: list[int] = []
    for device in devices:
        ordinal = cuda_ordinal(device)
        if ordinal is None:
            continue
        if ordinal >= len(visible):
            raise EnergyError(
                f"device {device!r} asks for visible GPU {ordinal}, but this process sees "
                f"{len(visible)} (CUDA_VISIBLE_DEVICES={environ.get('CUDA_VISIBLE_DEVICES')!r})",
                hint="check the engine's device setting against CUDA_VISIBLE_DEVICES",
            )
        if visible[ordinal] not in indices:
            indices.append(visible[ordinal])
    return indices


def open_scope(
    nvml: Nvml, devices: Sequence[str], environ: Mapping[str, str]
) -> tuple[list[ScopedGpu], list[str | None]]:
    """The GPUs in scope (NVML initialised) and the names of all GPUs (None: unreadable).

    Raises :class:`EnergyError` when no GPU is in scope, and NVML's error (or
    :class:`NvmlMissing`) when it cannot count the GPUs or open their handles.
    """
    count = int(nvml.call("nvmlDeviceGetCount"))
    if count == 0:
        raise EnergyError("no NVIDIA GPU: NVML reports 0 devices")
    handles = [nvml.call("nvmlDeviceGetHandleByIndex", i) for i in range(count)]
    # A GPU out of scope that cannot answer must not stop us measuring the others.
    uuids = [_text_or_none(nvml.get("nvmlDeviceGetUUID", h)) for h in handles]
    names = [_text_or_none(nvml.get("nvmlDeviceGetName", h)) for h in handles]
    uuid_strings = [u or "" for u in uuids]
    indices = gpu_indices_in_scope(devices, environ, uuid_strings)
    if not indices:
        raise EnergyError(
            f"no NVIDIA GPU in scope: devices {list(devices)} with CUDA_VISIBLE_DEVICES="
            f"{environ.get('CUDA_VISIBLE_DEVICES')!r}"
        )
    visible = visible_gpus(environ, uuid_strings)
    gpus = [
        ScopedGpu(
            index=i,
            handle=handles[i],
            # an NVML that will not name a GPU still measures it; the index stands in
            uuid=uuids[i] or f"GPU-nvml-index-{i}",
            name=names[i] or "NVIDIA GPU (NVML gave no name)",
            cuda_device=f"cuda:{visible.index(i)}",
        )
        for i in indices
    ]
    return gpus, names


def visible_gpus(environ: Mapping[str, str], uuids: Sequence[str]) -> list[int]:
    """NVML indices of the GPUs CUDA makes visible, in CUDA's order."""
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(len(uuids)))
    visible: list[int] = []
    for entry in raw.split(","):
        index = _visible_entry(entry.strip(), uuids)
        if index is None or index in visible:
            break  # CUDA ignores everything from the first invalid entry on
        visible.append(index)
    return visible


def cuda_ordinal(device: str) -> int | None:
    """N for ``cuda:N`` (0 for a bare ``cuda``); None for any other device."""
    device_text = device.strip().lower()
    if device_text == "cuda":
        return 0
    match = re.fullmatch(r"cuda:(\d+)", device_text)
    return int(match.group(1)) if match else None


def order_warning(environ: Mapping[str, str], names: Sequence[str | None]) -> str | None:
    """A warning when CUDA's GPU numbering may differ from NVML's.

    CUDA numbers GPUs fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``; NVML
    numbers them by PCI bus. The two agree when all GPUs are one model, and a
    ``CUDA_VISIBLE_DEVICES`` of UUIDs pins the mapping whatever the order.
    """
    if len({n for n in names if n is not None}) < 2:
        return None
    if environ.get("CUDA_DEVICE_ORDER", "").strip().upper() == "PCI_BUS_ID":
        return None
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible and all(
        not re.fullmatch(r"[+-]?\d+", e.strip()) for e in visible.split(",") if e.strip()
    ):
        return None
    return (
        "this host has GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: "
        "CUDA may number the GPUs differently from NVML, so the GPUs measured may not be "
        "the ones the engine used; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
    )


def _visible_entry(entry: str, uuids: Sequence[str]) -> int | None:
    if not entry:
        return None
    if re.fullmatch(r"[+-]?\d+", entry):
        index = int(entry)
        return index if 0 <= index < len(uuids) else None
    if entry.upper().startswith("MIG-"):
        raise EnergyError(
            f"CUDA_VISIBLE_DEVICES names a MIG instance ({entry}); NVML reads energy per "
            "physical GPU, so a MIG instance's energy cannot be measured",
            hint="measure on a whole GPU, or use energy_sampler: estimate",
        )
    prefix = entry.lower() if entry.lower().startswith("gpu-") else f"gpu-{entry.lower()}"
    matches = [i for i, uuid in enumerate(uuids) if uuid and uuid.lower().startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


def _text_or_none(value: object) -> str | None:
    return None if value is None else text(value)
