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

from harness import BareLoop, interleave, model_folder, run_llem, run_main

TARGET = 0.97
MODEL = "smollm2-135m"


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


def _llem_config(n_prompts: int, batch_size: int, max_output_tokens: int) -> dict[str, object]:
    return {
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
    bare = BareLoop(
        model_folder(MODEL),
        n_prompts=args.n_prompts,
        batch_size=args.batch_size,
        max_new_tokens=args.max_output_tokens,
    )
    config = _llem_config(args.n_prompts, args.batch_size, args.max_output_tokens)
    reps = interleave({"llem": lambda: run_llem(config), "bare": bare.run}, args.reps)
    for line in reps.summary("llem", "bare"):
        print(line)
    print(
        f"ratio llem/bare tokens/s: {reps.median_ratio('llem', 'bare'):.3f} "
        f"(median of {args.reps} reps; target >= {TARGET})"
    )
    return 0


if __name__ == "__main__":
    run_main(main, "overhead benchmark")
