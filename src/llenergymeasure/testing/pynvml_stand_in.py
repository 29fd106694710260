"""A stand-in ``pynvml`` module backed by the simulated NVML, for runs in other processes.

:func:`write_stand_in` writes a ``pynvml.py`` into a folder; a process with that folder
first on its ``PYTHONPATH`` imports it in place of nvidia-ml-py, and ``llem`` measures
simulated H200s through its ordinary NVML code path::

    folder = write_stand_in(tmp_path, n_gpus=1, omit=["nvmlDeviceGetFieldValues"])
    subprocess.run(["llem", "run", ...], env={"PYTHONPATH": str(folder), ...})

``omit`` drops NVML functions from the module, as an older pynvml or driver would lack
them; ``gpu`` overrides :class:`~llenergymeasure.testing.simulated_gpu.SimulatedGpu`
fields (JSON values only); ``context`` opens a CUDA context of the importing process on
every GPU, as an engine that has loaded its model holds one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from llenergymeasure.testing.h200 import h200_nvml
from llenergymeasure.testing.simulated_nvml import SimulatedNvml

__all__ = ["populate", "write_stand_in"]

_MODULE = '''"""A stand-in pynvml: simulated H200s (llenergymeasure.testing.pynvml_stand_in)."""
from llenergymeasure.testing.pynvml_stand_in import populate

populate(globals(), {spec!r})
'''


def write_stand_in(
    folder: Path,
    *,
    n_gpus: int = 1,
    omit: Iterable[str] = (),
    gpu: Mapping[str, Any] | None = None,
    context: bool = False,
) -> Path:
    """Write ``folder/pynvml.py``; returns ``folder`` (put it first on ``PYTHONPATH``)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = json.dumps(
        {"n_gpus": n_gpus, "omit": list(omit), "gpu": dict(gpu or {}), "context": context}
    )
    (folder / "pynvml.py").write_text(_MODULE.format(spec=spec), encoding="utf-8")
    return folder


def populate(namespace: dict[str, Any], spec_json: str) -> SimulatedNvml:
    """Fill a module's namespace with a simulated NVML's functions, constants and errors."""
    spec = json.loads(spec_json)
    omitted = set(spec.get("omit", ()))
    nvml = h200_nvml(int(spec.get("n_gpus", 1)), gpu=spec.get("gpu") or None, omit=omitted)
    for name in dir(nvml):
        if name.startswith(("nvml", "NVML")) and name not in omitted:
            namespace[name] = getattr(nvml, name)
    namespace["simulation"] = nvml
    if spec.get("context"):
        for index in range(len(nvml.gpus)):
            nvml.open_context(index)
    return nvml
