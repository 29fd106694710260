"""Engine parity: is a comparison of two engines on the same workload like for like?

A study over ``engine: [transformers, vllm]`` gives configs that are identical except for
the engine and its section. For each such group, every pair of configs on different
engines is compared setting by setting, from what the completed runs recorded (the
precision and device actually used, the engine's effective arguments, the token counts)
rather than from the config alone:

- settings that make the figures incomparable when they differ (model, device, tokenizer,
  truncation, stop criteria, decoding, concurrency cap, precision, quantisation) mark the
  pair ``like_for_like: false`` with one reason each;
- settings that differ by the engines' nature (static batches vs continuous batching, the
  KV cache layout) are listed, but do not by themselves spoil the comparison;
- with greedy decoding on both sides, the generated token ids are compared request by
  request: the share whose first ``k`` tokens agree, and the share that is identical.

Everything here is pure: it reads ``result.json`` files and returns a model.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.config.models import (
    ENGINE_NAMES,
    ExperimentConfig,
    TensorRTConfig,
    TransformersConfig,
    VLLMConfig,
)
from llenergymeasure.records.result import ExperimentResult

__all__ = [
    "FIRST_TOKENS_COMPARED",
    "ConfigRef",
    "EntryLike",
    "OutputAgreement",
    "ParityComparison",
    "ParityGroup",
    "ParityMember",
    "ParitySetting",
    "StudyParity",
    "compare_engines",
    "study_parity",
]

# Greedy outputs of two engines drift apart after the first near-tie in the logits;
# the first tokens say whether the engines compute the same thing at all.
FIRST_TOKENS_COMPARED = 16
_ENGINE_DEFAULT = "engine default"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParityMember(_Frozen):
    """One config of a parity group."""

    index: int = Field(description="1-based config index in the study")
    label: str
    config_hash: str
    engine: str
    n_results: int = Field(description="completed runs (cycles) read")


class ParitySetting(_Frozen):
    """One setting on both sides of a comparison."""

    name: str
    a: str
    b: str
    differs: bool
    affects_like_for_like: bool = Field(
        description="a difference here makes the comparison not like for like"
    )


class OutputAgreement(_Frozen):
    """How often the two engines generated the same tokens for the same prompt."""

    comparable: bool
    note: str = Field(description="what was compared, or why nothing was")
    k: int = Field(description="leading generated tokens compared for `first_k_identical`")
    n_requests: int = Field(description="request pairs compared (same prompt, same cycle)")
    first_k_identical: float | None = Field(description="share whose first k tokens agree")
    fully_identical: float | None = Field(description="share whose whole output agrees")
    input_tokens_identical: float | None = Field(
        description="share of requests given the same number of input tokens by both engines"
    )


class ParityComparison(_Frozen):
    """Two configs of a group, on different engines."""

    a: int = Field(description="config index of side a")
    b: int = Field(description="config index of side b")
    settings: tuple[ParitySetting, ...]
    differing: tuple[str, ...] = Field(description="names of the settings that differ")
    agreement: OutputAgreement
    like_for_like: bool
    reasons: tuple[str, ...] = Field(description="why not like for like; empty when it is")


class ParityGroup(_Frozen):
    """Configs identical except for the engine and the engine sections."""

    members: tuple[ParityMember, ...]
    comparisons: tuple[ParityComparison, ...]


class StudyParity(_Frozen):
    """The ``parity`` block of ``study_result.json``."""

    like_for_like: bool = Field(description="every comparison of every group is like for like")
    groups: tuple[ParityGroup, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigRef:
    """Which study config a result belongs to."""

    index: int
    label: str
    config_hash: str


class EntryLike(Protocol):
    """A manifest entry, as far as parity needs it."""

    @property
    def index(self) -> int: ...

    @property
    def label(self) -> str: ...

    @property
    def config_hash(self) -> str: ...

    @property
    def cycle(self) -> int: ...

    @property
    def status(self) -> str: ...

    @property
    def result(self) -> str | None: ...


# ------------------------------------------------------------------ reading a study


def study_parity(study_dir: Path, entries: Iterable[EntryLike]) -> StudyParity | None:
    """The parity block of a study whose completed runs used more than one engine; else None.

    One result per config is read first to learn the engines, the rest only when needed.
    """
    by_config: dict[str, list[EntryLike]] = {}
    for entry in entries:
        if entry.status == "completed" and entry.result is not None:
            by_config.setdefault(entry.config_hash, []).append(entry)
    notes: list[str] = []
    first: dict[str, ExperimentResult] = {}
    for config_hash, group in by_config.items():
        group.sort(key=lambda e: e.cycle)
        result = _read(study_dir, group[0], notes)
        if result is not None:
            first[config_hash] = result
    if len({r.engine for r in first.values()}) < 2:
        return None
    runs: list[tuple[ConfigRef, ExperimentResult]] = []
    for config_hash, result in first.items():
        group = by_config[config_hash]
        ref = ConfigRef(group[0].index, group[0].label, config_hash)
        runs.append((ref, result))
        for entry in group[1:]:
            more = _read(study_dir, entry, notes)
            if more is not None:
                runs.append((ref, more))
    parity = compare_engines(runs)
    if parity is None or not notes:
        return parity
    return parity.model_copy(update={"notes": (*parity.notes, *notes)})


def _read(study_dir: Path, entry: EntryLike, notes: list[str]) -> ExperimentResult | None:
    folder = Path(entry.result or "")
    file = (folder if folder.is_absolute() else study_dir / folder) / "result.json"
    try:
        return ExperimentResult.model_validate_json(file.read_bytes())
    except (OSError, ValidationError, json.JSONDecodeError) as err:
        notes.append(f"run {entry.index}/c{entry.cycle}: {file} unreadable ({type(err).__name__})")
        return None


# ------------------------------------------------------------------ comparing


def compare_engines(runs: Sequence[tuple[ConfigRef, ExperimentResult]]) -> StudyParity | None:
    """Group runs by config-minus-engine and compare each cross-engine pair; None when no
    group holds two engines. ``runs`` holds every completed cycle of every config."""
    by_config: dict[str, tuple[ConfigRef, list[ExperimentResult]]] = {}
    for ref, result in runs:
        by_config.setdefault(ref.config_hash, (ref, []))[1].append(result)
    groups: dict[str, list[tuple[ConfigRef, list[ExperimentResult]]]] = {}
    for ref, results in by_config.values():
        results.sort(key=_cycle_key)
        groups.setdefault(_workload_key(results[0].config), []).append((ref, results))
    found = []
    for members in groups.values():
        if len({results[0].engine for _, results in members}) < 2:
            continue
        members.sort(key=lambda m: m[0].index)
        comparisons = [
            _compare(a, b)
            for a, b in itertools.combinations(members, 2)
            if a[1][0].engine != b[1][0].engine
        ]
        found.append(
            ParityGroup(
                members=tuple(
                    ParityMember(
                        index=ref.index,
                        label=ref.label,
                        config_hash=ref.config_hash,
                        engine=results[0].engine,
                        n_results=len(results),
                    )
                    for ref, results in members
                ),
                comparisons=tuple(comparisons),
            )
        )
    if not found:
        return None
    found.sort(key=lambda g: g.members[0].index)
    return StudyParity(
        like_for_like=all(c.like_for_like for g in found for c in g.comparisons),
        groups=tuple(found),
    )


def _cycle_key(result: ExperimentResult) -> str:
    return result.window.started_at.isoformat()


def _workload_key(config: ExperimentConfig) -> str:
    """The config with the engine and every engine section left out."""
    data = config.model_dump(mode="json")
    for name in ("engine", *ENGINE_NAMES):
        data.pop(name, None)
    return json.dumps(data, sort_keys=True)


@dataclass(frozen=True)
class _Setting:
    value: str
    affects_like_for_like: bool


def _profile(result: ExperimentResult) -> dict[str, _Setting]:
    """Every compared setting of one run, as text; names are shared by all engines."""
    config, engine = result.config, result.engine
    task = config.task
    chat = {None: "when the model has one", True: "on", False: "off"}[task.chat_template]
    applied = _find(result.engine_args, "chat_template")
    if isinstance(applied, bool):
        chat = "on" if applied else "off"
    return {
        "model loaded": _Setting(_model_loaded(result), True),
        "device": _Setting(result.model.device or "unknown", True),
        "tokenizer": _Setting(
            "fake word tokenizer" if engine == "fake" else "the model's Hugging Face tokenizer",
            True,
        ),
        "chat template": _Setting(chat, True),
        "truncation (max_input_tokens)": _Setting(str(task.max_input_tokens), True),
        "max_output_tokens": _Setting(str(task.max_output_tokens), True),
        "stop criteria": _Setting(_stop_criteria(config), True),
        "decoding": _Setting(_decoding(config), True),
        "batch semantics": _Setting(_batch_semantics(result), False),
        "max concurrent requests": _Setting(_concurrency(result), True),
        "KV cache": _Setting(_kv_cache(result), False),
        "KV cache precision": _Setting(_kv_precision(result), True),
        "precision used": _Setting(_dtype(result.model.dtype), True),
        "weight quantisation": _Setting(_quantisation(config), True),
        "methodology": _Setting(result.methodology.version, True),
    }


def _model_loaded(result: ExperimentResult) -> str:
    """The weights by content when known: two environments hold the same file at two paths."""
    model = result.model
    if model.fingerprint is not None:
        return f"{model.resolved_label} ({model.kind}, content {model.fingerprint})"
    return f"{model.resolved} ({model.kind})"


def _compare(
    a: tuple[ConfigRef, list[ExperimentResult]], b: tuple[ConfigRef, list[ExperimentResult]]
) -> ParityComparison:
    (ref_a, runs_a), (ref_b, runs_b) = a, b
    profile_a, profile_b = _profile(runs_a[0]), _profile(runs_b[0])
    settings = tuple(
        ParitySetting(
            name=name,
            a=profile_a[name].value,
            b=profile_b[name].value,
            differs=profile_a[name].value != profile_b[name].value,
            affects_like_for_like=profile_a[name].affects_like_for_like,
        )
        for name in profile_a
    )
    agreement = _agreement(runs_a, runs_b, profile_a["decoding"].value, profile_b["decoding"].value)
    reasons = [
        f"{s.name} differs: {s.a} vs {s.b}"
        for s in settings
        if s.differs and s.affects_like_for_like
    ]
    if any(p["decoding"].value.startswith("model default") for p in (profile_a, profile_b)):
        reasons.append(
            "decoding is left to the model's generation config on one side: pin it "
            "(transformers.sampling.do_sample, or sampling.temperature of vllm/tensorrt)"
        )
    identical_inputs = agreement.input_tokens_identical
    if identical_inputs is not None and identical_inputs < 1.0:
        reasons.append(
            f"the engines tokenised the prompts differently: input token counts agree for "
            f"{identical_inputs:.0%} of requests"
        )
    if agreement.n_requests == 0 and agreement.note.startswith("not comparable: different"):
        reasons.append(agreement.note.removeprefix("not comparable: "))
    return ParityComparison(
        a=ref_a.index,
        b=ref_b.index,
        settings=settings,
        differing=tuple(s.name for s in settings if s.differs),
        agreement=agreement,
        like_for_like=not reasons,
        reasons=tuple(reasons),
    )


def _agreement(
    runs_a: list[ExperimentResult], runs_b: list[ExperimentResult], decoding_a: str, decoding_b: str
) -> OutputAgreement:
    k = FIRST_TOKENS_COMPARED
    pairs = _paired_runs(runs_a, runs_b)
    n = same_inputs = first_k = full = 0
    with_ids = 0
    prompts_match = True
    for run_a, run_b in pairs:
        requests_b = {r.index: r for r in run_b.requests}
        for req_a in run_a.requests:
            req_b = requests_b.get(req_a.index)
            if req_b is None:
                continue
            if req_b.prompt_id != req_a.prompt_id:
                prompts_match = False
                continue
            n += 1
            same_inputs += req_a.n_input_tokens == req_b.n_input_tokens
            if req_a.output_sha256 is None or req_b.output_sha256 is None:
                continue
            with_ids += 1
            first_k += req_a.first_token_ids[:k] == req_b.first_token_ids[:k]
            full += req_a.output_sha256 == req_b.output_sha256
    share_inputs = same_inputs / n if n else None
    if n == 0:
        note = (
            "not comparable: different prompts (request order or dataset differs)"
            if not prompts_match
            else "not comparable: no request of one run matches a request of the other"
        )
        return OutputAgreement(
            comparable=False,
            note=note,
            k=k,
            n_requests=0,
            first_k_identical=None,
            fully_identical=None,
            input_tokens_identical=None,
        )
    greedy = decoding_a == "greedy" and decoding_b == "greedy"
    if not greedy:
        note = "not comparable: sampling" + (
            "" if "sampling" in (decoding_a + decoding_b) else f" ({decoding_a} vs {decoding_b})"
        )
    elif with_ids == 0:
        note = "not comparable: the results carry no generated token ids"
    else:
        note = (
            f"greedy on both: {with_ids} request pairs from {len(pairs)} matched run(s), "
            f"first {k} generated tokens and whole outputs compared"
        )
    comparable = greedy and with_ids > 0
    return OutputAgreement(
        comparable=comparable,
        note=note,
        k=k,
        n_requests=with_ids if comparable else n,
        first_k_identical=first_k / with_ids if comparable else None,
        fully_identical=full / with_ids if comparable else None,
        input_tokens_identical=share_inputs,
    )


def _paired_runs(
    runs_a: list[ExperimentResult], runs_b: list[ExperimentResult]
) -> list[tuple[ExperimentResult, ExperimentResult]]:
    """Runs of the same cycle position side by side (the first of each when counts differ)."""
    n = min(len(runs_a), len(runs_b))
    return list(zip(runs_a[:n], runs_b[:n], strict=True))


# ------------------------------------------------------------------ settings, per engine


def _find(args: Mapping[str, Any], name: str) -> Any:
    """The first value stored under ``name`` anywhere in the engine's (nested) arguments."""
    if name in args:
        return args[name]
    for value in args.values():
        if isinstance(value, Mapping):
            found = _find(value, name)
            if found is not None:
                return found
    return None


