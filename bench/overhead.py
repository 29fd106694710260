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

Run from the repository root::

    .venv/bin/python bench/overhead.py [--n-prompts 8] [--batch-size 4] \
        [--max-output-tokens 32] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from typing import Any

TARGET = 0.97
MODEL = "smollm2-135m"
SEED = 42
MAX_INPUT_TOKENS = 256


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-output-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
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


class Bare:
    """The bare side: model, tokenizer and batches built once, outside any timing."""

    def __init__(self, n_prompts: int, batch_size: int, max_output_tokens: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llenergymeasure.config.models import DatasetConfig
        from llenergymeasure.datasets import load_prompts
        from llenergymeasure.engines.resolve import resolve_model
        from llenergymeasure.engines.text import input_ids_for
        from llenergymeasure.engines.transformers import ensure_converted

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

    def run(self) -> tuple[float, int, float, list[float]]:
        """One warm-up batch, then the timed loop: (tokens/s, tokens, seconds, per-batch s)."""
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
        return n_tokens / seconds, n_tokens, seconds, per_batch


def _run_llem(n_prompts: int, batch_size: int, max_output_tokens: int) -> tuple[float, int, float]:
    """One llem experiment: (window tokens/s, window output tokens, window seconds)."""
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
    return (
        result.throughput.output_tokens_per_s,
        result.tokens.n_output_tokens,
        result.window.duration_s,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    import torch

    print(
        f"overhead: model={MODEL} n_prompts={args.n_prompts} batch_size={args.batch_size} "
        f"max_output_tokens={args.max_output_tokens} reps={args.reps} "
        f"torch_threads={torch.get_num_threads()}",
        flush=True,
    )
    bare = Bare(args.n_prompts, args.batch_size, args.max_output_tokens)
    llem_rates: list[float] = []
    bare_rates: list[float] = []
    ratios: list[float] = []
    like_for_like = True
    for rep in range(args.reps):
        order = ("llem", "bare") if rep % 2 == 0 else ("bare", "llem")
        figures: dict[str, tuple[float, int, float]] = {}
        per_batch: list[float] = []
        for side in order:
            if side == "llem":
                figures["llem"] = _run_llem(args.n_prompts, args.batch_size, args.max_output_tokens)
            else:
                rate, n, seconds, per_batch = bare.run()
                figures["bare"] = (rate, n, seconds)
        (l_rate, l_n, l_s), (b_rate, b_n, b_s) = figures["llem"], figures["bare"]
        llem_rates.append(l_rate)
        bare_rates.append(b_rate)
        ratios.append(l_rate / b_rate)
        print(
            f"rep {rep + 1}/{args.reps} ({order[0]} first): "
            f"llem {l_rate:8.2f} tok/s ({l_n} tokens in {l_s:.3f} s) | "
            f"bare {b_rate:8.2f} tok/s ({b_n} tokens in {b_s:.3f} s; batches "
            + ", ".join(f"{s:.3f}" for s in per_batch)
            + f" s) | ratio {l_rate / b_rate:.3f}",
            flush=True,
        )
        if l_n != b_n:
            like_for_like = False
            print(
                f"WARNING: rep {rep + 1}: bare output tokens ({b_n}) != llem n_output_tokens "
                f"({l_n}); the comparison is NOT like-for-like",
                flush=True,
            )
    print(f"median llem tokens/s: {statistics.median(llem_rates):.2f}")
    print(f"median bare tokens/s: {statistics.median(bare_rates):.2f}")
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
