"""GPU overhead bar: llem's transformers engine against a bare ``model.generate`` loop.

Three sides run in this one process, in rotating order, ``--reps`` times each, on the same
prompts (llem's built-in set, seed 42, chat template, at most 256 input tokens), the same
left-padded batches, dtype, device, ``max_new_tokens`` and ``min_new_tokens`` (both set to
``--max-output-tokens``, so every request yields exactly that many tokens), greedy decoding:

* ``bare``: ``model.generate`` over every batch, timed with a device synchronisation at each
  end of the loop and of each batch (the model loaded once, one warm-up batch).
* ``llem``: llem's transformers engine, loaded once through the engine registry as
  ``llem run`` loads it, warmed up on one batch; each rep is one measured window
  (``experiment.measurement.measure_window``: energy sampler begin, device sync, generate
  over every prompt, device sync, sampler end) while the power trace polls the telemetry
  sources that ``energy_sampler: auto`` chooses on this host, every ``--trace-interval-ms``.
  With ``--spine`` this side is a whole ``run_experiment`` instead (model loaded per rep;
  on a GPU each run also waits its thermal floor of at least 30 s).
* ``llem-off``: the same engine and window with no energy sampler and no trace running.
  ``llem/llem-off`` is what the energy sampler and the trace cost the engine.

``--same-model`` gives the bare loop the engine's loaded model rather than a copy of its own,
so that the two sides run on the very same weights in memory (two copies of a model can run
a few percent apart on a CPU).

In the engine's process one thread polls NVML: the trace's, whose NVML telemetry feeds the
NVML energy sampler its power samples (``energy.registry.share_nvml_polling``), as in
``llem run``. The bare side's energy figure is NVML's counter read at the loop's two ends
by a sampler with no poller, so nothing of llem's runs while the bare loop does.

``--emulate-nvml-ms MS`` gives the llem side a simulated H200 as well, every NVML call of
which takes MS milliseconds with the GIL released (as a ctypes call into the driver does;
~1 ms on the H200 VM): an NVML energy sampler read at the window's edges and fed by an NVML
telemetry source in the trace, i.e. everything llem polls on a GPU. On a host without a GPU
it shows whether that polling competes with the engine for the GIL (``llem/llem-off``).

tokens/s = output tokens / timed seconds (llem: the window). Where NVML is readable each
side also reports GPU J/token from NVML's energy counter (llem's sampler for ``llem``, the
same sampler read around the loop for ``bare``). ``--profile DIR`` then profiles one batch of
each side with ``torch.profiler`` and prints the top operators by self CPU time (chrome
traces in DIR). The last line ends with the median over reps of llem/bare tokens/s; the bar
is >= 0.97.

Run from the repository root::

    .venv/bin/python bench/gpu_overhead.py --device cpu [--model smollm2-135m|random-135m|PATH]
        [--batch-size 4] [--n-prompts 16] [--max-output-tokens 64] [--reps 3] [--threads N]

On the offline GPU machine (``../shared/device/README.md``) the bundled GGUF is not there:
``--model`` takes the random-weight folders that ``.device/setup.sh`` writes,
``/tmp/models/m135`` (SmolLM2-135M's shape) and ``/tmp/models/m1700`` (SmolLM2-1.7B's);
``scripts/gpu-overhead.sh`` runs the whole matrix there.

Exit status: 0 when it measured (the figures say whether the bar is met), 2 with one
``error:`` line for a bad argument or a problem llem reports, 1 for anything else.

On the CPU both sides run torch with one thread unless ``--threads`` says otherwise: with
torch's default of one thread per core, any other process on the host stalls the thread
pool and slows a side several-fold (20x was seen on a shared 2-core host), which swamps
the few percent measured here. Each side also reports its tokens per CPU-second of this
process, which other load moves far less than tokens per second.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from harness import (
    RANDOM_SHAPES,
    SEED,
    BareLoop,
    Reps,
    interleave,
    load_average,
    model_folder,
    random_model,
    run_llem,
    run_main,
)
from llem_side import LlemSide, counter_reader

TARGET = 0.97


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument as one ``error:`` line and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _positive(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--model",
        default="smollm2-135m",
        help=f"a name, a path, or {set(RANDOM_SHAPES)}; on the offline GPU machine the "
        "random-weight folder /tmp/models/m135 or /tmp/models/m1700",
    )
    parser.add_argument("--batch-size", type=_positive, default=4)
    parser.add_argument("--n-prompts", type=_positive, default=16)
    parser.add_argument("--max-output-tokens", type=_positive, default=64)
    parser.add_argument("--dtype", default=None, help="default: float32 on cpu, bfloat16 on cuda")
    parser.add_argument("--reps", type=_positive, default=3)
    parser.add_argument(
        "--threads",
        type=_non_negative,
        default=None,
        help="torch threads (default: 1 on cpu; 0: torch's)",
    )
    parser.add_argument("--trace-interval-ms", type=_positive, default=100)
    parser.add_argument("--spine", action="store_true", help="llem side: whole run_experiment")
    parser.add_argument(
        "--same-model", action="store_true", help="bare side: generate with llem's loaded model"
    )
    parser.add_argument("--profile", type=Path, default=None, help="profile one batch per side")
    parser.add_argument(
        "--emulate-nvml-ms",
        type=_milliseconds,
        default=0.0,
        help="measure a simulated GPU as well, each NVML call taking this long (cpu only)",
    )
    args = parser.parse_args(argv)
    if args.emulate_nvml_ms > 0 and args.device == "cuda":
        parser.error("--emulate-nvml-ms is for hosts without a GPU (--device cpu)")
    return args


def _config(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    return {
        "engine": "transformers",
        "task": {
            "model": str(folder),
            "dataset": {"n_prompts": args.n_prompts},
            "max_output_tokens": args.max_output_tokens,
            "random_seed": SEED,
        },
        "transformers": {
            "batch_size": args.batch_size,
            "dtype": args.dtype,
            "device_map": "cuda:0" if args.device == "cuda" else "cpu",
            "sampling": {"do_sample": False, "min_new_tokens": args.max_output_tokens},
        },
        "measurement": {
            "warmup": {"n_warmup": 1, "thermal_floor_s": 0},
            "baseline": {"enabled": False},
            "sample_interval_ms": args.trace_interval_ms,
        },
    }


def _engine_weights(llem: LlemSide) -> Any:
    """The transformers model inside llem's engine (private: the bench reaches in on purpose)."""
    from llenergymeasure.engines.transformers import TransformersLoadedModel

    assert isinstance(llem.model, TransformersLoadedModel)
    return llem.model._model