def _or_default(value: Any) -> str:
    return _ENGINE_DEFAULT if value is None else str(value)


def _decoding(config: ExperimentConfig) -> str:
    """``greedy``, ``sampling (...)``, ``beam search (...)`` or ``model default (...)``."""
    engine = config.engine
    if engine == "fake":
        return "greedy"
    if engine == "transformers":
        t = config.transformers or TransformersConfig()
        s = t.sampling
        if t.num_beams is not None and t.num_beams > 1:
            return f"beam search (num_beams={t.num_beams})"
        if s.do_sample is False:
            return "greedy" + _penalty(s.repetition_penalty)
        if s.do_sample is None:
            return "model default (transformers.sampling.do_sample unset)"
        return "sampling" + _params(s.temperature, s.top_k, s.top_p, s.repetition_penalty)
    if engine == "vllm":
        v = (config.vllm or VLLMConfig()).sampling
        if v.temperature == 0.0:
            return "greedy" + _penalty(v.repetition_penalty)
        return "sampling" + _params(v.temperature, v.top_k, v.top_p, v.repetition_penalty)
    if engine == "tensorrt":
        r = (config.tensorrt or TensorRTConfig()).sampling
        if r.temperature == 0.0 or r.top_k == 1:
            return "greedy" + _penalty(r.repetition_penalty)
        return "sampling" + _params(r.temperature, r.top_k, r.top_p, r.repetition_penalty)
    return "model default (unknown engine)"


