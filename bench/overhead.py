"""Overhead of llem's measurement machinery versus a bare transformers ``generate`` loop.

Both sides run the bundled default model (``smollm2-135m``, float32, CPU or the
default device), greedy decoding, on the same prompts (llem's built-in set, seed
42), the same input ids (``llenergymeasure.engines.text.input_ids_for``, chat
template, at most 256 input tokens), the same left-padded batches in prompt
order, and the same ``max_new_tokens``. Output tokens are counted the same way
on both sides: per row, generated tokens up to and including the first EOS.

* llem side: ``run_experiment`` (one warm-up batch), reporting
  ``result.throughput.output_tokens_per_s`` = output tokens in the measured
  window / window seconds. Model loading is outside that window.
* bare side: the model and tokenizer are loaded once, outside timing; one
  warm-up ``generate`` on the first batch, then a ``time.perf_counter`` timed
  loop of ``model.generate`` over all batches under ``torch.inference_mode()``.

The two sides are interleaved rep by rep (llem first on even reps, bare first on
odd ones) so that background load on a small machine hits both alike. The final
line is the median over reps of the per-rep ratio llem tokens/s / bare tokens/s;
the target is >= 0.97. The script always exits 0: it measures, it does not test.

Each side also reports the CPU cores this process and all other processes used
during it (Linux, from ``/proc/stat``). With torch's default of one thread per
core, a competing process stalls torch's thread pool and can slow either side
several-fold, which swamps a few-percent overhead; such reps are flagged, the
median over quiet reps is printed as well, and ``--threads 1`` trades absolute
speed for much less sensitivity to other load.

Run from the repository root::

    .venv/bin/python bench/overhead.py [--n-prompts 8] [--batch-size 4] \
        [--max-output-tokens 32] [--reps 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET = 0.97
# A rep counts as quiet when other processes averaged at most this many cores on each side.
QUIET_OTHERS_CORES = 0.25
MODEL = "smollm2-135m"
SEED = 42
MAX_INPUT_TOKENS = 256


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-output-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads for both sides (0: torch's default, one per core)",
    )
    return parser.parse_args(argv)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in eos} if isinstance(eos, list | tuple) else {int(eos)}


def _count_real(row: list[int], eos: set[int]) -> int:
    """Generated tokens up to and including the first EOS; what follows is padding."""
    for k, token in enumerate(row):
        if token in eos:
            return k + 1
    return len(row)


@dataclass
class Side:
    """One side's figures for one rep."""

    tokens_per_s: float
    n_tokens: int
    seconds: float
    per_batch_s: list[float]
    cpu_mine: float = 0.0
    cpu_others: float | None = None

    def describe(self) -> str:
        batches = ", ".join(f"{s:.2f}" for s in self.per_batch_s)
        others = "unknown" if self.cpu_others is None else f"{self.cpu_others:.2f}"
        return (
            f"{self.tokens_per_s:8.2f} tok/s ({self.n_tokens} tokens in {self.seconds:.3f} s; "
            f"per batch {batches} s; cores used: this process {self.cpu_mine:.2f}, "
            f"others {others})"
        )


