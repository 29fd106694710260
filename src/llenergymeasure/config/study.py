"""Studies: many experiments from one file (DESIGN.md §3.2), expanded into a plan.

A file is a study when it has ``sweep:`` or ``experiments:``. Its top-level keys are::

    study_name        the study's name (default: the file stem); not inherited through base:
    study_execution   how the runs are scheduled: StudyExecution (not part of the design hash)
    base              another study/experiment file (relative to this one) to inherit; inline wins
    sweep             the grid: axes and groups, see below
    experiments       explicit extra configs, each merged over the shared fields
    anything else     shared experiment fields (task, engine, measurement, engine sections, ...)

The sweep's grammar is described in :mod:`llenergymeasure.config.sweep`.

Every expanded config is validated; a combination that fails is skipped with its reason and a
config equal to an earlier one (same ``measurement_config_hash``) is skipped as a duplicate.
Both appear in :attr:`StudyPlan.skipped`; no combination is dropped silently. Each config
is labelled by its engine and the values the sweep or its explicit entry set, in key order
(``transformers out=32 bs=4 dtype=bfloat16``; ``bs``, ``out`` and ``seqs`` abbreviate
batch_size, max_output_tokens and max_num_seqs, other keys show their last part).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llenergymeasure.config.errors import config_error_from_validation
from llenergymeasure.config.execution import MAX_RUNS, StudyExecution
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import (
    UserConfig,
    deep_merge,
    is_study,
    load_user_config,
    nest_dotted,
    read_config_file,
    validate_experiment,
)
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.order import PlannedRun, order_runs
from llenergymeasure.config.sweep import EXPERIMENT_FIELDS, Candidate, check_keys, sweep_candidates
from llenergymeasure.errors import ConfigError

__all__ = [
    "MAX_BASE_DEPTH",
    "MAX_RUNS",
    "STUDY_KEYS",
    "SkippedConfig",
    "StudyExecution",
    "StudyPlan",
    "expand_study",
    "load_study",
    "study_design_hash",
]


# The top-level keys that belong to the study, not to its experiments.
STUDY_KEYS: tuple[str, ...] = ("study_name", "study_execution", "base", "sweep", "experiments")
# `base:` chains deeper than this are a mistake, not a design.
MAX_BASE_DEPTH = 10
# How many distinct skip reasons a "no valid configs" error lists.
_MAX_REASONS_LISTED = 10


@dataclass(frozen=True)
class SkippedConfig:
    """A config the expansion left out, and why (a validation message or a duplicate)."""

    label: str
    reason: str


@dataclass(frozen=True)
class StudyPlan:
    """A study expanded: its valid configs in design order, what was skipped, and when to run.

    ``resolved`` is the study as it was expanded (``base:`` inlined, user defaults and
    overrides applied), a mapping that :func:`expand_study` turns back into this plan;
    write it as the study folder's ``study.yaml``. ``config_hashes`` holds each config's
    ``measurement_config_hash`` (computed when not given).
    """

    name: str
    configs: tuple[ExperimentConfig, ...]
    labels: tuple[str, ...]
    skipped: tuple[SkippedConfig, ...]
    execution: StudyExecution
    design_hash: str
    resolved: dict[str, Any]
    config_hashes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.config_hashes and self.configs:
            hashes = tuple(measurement_config_hash(c) for c in self.configs)
            object.__setattr__(self, "config_hashes", hashes)
        if not (len(self.configs) == len(self.labels) == len(self.config_hashes)):
            raise ValueError("a StudyPlan needs one label and one hash per config")

    @property
    def shuffle_seed(self) -> int:
        """The seed ``shuffle`` uses: the configured one, else the design hash as a number."""
        seed = self.execution.shuffle_seed
        return seed if seed is not None else int(self.design_hash, 16)

    def runs(self) -> tuple[PlannedRun, ...]:
        """Every (config, cycle) run in the order ``study_execution.experiment_order`` says."""
        return order_runs(
            len(self.configs),
            self.execution.n_cycles,
            self.execution.experiment_order,
            self.shuffle_seed,
        )


# ---------------------------------------------------------------------- run order


def study_design_hash(config_hashes: Sequence[str]) -> str:
    """First 16 hex of SHA-256 over the JSON list of the configs' hashes, in design order.

    The execution block is not part of it: changing cycles, order or gaps keeps the
    design. Reordering sweep axes reorders the experiments and so changes it.
    """
    text = json.dumps(list(config_hashes), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# -------------------------------------------------------------------- loading


def load_study(
    path: Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    user: UserConfig | None = None,
) -> StudyPlan:
    """Load, resolve and expand a study file.

    Precedence for the shared fields, highest first: ``overrides`` (dotted CLI keys) >
    the file (inline over its ``base:`` chain) > the user config's ``defaults`` > the
    model defaults. An override of a key the sweep has as an axis replaces that axis
    (the command line wins); group alternatives and explicit ``experiments:`` keep their
    own values. ``study_execution.*`` overrides go to the execution block, and
    ``study_name`` renames the study.
    """
    data = _resolve_base(read_config_file(path), path.parent, (path.resolve(),), 0)
    if not is_study(data):
        raise ConfigError(
            f"{path} is not a study file: it has no `sweep:` or `experiments:`",
            hint="add `sweep: {}` to run it as a study, or run it as a single experiment",
        )
    user = user if user is not None else load_user_config()
    if user.defaults:
        misplaced = sorted(k for k in user.defaults if k in STUDY_KEYS)
        if misplaced:
            raise ConfigError(
                "user config `defaults` may hold only experiment fields, not "
                + ", ".join(f"`{k}`" for k in misplaced)
            )
        data = deep_merge(user.defaults, data)
    if overrides:
        data = _apply_overrides(data, overrides)
    return _expand(data, name=path.stem)


def expand_study(data: Mapping[str, Any], *, base_dir: Path, name: str) -> StudyPlan:
    """Expand a study mapping into a plan (no user config, no environment).

    ``base_dir`` anchors a relative ``base:``; ``name`` is used when the mapping has no
    ``study_name``. Raises ConfigError for a malformed study or one with no valid config.
    """
    resolved = _resolve_base(data, base_dir, (), 0)
    if not is_study(resolved):
        raise ConfigError(
            f"study `{name}` has no `sweep:` or `experiments:`",
            hint="add `sweep: {}` to run the shared fields as a one-config study",
        )
    return _expand(resolved, name=name)


def _resolve_base(
    data: Mapping[str, Any], base_dir: Path, chain: tuple[Path, ...], depth: int
) -> dict[str, Any]:
    """``data`` merged over the file its ``base:`` names (recursively), without ``base``."""
    ref = data.get("base")
    own = {k: v for k, v in data.items() if k != "base"}
    if ref is None:
        return own
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(f"`base:` must be a file path, got {ref!r}")
    path = (base_dir / ref).resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain[chain.index(path) :], path))
        raise ConfigError(
            f"cyclic `base:` chain: {cycle}", hint="remove one `base:` to break the cycle"
        )
    if depth >= MAX_BASE_DEPTH:
        raise ConfigError(
            f"`base:` chain deeper than {MAX_BASE_DEPTH} files at {path}",
            hint="flatten the chain into fewer files",
        )
    parent = _resolve_base(read_config_file(path), path.parent, (*chain, path), depth + 1)
    # A derived study is a different study: it is named by its own file unless it says so.
    parent.pop("study_name", None)
    return deep_merge(parent, own)


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    shared: dict[str, Any] = {}
    execution: dict[str, Any] = {}
    data = dict(data)
    for key, value in overrides.items():
        head = key.split(".", 1)[0]
        if key.startswith("study_execution."):
            execution[key.removeprefix("study_execution.")] = value
        elif key == "study_name":
            data["study_name"] = value
        elif head in STUDY_KEYS:
            raise ConfigError(
                f"override `{key}` cannot change `{head}`",
                hint="edit the study file, or override shared fields and study_execution.*",
            )
        else:
            shared[key] = value
    if shared:
        data = deep_merge(data, nest_dotted(shared))
        sweep = data.get("sweep")
        if isinstance(sweep, Mapping) and any(k in sweep for k in shared):
            data["sweep"] = {k: v for k, v in sweep.items() if k not in shared}
    if execution:
        current = data.get("study_execution")
        below = current if isinstance(current, Mapping) else {}
        data["study_execution"] = deep_merge(below, nest_dotted(execution))
    return data


# ------------------------------------------------------------------ expansion


def _expand(data: Mapping[str, Any], *, name: str) -> StudyPlan:
    study_name = _study_name(data.get("study_name"), name)
    execution = _execution(data.get("study_execution"))
    shared = {k: v for k, v in data.items() if k not in STUDY_KEYS}
    check_keys(shared, "at the top of the study", [*EXPERIMENT_FIELDS, *STUDY_KEYS])
    configs, labels, hashes, skipped = _validated(sweep_candidates(data, shared))
    if len(configs) * execution.n_cycles > MAX_RUNS:
        raise ConfigError(
            f"study `{study_name}` plans {len(configs):,} configs × {execution.n_cycles:,} cycles "
            f"= {len(configs) * execution.n_cycles:,} runs, over the limit of {MAX_RUNS:,}",
            hint="lower `study_execution.n_cycles` or split the study",
        )
    if not configs:
        raise ConfigError(
            f"study `{study_name}` has no valid config" + _skip_summary(skipped),
            hint="fix the shared fields or the sweep; `llem run --dry-run` lists the expansion",
        )
    resolved: dict[str, Any] = {"study_name": study_name, **copy.deepcopy(shared)}
    for key in ("sweep", "experiments"):
        if key in data:
            resolved[key] = copy.deepcopy(data[key])
    resolved["study_execution"] = execution.model_dump(mode="json")
    return StudyPlan(
        name=study_name,
        configs=tuple(configs),
        labels=tuple(labels),
        skipped=tuple(skipped),
        execution=execution,
        design_hash=study_design_hash(hashes),
        resolved=resolved,
        config_hashes=tuple(hashes),
    )


def _validated(
    candidates: Iterator[Candidate],
) -> tuple[list[ExperimentConfig], list[str], list[str], list[SkippedConfig]]:
    """The valid, distinct configs with their labels and hashes, and what was skipped, why."""
    configs: list[ExperimentConfig] = []
    labels: list[str] = []
    hashes: list[str] = []
    skipped: list[SkippedConfig] = []
    first_label_of: dict[str, str] = {}
    used_labels: set[str] = set()
    for candidate in candidates:
        try:
            config = validate_experiment(candidate.data, origin="combination")
        except ConfigError as err:
            reason = err.message.removeprefix("invalid combination: ")
            skipped.append(SkippedConfig(candidate.label, reason))
            continue
        digest = measurement_config_hash(config)
        if digest in first_label_of:
            skipped.append(SkippedConfig(candidate.label, f"duplicate of {first_label_of[digest]}"))
            continue
        label = candidate.label
        if label in used_labels:  # two keys may share a last component
            label = f"{label} #{len(labels) + 1}"
        used_labels.add(label)
        first_label_of[digest] = label
        configs.append(config)
        labels.append(label)
        hashes.append(digest)
    return configs, labels, hashes, skipped


# ------------------------------------------------------------ parsing the file


def _study_name(value: Any, fallback: str) -> str:
    name = fallback if value is None else value
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"`study_name` must be a non-empty string, got {value!r}")
    if any(ch in name for ch in "/\\\0") or name.strip() in (".", ".."):
        # The runner names a folder after the study.
        raise ConfigError(f"`study_name` {name!r} must not contain path separators")
    return name.strip()


def _execution(value: Any) -> StudyExecution:
    if value is None:
        return StudyExecution()
    if not isinstance(value, Mapping):
        raise ConfigError(f"`study_execution:` must be a mapping, got {type(value).__name__}")
    try:
        return StudyExecution.model_validate(dict(value))
    except ValidationError as err:
        raise config_error_from_validation(err, StudyExecution, origin="study_execution") from None


# ------------------------------------------------------------------- labels


def _skip_summary(skipped: Sequence[SkippedConfig]) -> str:
    """``: <reason> (n configs, e.g. <label>); ...`` grouped by reason."""
    if not skipped:
        return " (it expands to no config)"
    by_reason: dict[str, list[str]] = {}
    for item in skipped:
        by_reason.setdefault(item.reason, []).append(item.label)
    parts = [
        f"{reason} ({len(labels)} config{'s' if len(labels) > 1 else ''}, e.g. {labels[0]})"
        for reason, labels in list(by_reason.items())[:_MAX_REASONS_LISTED]
    ]
    more = len(by_reason) - _MAX_REASONS_LISTED
    if more > 0:
        parts.append(f"and {more} more reasons")
    return ": every combination was skipped: " + "; ".join(parts)