def _penalty(repetition_penalty: float | None) -> str:
    if repetition_penalty is None or repetition_penalty == 1.0:
        return ""
    return f" (repetition_penalty={repetition_penalty})"


def _params(
    temperature: float | None, top_k: int | None, top_p: float | None, penalty: float | None
) -> str:
    shown = [
        f"{name}={_or_default(value)}"
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p))
    ]
    if penalty is not None:
        shown.append(f"repetition_penalty={penalty}")
    return f" ({', '.join(shown)})"


def _stop_criteria(config: ExperimentConfig) -> str:
    """When a request stops, beyond max_output_tokens."""
    exact = config.task.dataset.output_len
    if exact is not None:
        return f"exactly {exact} tokens (synthetic output_len)"
    engine = config.engine
    minimum: int | None = None
    if engine == "fake":
        fake = config.fake
        n = fake.output_tokens if fake is not None else None
        return "max_output_tokens only" if n is None else f"exactly {n} tokens (fake engine)"
    if engine == "transformers":
        minimum = (config.transformers or TransformersConfig()).sampling.min_new_tokens
    elif engine == "vllm":
        sampling = (config.vllm or VLLMConfig()).sampling
        if sampling.ignore_eos:
            return "max_output_tokens only (ignore_eos)"
        minimum = sampling.min_tokens
    elif engine == "tensorrt":
        minimum = (config.tensorrt or TensorRTConfig()).sampling.min_tokens
    text = "end-of-sequence token or max_output_tokens"
    return text if not minimum else f"{text}, at least {minimum} tokens"