def _profile(out: Path, bare: BareLoop, llem: LlemSide) -> None:
    """One batch of each side under torch.profiler: top operators, and chrome traces."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    out.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available() and bare.model.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    calls: dict[str, Callable[[], object]] = {
        "bare": lambda: bare.generate(*bare.batches[0]),
        "llem": lambda: llem.model.generate(llem.one_batch),
    }
    for name, call in calls.items():
        with torch.inference_mode(), profile(activities=activities) as prof:
            call()
            bare.synchronize()
        prof.export_chrome_trace(str(out / f"{name}.json"))
        print(f"--- profile: {name}, one batch (top 15 by self CPU time) ---")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    print(f"step marker: {_marker_cost_s(bare.model.device) * 1e6:.1f} µs of host time per step")


def _marker_cost_s(device: Any, n_calls: int = 2000) -> float:
    """Host time of one call of llem's per-step marker, as the engine sets it up."""
    import torch

    from llenergymeasure.engines.timing import (
        EventStepClock,
        HostStepClock,
        StepClock,
        StepMarker,
    )

    clock: StepClock = HostStepClock()
    if device.type == "cuda":
        clock = EventStepClock(lambda: torch.cuda.Event(enable_timing=True))
    ids = torch.zeros((4, 16), dtype=torch.long, device=device)
    marker = StepMarker(clock)
    clock.start()
    marker(ids, None)
    began = time.perf_counter()
    for _ in range(n_calls):
        marker(ids, None)
    spent_s = time.perf_counter() - began
    clock.resolve([0])
    return spent_s / n_calls


