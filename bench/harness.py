"""What the overhead benches share: the bare ``model.generate`` loop they compare llem with,
the per-side figures, and the CPU contention meter.

The bare loop gets exactly the model input llem's transformers engine gets: llem's prompt
set (seed 42), chat template and truncation (``engines.text.prompt_ids``), left-padded
batches in prompt order, the same dtype, device, ``max_new_tokens`` and ``min_new_tokens``,
greedy decoding. Output tokens are counted the same way on both sides: per row, generated
tokens up to and including the first end-of-sequence token.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEED = 42
MAX_INPUT_TOKENS = 256
# A rep counts as quiet when other processes averaged at most this many cores on each side.
QUIET_OTHERS_CORES = 0.25
# The random-weight models built for GPU runs (../shared/device/random_model.py): the bundled
# SmolLM2-135M's own config, and SmolLM2-1.7B's shape.
RANDOM_SHAPES: dict[str, dict[str, int]] = {
    "random-135m": {},
    "random-1.7b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 24,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "head_dim": 64,
    },
}


def count_real(row: list[int], eos: set[int]) -> int:
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
    per_batch_s: list[float] = field(default_factory=list)
    gpu_j: float | None = None
    cpu_s: float | None = None  # this process's CPU seconds over the timed section
    cpu_mine: float = 0.0
    cpu_others: float | None = None

    @property
    def gpu_j_per_token(self) -> float | None:
        return self.gpu_j / self.n_tokens if self.gpu_j is not None and self.n_tokens else None

    def describe(self) -> str:
        batches = ", ".join(f"{s:.2f}" for s in self.per_batch_s)
        others = "unknown" if self.cpu_others is None else f"{self.cpu_others:.2f}"
        joules = self.gpu_j_per_token
        energy = "" if joules is None else f"; GPU {joules:.4f} J/token"
        return (
            f"{self.tokens_per_s:8.2f} tok/s ({self.n_tokens} tokens in {self.seconds:.3f} s; "
            f"per batch {batches} s{energy}; cores used: this process {self.cpu_mine:.2f}, "
            f"others {others})"
        )


def model_folder(model: str) -> Path:
    """A transformers-loadable folder for a model name, path or ``.gguf`` (converted once)."""
    from llenergymeasure.engines.model_files import hf_folder
    from llenergymeasure.engines.resolve import resolve_model

    folder, _ = hf_folder(resolve_model(model))
    return folder


def random_model(name: str, out: Path) -> Path:
    """A random-weight Llama of one of RANDOM_SHAPES, with the bundled model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = out / name
    if (folder / "config.json").is_file():
        return folder
    bundled = model_folder("smollm2-135m")
    config = LlamaConfig.from_pretrained(str(bundled), **RANDOM_SHAPES[name])
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(bundled)).save_pretrained(folder)
    return folder