class Bare:
    """The bare side: model, tokenizer and batches built once, outside any timing."""

    def __init__(self, n_prompts: int, batch_size: int, max_output_tokens: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llenergymeasure.config.models import DatasetConfig
        from llenergymeasure.datasets import load_prompts
        from llenergymeasure.engines.model_files import ensure_converted
        from llenergymeasure.engines.resolve import resolve_model
        from llenergymeasure.engines.text import input_ids_for

        folder = str(ensure_converted(resolve_model(MODEL)))
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad = int(self.tokenizer.pad_token_id)
        self.eos = _eos_ids(self.model, self.tokenizer)
        self.max_output_tokens = max_output_tokens

        prompts = load_prompts(DatasetConfig(n_prompts=n_prompts), seed=SEED)
        ids = [
            input_ids_for(
                self.tokenizer,
                p.text,
                max_input_tokens=MAX_INPUT_TOKENS,
                use_chat_template=True,
            )
            for p in prompts
        ]
        device = self.model.device
        self.batches: list[tuple[Any, Any]] = []
        for start in range(0, len(ids), batch_size):
            rows = ids[start : start + batch_size]
            width = max(len(r) for r in rows)
            input_ids = torch.tensor(
                [[self.pad] * (width - len(r)) + r for r in rows], dtype=torch.long
            )
            mask = torch.tensor(
                [[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long
            )
            self.batches.append((input_ids.to(device), mask.to(device)))

    def _generate(self, input_ids: Any, mask: Any) -> Any:
        return self.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=self.max_output_tokens,
            do_sample=False,
            pad_token_id=self.pad,
        )

    def run(self) -> Side:
        """One warm-up batch, then the timed loop over all batches."""
        import torch

        sync = torch.cuda.synchronize if self.model.device.type == "cuda" else None
        with torch.inference_mode():
            self._generate(*self.batches[0])
            outputs = []
            per_batch = []
            if sync is not None:
                sync()
            t0 = time.perf_counter()
            for input_ids, mask in self.batches:
                tb = time.perf_counter()
                outputs.append((input_ids.shape[1], self._generate(input_ids, mask)))
                if sync is not None:
                    sync()
                per_batch.append(time.perf_counter() - tb)
            seconds = time.perf_counter() - t0
        n_tokens = sum(
            _count_real(row, self.eos) for width, out in outputs for row in out[:, width:].tolist()
        )
        return Side(n_tokens / seconds, n_tokens, seconds, per_batch)


def _run_llem(n_prompts: int, batch_size: int, max_output_tokens: int) -> Side:
    """One llem experiment, reported from its measured window."""
    from llenergymeasure import run_experiment

    result = run_experiment(
        {
            "engine": "transformers",
            "task": {
                "model": MODEL,
                "dataset": {"n_prompts": n_prompts},
                "max_output_tokens": max_output_tokens,
            },
            "transformers": {
                "batch_size": batch_size,
                "dtype": "float32",
                "sampling": {"do_sample": False},
            },
            "measurement": {"warmup": {"n_warmup": 1}},
        }
    )
    # Per batch: batch start -> the step that produced its last token (the slowest request).
    per_batch: dict[int, float] = {}
    for r in result.requests:
        key = r.index // batch_size
        per_batch[key] = max(per_batch.get(key, 0.0), r.latency_ms / 1000.0)
    return Side(
        tokens_per_s=result.throughput.output_tokens_per_s,
        n_tokens=result.tokens.n_output_tokens,
        seconds=result.window.duration_s,
        per_batch_s=[per_batch[k] for k in sorted(per_batch)],
    )


class _Contention:
    """CPU use of this process and of everything else on the host, over one call (Linux)."""

    def __init__(self) -> None:
        self._start = (time.perf_counter(), _process_cpu_s(), _host_busy_s())

    def stop(self) -> tuple[float, float | None]:
        """Mean cores used by this process, and by all other processes (None if unknown)."""
        wall = time.perf_counter() - self._start[0]
        mine = (_process_cpu_s() - self._start[1]) / wall
        host_end = _host_busy_s()
        if host_end is None or self._start[2] is None:
            return mine, None
        return mine, max(0.0, (host_end - self._start[2]) / wall - mine)


def _process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _host_busy_s() -> float | None:
    """Seconds of non-idle CPU time summed over all CPUs since boot, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0]
        fields = [int(v) for v in first.split()[1:8]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"overhead: model={MODEL} n_prompts={args.n_prompts} batch_size={args.batch_size} "
        f"max_output_tokens={args.max_output_tokens} reps={args.reps} "
        f"torch_threads={torch.get_num_threads()} host_cpus={os.cpu_count()}",
        flush=True,
    )
    bare = Bare(args.n_prompts, args.batch_size, args.max_output_tokens)
    llem_rates: list[float] = []
    bare_rates: list[float] = []
    ratios: list[float] = []
    quiet_ratios: list[float] = []
    like_for_like = True
    for rep in range(args.reps):
        order = ("llem", "bare") if rep % 2 == 0 else ("bare", "llem")
        sides: dict[str, Side] = {}
        for name in order:
            contention = _Contention()
            if name == "llem":
                side = _run_llem(args.n_prompts, args.batch_size, args.max_output_tokens)
            else:
                side = bare.run()
            side.cpu_mine, side.cpu_others = contention.stop()
            sides[name] = side
        llem, bare_side = sides["llem"], sides["bare"]
        ratio = llem.tokens_per_s / bare_side.tokens_per_s
        llem_rates.append(llem.tokens_per_s)
        bare_rates.append(bare_side.tokens_per_s)
        ratios.append(ratio)
        print(f"rep {rep + 1}/{args.reps} ({order[0]} first): ratio {ratio:.3f}")
        print(f"  llem {llem.describe()}")
        print(f"  bare {bare_side.describe()}", flush=True)
        busiest = max((s.cpu_others or 0.0) for s in sides.values())
        if busiest <= QUIET_OTHERS_CORES:
            quiet_ratios.append(ratio)
        else:
            print(
                f"  note: other processes used up to {busiest:.2f} cores during this rep; "
                "torch's thread pool stalls when it cannot have its cores, so this rep "
                "measures contention as much as llem (see --threads)",
                flush=True,
            )
        if llem.n_tokens != bare_side.n_tokens:
            like_for_like = False
            print(
                f"WARNING: rep {rep + 1}: bare output tokens ({bare_side.n_tokens}) != llem "
                f"n_output_tokens ({llem.n_tokens}); the comparison is NOT like-for-like",
                flush=True,
            )
    print(f"median llem tokens/s: {statistics.median(llem_rates):.2f}")
    print(f"median bare tokens/s: {statistics.median(bare_rates):.2f}")
    if quiet_ratios:
        print(
            f"median ratio over quiet reps (others <= {QUIET_OTHERS_CORES} cores on both "
            f"sides): {statistics.median(quiet_ratios):.3f} ({len(quiet_ratios)} of {args.reps})"
        )
    else:
        print(f"no quiet rep (others <= {QUIET_OTHERS_CORES} cores on both sides)")
    if not like_for_like:
        print("WARNING: output token counts differed between llem and bare (see above)")
    print(
        f"ratio llem/bare tokens/s: {statistics.median(ratios):.3f} "
        f"(median of {args.reps} reps; target >= {TARGET})"
    )
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception:  # a measurement: report the failure, but never fail the caller
        traceback.print_exc()
        print("overhead benchmark failed; no ratio", file=sys.stderr)
    sys.exit(0)