def _energy_lines(reps: Reps) -> list[str]:
    joules = {
        name: [j for r in reps.reps if (j := r[name].gpu_j_per_token) is not None]
        for name in ("llem", "bare")
    }
    if not joules["llem"] or not joules["bare"]:
        return ["GPU J/token: not measured (NVML not readable on this host)"]
    import statistics

    llem_j, bare_j = statistics.median(joules["llem"]), statistics.median(joules["bare"])
    return [f"GPU J/token (NVML counter, median): llem {llem_j:.4f}, bare {bare_j:.4f}"]


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    import torch

    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    if args.threads is None:
        # On a CPU another process stalls torch's thread pool (one thread per core) and
        # slows a side several-fold, far more than the overhead measured here; one thread
        # only loses its share of a core.
        args.threads = 1 if args.device == "cpu" else 0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="llem-gpu-overhead-"))
    try:
        if args.model in RANDOM_SHAPES:
            folder = random_model(args.model, scratch)
        else:
            folder = model_folder(args.model)
        print(
            f"gpu_overhead: device={args.device} model={args.model} dtype={args.dtype} "
            f"batch_size={args.batch_size} n_prompts={args.n_prompts} "
            f"tokens={args.max_output_tokens} (min_new_tokens too) reps={args.reps} "
            f"trace_interval_ms={args.trace_interval_ms} emulate_nvml_ms={args.emulate_nvml_ms} "
            f"torch_threads={torch.get_num_threads()}"
            f"; {load_average()}",
            flush=True,
        )
        _compare(args, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _compare(args: argparse.Namespace, folder: Path) -> None:
    llem = LlemSide(_config(args, folder), args.emulate_nvml_ms)
    bare = BareLoop(
        folder,
        n_prompts=args.n_prompts,
        batch_size=args.batch_size,
        max_new_tokens=args.max_output_tokens,
        min_new_tokens=args.max_output_tokens,
        dtype=args.dtype,
        device="cuda:0" if args.device == "cuda" else "cpu",
        # the engine's own transformers model: one copy of the weights for both sides
        model=_engine_weights(llem) if args.same_model else None,
    )
    counter = counter_reader(args.device)
    try:
        runs = {
            "llem": (lambda: run_llem(_config(args, folder)))
            if args.spine
            else (lambda: llem.run(measured=True)),
            "bare": lambda: bare.run(counter),
            "llem-off": lambda: llem.run(measured=False),
        }
        reps = interleave(runs, args.reps)
        if args.profile is not None:
            _profile(args.profile, bare, llem)
        print(load_average())
        for line in [*reps.summary("llem", "bare"), *reps.summary("llem", "llem-off")]:
            print(line)
        print(
            f"energy sampler and trace on/off (llem/llem-off, median): "
            f"{reps.median_ratio('llem', 'llem-off'):.3f}"
        )
        if llem.achieved_rates:
            print(f"trace achieved rate in the windows: {min(llem.achieved_rates):.2f}x (worst)")
        print(f"llem's threads during its windows: {', '.join(sorted(llem.threads)) or 'none'}")
        for line in _energy_lines(reps):
            print(line)
        print(
            f"target >= {TARGET}; ratio llem/bare output tokens/s (median of {args.reps} reps): "
            f"{reps.median_ratio('llem', 'bare'):.3f}"
        )
    finally:
        llem.close()


if __name__ == "__main__":
    run_main(main, "gpu overhead benchmark")
