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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.config.models import (
    ENGINE_NAMES,
    ExperimentConfig,
)
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.study.parity_settings import settings_of

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


def _compare(
    a: tuple[ConfigRef, list[ExperimentResult]], b: tuple[ConfigRef, list[ExperimentResult]]
) -> ParityComparison:
    (ref_a, runs_a), (ref_b, runs_b) = a, b
    profile_a, profile_b = settings_of(runs_a[0]), settings_of(runs_b[0])
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
    n, same_inputs, with_ids, first_k, full, prompts_match = _count_matches(pairs, k)
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


def _count_matches(
    pairs: Sequence[tuple[ExperimentResult, ExperimentResult]], k: int
) -> tuple[int, int, int, int, int, bool]:
    """Over requests of the same prompt in paired runs: (matched, same input length, with
    token ids, first ``k`` ids identical, whole output identical, every prompt matched)."""
    n = same_inputs = first_k = full = with_ids = 0
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
    return n, same_inputs, with_ids, first_k, full, prompts_match


def _paired_runs(
    runs_a: list[ExperimentResult], runs_b: list[ExperimentResult]
) -> list[tuple[ExperimentResult, ExperimentResult]]:
    """Runs of the same cycle position side by side (the first of each when counts differ)."""
    n = min(len(runs_a), len(runs_b))
    return list(zip(runs_a[:n], runs_b[:n], strict=True))


# ------------------------------------------------------------------ settings, per engine