def _batch_semantics(result: ExperimentResult) -> str:
    config = result.config
    if config.engine in ("transformers", "fake"):
        return "static batches, padded to the longest prompt; a batch ends with its last request"
    if config.engine == "vllm":
        return "continuous batching: requests join and leave the running batch at every step"
    if config.engine == "tensorrt":
        return "in-flight batching: requests join and leave the running batch at every step"
    return "unknown"


def _concurrency(result: ExperimentResult) -> str:
    """The most requests the engine runs at once, as effectively configured."""
    config, args = result.config, result.engine_args
    if config.engine == "transformers":
        return str((config.transformers or TransformersConfig()).batch_size)
    if config.engine == "fake":
        return str(config.fake.batch_size if config.fake is not None else 1)
    if config.engine == "vllm":
        value = (config.vllm or VLLMConfig()).engine.max_num_seqs
        return _or_default(value if value is not None else _find(args, "max_num_seqs"))
    if config.engine == "tensorrt":
        value = (config.tensorrt or TensorRTConfig()).max_batch_size
        return _or_default(value if value is not None else _find(args, "max_batch_size"))
    return _ENGINE_DEFAULT


def _kv_cache(result: ExperimentResult) -> str:
    config, args = result.config, result.engine_args
    if config.engine == "fake":
        return "none (fake engine)"
    if config.engine == "transformers":
        t = config.transformers or TransformersConfig()
        if t.use_cache is False:
            return "off"
        return f"{t.cache_implementation or 'dynamic'} cache, grown per batch"
    if config.engine == "vllm":
        e = (config.vllm or VLLMConfig()).engine
        block = e.block_size if e.block_size is not None else _find(args, "block_size")
        prefix = e.enable_prefix_caching
        if prefix is None:
            prefix = _find(args, "enable_prefix_caching")
        memory = e.gpu_memory_utilization
        if memory is None:
            memory = _find(args, "gpu_memory_utilization")
        return (
            f"paged, block_size={_or_default(block)}, prefix caching {_or_default(prefix)}, "
            f"gpu_memory_utilization={_or_default(memory)}"
        )
    if config.engine == "tensorrt":
        kv = (config.tensorrt or TensorRTConfig()).kv_cache_config
        return (
            f"paged, block reuse {_or_default(kv.enable_block_reuse)}, "
            f"free_gpu_memory_fraction={_or_default(kv.free_gpu_memory_fraction)}"
        )
    return "unknown"