class BareLoop:
    """The bare side: model, tokenizer and batches built once, outside any timing.

    ``model`` is an already loaded transformers model to generate with instead of loading
    one from ``folder`` (to compare the two sides on the very same weights in memory).
    """

    def __init__(
        self,
        folder: Path,
        *,
        n_prompts: int,
        batch_size: int,
        max_new_tokens: int,
        min_new_tokens: int | None = None,
        dtype: str = "float32",
        device: str | None = None,
        model: Any = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from llenergymeasure.config.models import DatasetConfig
        from llenergymeasure.datasets import load_prompts
        from llenergymeasure.engines.model_files import quiet_transformers, stop_ids
        from llenergymeasure.engines.text import prompt_ids, resolve_chat_template

        quiet_transformers()
        extra = {"device_map": device} if device else {}
        self.model = model or AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=getattr(torch, dtype), **extra
        )
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad = int(self.tokenizer.pad_token_id)
        self.eos = set(stop_ids(self.model.generation_config.eos_token_id, self.tokenizer))
        self.options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
        if min_new_tokens is not None:
            self.options["min_new_tokens"] = min_new_tokens
        prompts = load_prompts(DatasetConfig(n_prompts=n_prompts), seed=SEED)
        ids = prompt_ids(
            self.tokenizer,
            [p.text for p in prompts],
            max_input_tokens=MAX_INPUT_TOKENS,
            use_chat_template=resolve_chat_template(self.tokenizer, None),
        )
        self.batches = [
            self._batch(ids[start : start + batch_size]) for start in range(0, len(ids), batch_size)
        ]

    def _batch(self, rows: list[list[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(r) for r in rows)
        input_ids = torch.tensor([[self.pad] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return input_ids.to(self.model.device), mask.to(self.model.device)

    def generate(self, input_ids: Any, mask: Any) -> Any:
        """One bare ``model.generate`` call."""
        return self.model.generate(
            input_ids=input_ids, attention_mask=mask, pad_token_id=self.pad, **self.options
        )

    def synchronize(self) -> None:
        if self.model.device.type == "cuda":
            import torch

            torch.cuda.synchronize()

    def run(self, energy: Any = None) -> Side:
        """One warm-up batch, then the timed loop over all batches.

        ``energy`` is an energy sampler (``begin``/``end``) read around the timed loop.
        """
        import torch

        with torch.inference_mode():
            self.generate(*self.batches[0])
            outputs = []
            per_batch = []
            self.synchronize()
            if energy is not None:
                energy.begin()
            cpu0 = process_cpu_s()
            t0 = time.perf_counter()
            for input_ids, mask in self.batches:
                tb = time.perf_counter()
                outputs.append((input_ids.shape[1], self.generate(input_ids, mask)))
                self.synchronize()
                per_batch.append(time.perf_counter() - tb)
            seconds = time.perf_counter() - t0
            cpu_s = process_cpu_s() - cpu0
            reading = energy.end() if energy is not None else None
        n_tokens = sum(
            count_real(row, self.eos) for width, out in outputs for row in out[:, width:].tolist()
        )
        return Side(n_tokens / seconds, n_tokens, seconds, per_batch, gpu_joules(reading), cpu_s)


def run_llem(config: Mapping[str, Any]) -> Side:
    """One llem experiment (``run_experiment``), reported from its measured window."""
    from llenergymeasure import run_experiment

    result = run_experiment(dict(config))
    batch_size = result.config.batch_size
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
        gpu_j=gpu_joules(result.energy),
    )


def gpu_joules(reading: Any) -> float | None:
    """GPU energy of an energy reading (its ``gpu:*`` domains); None without one."""
    if reading is None:
        return None
    found = [d.energy_j for d in reading.domains if d.domain.startswith("gpu:")]
    return None if not found or None in found else float(sum(found))


class Contention:
    """CPU use of this process and of everything else on the host, over one call (Linux)."""

    def __init__(self) -> None:
        self._start = (time.perf_counter(), process_cpu_s(), _host_busy_s())

    def stop(self) -> tuple[float, float | None]:
        """Mean cores used by this process, and by all other processes (None if unknown)."""
        wall = time.perf_counter() - self._start[0]
        mine = (process_cpu_s() - self._start[1]) / wall
        host_end = _host_busy_s()
        if host_end is None or self._start[2] is None:
            return mine, None
        return mine, max(0.0, (host_end - self._start[2]) / wall - mine)


def measured(run: Callable[[], Side]) -> Side:
    """``run()``, with the cores this process and all others used while it ran."""
    contention = Contention()
    side = run()
    side.cpu_mine, side.cpu_others = contention.stop()
    return side


@dataclass
class Reps:
    """Interleaved reps of named sides: ``reps[k][name]`` is that side in rep ``k``."""

    names: tuple[str, ...]
    reps: list[dict[str, Side]] = field(default_factory=list)

    def ratios(self, a: str, b: str, *, quiet_only: bool = False) -> list[float]:
        """Per rep, side ``a``'s tokens/s over side ``b``'s (quiet reps only, if asked)."""
        return [
            rep[a].tokens_per_s / rep[b].tokens_per_s
            for rep in self.reps
            if not quiet_only
            or max(rep[a].cpu_others or 0.0, rep[b].cpu_others or 0.0) <= QUIET_OTHERS_CORES
        ]

    def median_ratio(self, a: str, b: str) -> float:
        return statistics.median(self.ratios(a, b))

    def summary(self, a: str, b: str) -> list[str]:
        """Medians of the two sides, their ratio over quiet reps, a like-for-like check."""
        lines = []
        for name in (a, b):
            rate = statistics.median(r[name].tokens_per_s for r in self.reps)
            lines.append(f"median {name} tokens/s: {rate:.2f}")
        quiet = self.ratios(a, b, quiet_only=True)
        if quiet:
            lines.append(
                f"median {a}/{b} ratio over quiet reps (others <= {QUIET_OTHERS_CORES} cores "
                f"on both sides): {statistics.median(quiet):.3f} ({len(quiet)} of "
                f"{len(self.reps)})"
            )
        else:
            lines.append(f"no quiet rep for {a}/{b} (others <= {QUIET_OTHERS_CORES} cores)")
        per_cpu = [
            (r[a].n_tokens / a_cpu_s) / (r[b].n_tokens / b_cpu_s)
            for r in self.reps
            if (a_cpu_s := r[a].cpu_s) and (b_cpu_s := r[b].cpu_s)
        ]
        if per_cpu:
            # CPU time moves far less than wall time with other load on the host.
            lines.append(
                f"median {a}/{b} ratio of tokens per CPU-second of this process: "
                f"{statistics.median(per_cpu):.3f} ({len(per_cpu)} reps)"
            )
        if any(r[a].n_tokens != r[b].n_tokens for r in self.reps):
            lines.append(
                f"WARNING: output token counts differed between {a} and {b}: NOT like-for-like"
            )
        return lines


def interleave(runs: Mapping[str, Callable[[], Side]], reps: int) -> Reps:
    """``reps`` rounds of every side, each round starting one side later than the one before
    (two sides: alternating), so that drifting background load hits all alike; each round
    is printed as it ends."""
    names = tuple(runs)
    result = Reps(names)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        sides = {name: measured(runs[name]) for name in order}
        result.reps.append(sides)
        print(f"rep {rep + 1}/{reps} (order: {', '.join(order)})")
        for name in names:
            print(f"  {name:<10} {sides[name].describe()}", flush=True)
        busiest = max(s.cpu_others or 0.0 for s in sides.values())
        if busiest > QUIET_OTHERS_CORES:
            print(
                f"  note: other processes used up to {busiest:.2f} cores during this rep; "
                "torch's thread pool stalls when it cannot have its cores, so this rep "
                "measures contention as much as the harness (see --threads)",
                flush=True,
            )
    return result


def process_cpu_s() -> float:
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


def run_main(main: Callable[[], int], name: str) -> None:
    """Run a bench's ``main`` and exit with its status: 0 when it measured (whatever the
    figures), 2 with one ``error: ...`` line for a problem llem reports (a missing model, a
    bad setting), 1 with the traceback for anything else."""
    from llenergymeasure.errors import LlemError

    try:
        code = main()
    except LlemError as err:
        hint = f" ({err.hint})" if err.hint else ""
        print(f"error: {err.message}{hint}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        traceback.print_exc()
        print(f"{name} failed; no ratio", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"