def _dtype(value: str | None) -> str:
    return "unknown" if value is None else value.removeprefix("torch.")


def _kv_precision(result: ExperimentResult) -> str:
    config = result.config
    # Unquantised, the KV cache holds the weights' precision, compared as "precision used".
    model_dtype = "as the weights"
    if config.engine == "vllm":
        kv = (config.vllm or VLLMConfig()).engine.kv_cache_dtype
        return model_dtype if kv in (None, "auto") else str(kv)
    if config.engine == "tensorrt":
        quant = (config.tensorrt or TensorRTConfig()).quant_config.kv_cache_quant_algo
        return model_dtype if quant is None else quant
    if config.engine == "fake":
        return "none (fake engine)"
    return model_dtype


def _quantisation(config: ExperimentConfig) -> str:
    if config.engine == "transformers":
        t = config.transformers or TransformersConfig()
        if t.load_in_4bit:
            return f"bitsandbytes 4-bit ({t.bnb_4bit_quant_type or 'nf4'})"
        if t.load_in_8bit:
            return "bitsandbytes 8-bit"
    elif config.engine == "vllm":
        q = (config.vllm or VLLMConfig()).engine.quantization
        if q:
            return str(q)
    elif config.engine == "tensorrt":
        q = (config.tensorrt or TensorRTConfig()).quant_config.quant_algo
        if q:
            return q
    return "none"
