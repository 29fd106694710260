"""Studies: many experiments from one file (DESIGN.md §3.2), expanded into a plan.

A file is a study when it has ``sweep:`` or ``experiments:``. Its top-level keys are::

    study_name        the study's name (default: the file stem); not inherited through base:
    study_execution   how the runs are scheduled: StudyExecution (not part of the design hash)
    base              another study/experiment file (relative to this one) to inherit; inline wins
    sweep             the grid: axes and groups, see below
    experiments       explicit extra configs, each merged over the shared fields
    anything else     shared experiment fields (task, engine, measurement, engine sections, ...)

The sweep, key by key (first key varies slowest)::

    task.max_output_tokens: [32, 128]      an axis; dotted keys route into sections
    transformers.batch_size: [1, 4]        an axis scoped to one engine (first part names it)
    decoding:                              a group of alternatives; each mapping's keys are
      - {}                                 dotted paths from the top ({} = unchanged);
      - {transformers.sampling.do_sample: true}   a group named `<engine>.<name>` is scoped

``engine`` (a shared field, or a sweep key) may be a list: each engine then gets its own grid.
When the engine is named, each engine's configs start from the shared fields without the
other engines' sections (a section must match its engine), and its grid leaves out the axes,
groups and group keys scoped to other engines. Without ``sweep:`` only the explicit
experiments run; ``sweep: {}`` runs the shared fields once per engine. An explicit
experiment that names no engine runs once per shared engine.

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
import itertools
import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field, StrictBool, ValidationError

from llenergymeasure.config.errors import config_error_from_validation, did_you_mean, printable
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
from llenergymeasure.config.models import ENGINE_NAMES, ExperimentConfig, NumbersNotBooleans
from llenergymeasure.errors import ConfigError

__all__ = [
    "EXPERIMENT_ORDERS",
    "MAX_BASE_DEPTH",
    "MAX_COMBINATIONS",
    "MAX_RUNS",
    "STUDY_KEYS",
    "ExperimentOrder",
    "PlannedRun",
    "SkippedConfig",
    "StudyExecution",
    "StudyPlan",
    "effective_gaps",
    "expand_study",
    "load_study",
    "order_runs",
    "study_design_hash",
]

ExperimentOrder = Literal["sequential", "interleave", "shuffle", "reverse", "latin_square"]
EXPERIMENT_ORDERS: tuple[str, ...] = get_args(ExperimentOrder)

# The top-level keys that belong to the study, not to its experiments.
STUDY_KEYS: tuple[str, ...] = ("study_name", "study_execution", "base", "sweep", "experiments")
# `base:` chains deeper than this are a mistake, not a design.
MAX_BASE_DEPTH = 10
# Bounds that turn a typo (an extra axis, cycles: 1000000) into an error before anything
# is built: every combination is validated, and the manifest lists every run.
MAX_COMBINATIONS = 100_000
MAX_RUNS = 100_000
# Short names in labels for keys that appear in most studies.
_SHORT_NAMES: Mapping[str, str] = MappingProxyType(
    {"batch_size": "bs", "max_output_tokens": "out", "max_num_seqs": "seqs"}
)
# The engine a config runs on when it names none (ExperimentConfig's default).
_DEFAULT_ENGINE: str = str(ExperimentConfig.model_fields["engine"].default)
# The top-level fields of one experiment.
_FIELDS: tuple[str, ...] = tuple(ExperimentConfig.model_fields)
# How many distinct skip reasons a "no valid configs" error lists.
_MAX_REASONS_LISTED = 10


class StudyExecution(NumbersNotBooleans):
    """How a study's runs are scheduled (the ``study_execution:`` block).

    None for a gap means "the runner's default": 60 s between experiments and 300 s
    between cycles when a GPU is measured, 0 on a CPU-only host (the runner decides,
    since only it knows the host). None for ``shuffle_seed`` means a seed derived from
    the study design hash, so a study shuffles the same way every time it is run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_cycles: int = Field(3, ge=1, le=MAX_RUNS, description="times every experiment runs")
    experiment_order: ExperimentOrder = Field("shuffle", description="see order_runs")
    experiment_gap_s: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="pause between experiments; None = runner"
    )
    cycle_gap_s: float | None = Field(
        None, ge=0.0, allow_inf_nan=False, description="pause between cycles; None = runner"
    )
    experiment_timeout_s: float = Field(600.0, gt=0.0, allow_inf_nan=False)
    max_consecutive_failures: int = Field(10, ge=1, description="circuit-breaker threshold")
    fail_fast: StrictBool = Field(False, description="stop the study after its first failed run")
    study_timeout_s: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="wall-clock budget of one session: no run starts that cannot end in it, "
        "and a run still going when it ends is stopped; None = no budget",
    )
    experiment_silence_timeout_s: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="stop a run that prints nothing and reports no progress for this long; "
        "None = no watchdog",
    )
    shuffle_seed: int | None = Field(None, description="None = derived from the design hash")
    executor: Literal["local", "ray"] = Field(
        "local", description="local: one run at a time here; ray: one run per GPU of a Ray cluster"
    )
    address: str | None = Field(
        None,
        min_length=1,
        description="ray: the cluster to join (`auto`, `ray://head:10001`); None = "
        "$RAY_ADDRESS, else a Ray started on this machine",
    )
    max_retries: int = Field(
        1, ge=0, le=100, description="ray: reruns of a run whose Ray worker or node was lost"
    )
    gpus_per_run: int | None = Field(
        None,
        ge=0,
        le=64,
        description="ray: GPUs each run asks for; None = the engine's parallel size (1 by "
        "default), 0 when the cluster has no GPU; 0 = one CPU slot",
    )


# Thermal gaps when the study file leaves them unset and a GPU is measured: long enough for
# a GPU to shed the heat of the previous run. A CPU-only host gets none.
GPU_EXPERIMENT_GAP_S = 60.0
GPU_CYCLE_GAP_S = 300.0


def effective_gaps(
    experiment_gap_s: float | None, cycle_gap_s: float | None, *, on_gpu: bool
) -> tuple[float, float]:
    """(between experiments, between cycles) in seconds, with the defaults applied."""
    return (
        experiment_gap_s if experiment_gap_s is not None else GPU_EXPERIMENT_GAP_S * on_gpu,
        cycle_gap_s if cycle_gap_s is not None else GPU_CYCLE_GAP_S * on_gpu,
    )


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: an index into :attr:`StudyPlan.configs` and a 1-based cycle."""

    config_index: int
    cycle: int


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


def order_runs(
    n_configs: int, n_cycles: int, order: ExperimentOrder, seed: int
) -> tuple[PlannedRun, ...]:
    """The runs of ``n_configs`` configs × ``n_cycles`` cycles in the given order.

    - ``sequential``: config 0 in every cycle, then config 1, ... (c0/1, c0/2, c1/1, ...).
    - ``interleave``: cycle 1 runs every config in order, then cycle 2, ...
    - ``reverse``: like interleave, but even cycles run the configs in reverse order
      (so position effects such as warming up average out across pairs of cycles).
    - ``shuffle``: like interleave, but cycle ``c`` runs the configs in the order
      ``random.Random(seed + c).shuffle`` gives; deterministic for a seed.
    - ``latin_square``: cycle ``k`` runs the configs rotated left by ``k - 1``; a cyclic
      Latin square, so each config takes each position once when ``n_cycles == n_configs``
      (it balances position, not which config precedes which).

    ``seed`` only matters for ``shuffle``.
    """
    if n_configs < 0 or n_cycles < 1:
        raise ConfigError(f"cannot order {n_configs} configs over {n_cycles} cycles")
    if order not in EXPERIMENT_ORDERS:
        suggestion = did_you_mean(str(order), list(EXPERIMENT_ORDERS))
        raise ConfigError(
            f"unknown experiment_order `{order}`{suggestion}",
            hint="choose one of " + ", ".join(EXPERIMENT_ORDERS),
        )
    cycles = range(1, n_cycles + 1)
    if order == "sequential":
        return tuple(PlannedRun(i, c) for i in range(n_configs) for c in cycles)
    runs: list[PlannedRun] = []
    for cycle in cycles:
        runs.extend(PlannedRun(i, cycle) for i in _cycle_order(n_configs, cycle, order, seed))
    return tuple(runs)


def _cycle_order(n_configs: int, cycle: int, order: str, seed: int) -> list[int]:
    indices = list(range(n_configs))
    if order == "reverse" and cycle % 2 == 0:
        indices.reverse()
    elif order == "shuffle":
        random.Random(seed + cycle).shuffle(indices)
    elif order == "latin_square" and n_configs:
        shift = (cycle - 1) % n_configs
        indices = indices[shift:] + indices[:shift]
    return indices


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

# One choice along a sweep dimension: the (dotted key, value) pairs it sets.
_Choice = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class _Dimension:
    """A sweep axis (one pair per choice) or group (a mapping per choice)."""

    key: str
    scope: str | None
    choices: tuple[_Choice, ...]

    def for_engine(self, engine: str) -> tuple[_Choice, ...]:
        """The choices with keys scoped to other engines removed."""
        return tuple(
            tuple(pair for pair in choice if _scope(pair[0]) in (None, engine))
            for choice in self.choices
        )


@dataclass(frozen=True)
class _Candidate:
    label: str
    data: dict[str, Any]


def _expand(data: Mapping[str, Any], *, name: str) -> StudyPlan:
    study_name = _study_name(data.get("study_name"), name)
    execution = _execution(data.get("study_execution"))
    shared = {k: v for k, v in data.items() if k not in STUDY_KEYS}
    _check_keys(shared, "at the top of the study", [*_FIELDS, *STUDY_KEYS])
    sweep = _sweep_mapping(data.get("sweep"))
    experiments = _experiment_list(data.get("experiments"))
    engines = _engines(shared, sweep)
    dimensions = _dimensions(sweep)

    configs: list[ExperimentConfig] = []
    labels: list[str] = []
    hashes: list[str] = []
    skipped: list[SkippedConfig] = []
    first_label_of: dict[str, str] = {}
    used_labels: set[str] = set()
    _check_size(engines, dimensions, experiments, "sweep" in data)
    candidates = _candidates(shared, engines, dimensions, experiments, "sweep" in data)
    for candidate in candidates:
        try:
            config = validate_experiment(candidate.data, origin="combination")
        except ConfigError as err:
            reason = err.message.removeprefix("invalid combination: ")
            skipped.append(SkippedConfig(candidate.label, reason))
            continue
        digest = measurement_config_hash(config)
        if digest in first_label_of:
            reason = f"duplicate of {first_label_of[digest]}"
            skipped.append(SkippedConfig(candidate.label, reason))
            continue
        label = candidate.label
        if label in used_labels:  # two keys may share a last component
            label = f"{label} #{len(labels) + 1}"
        used_labels.add(label)
        first_label_of[digest] = label
        configs.append(config)
        labels.append(label)
        hashes.append(digest)

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


def _candidates(
    shared: Mapping[str, Any],
    engines: Sequence[str | None],
    dimensions: Sequence[_Dimension],
    experiments: Sequence[Mapping[str, Any]],
    has_sweep: bool,
) -> Iterator[_Candidate]:
    """Every config to validate, in design order: each engine's grid, then the explicit list."""
    if has_sweep:
        for engine in engines:
            scope = engine or _DEFAULT_ENGINE
            base = _shared_for(shared, engine)
            grid = [d.for_engine(scope) for d in dimensions if d.scope in (None, scope)]
            fragments = [[_label_fragments(choice) for choice in dim] for dim in grid]
            for picks in itertools.product(*(range(len(dim)) for dim in grid)):
                config = base
                parts = [scope]
                for dim, frags, pick in zip(grid, fragments, picks, strict=True):
                    for key, value in dim[pick]:
                        config = _set_path(config, key, value)
                    parts.extend(frags[pick])
                yield _Candidate(" ".join(parts), config)
    for item in experiments:
        own_engine = item.get("engine")
        item_engines = _engine_list(own_engine) if own_engine is not None else engines
        rest = [(k, v) for k, v in item.items() if k != "engine"]
        for engine in item_engines:
            config = _shared_for(shared, engine)
            for key, value in rest:
                config = _set_path(config, key, value)
            parts = [engine or _DEFAULT_ENGINE, *_label_fragments(tuple(rest))]
            yield _Candidate(" ".join(parts), config)


def _check_size(
    engines: Sequence[str | None],
    dimensions: Sequence[_Dimension],
    experiments: Sequence[Mapping[str, Any]],
    has_sweep: bool,
) -> None:
    """Refuse a study with more than MAX_COMBINATIONS candidates before building any."""
    total = 0
    if has_sweep:
        for engine in engines:
            scope = engine or _DEFAULT_ENGINE
            total += math.prod(len(d.choices) for d in dimensions if d.scope in (None, scope))
    for item in experiments:
        own = item.get("engine")
        total += len(_engine_list(own)) if own is not None else len(engines)
    if total > MAX_COMBINATIONS:
        raise ConfigError(
            f"the study expands to {total:,} combinations, over the limit of {MAX_COMBINATIONS:,}",
            hint="split it into smaller studies, or move an axis into a second study file",
        )


def _shared_for(shared: Mapping[str, Any], engine: str | None) -> dict[str, Any]:
    """The shared fields for one engine: its name set, other engines' sections dropped."""
    if engine is None:
        return dict(shared)
    data = {k: v for k, v in shared.items() if k not in ENGINE_NAMES or k == engine}
    data["engine"] = engine
    return data


def _set_path(data: Mapping[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``value`` at the dotted path (mappings merge, others replace).

    Only the mappings along the path are copied; the rest is shared, which keeps a
    10,000-config grid linear in time and memory.
    """
    head, _, rest = dotted.partition(".")
    out = dict(data)
    below = out.get(head)
    if rest:
        out[head] = _set_path(below if isinstance(below, Mapping) else {}, rest, value)
    elif isinstance(below, Mapping) and isinstance(value, Mapping):
        out[head] = deep_merge(below, value)
    else:
        out[head] = value
    return out


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


def _sweep_mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"`sweep:` must be a mapping of `key: [values]`, got {type(value).__name__}"
        )
    return dict(value)


def _experiment_list(value: Any) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError("`experiments:` must be a list of mappings (one per experiment)")
    for i, item in enumerate(value, 1):
        for key in item:
            _check_dotted(key, f"experiment {i}")
        _check_keys(
            {str(k).split(".", 1)[0]: None for k in item},
            f"in experiment {i}",
            list(_FIELDS),
        )
    return list(value)


def _engines(shared: Mapping[str, Any], sweep: Mapping[str, Any]) -> list[str | None]:
    """The engines that get a grid; None = the config names no engine (model default)."""
    if "engine" in sweep and "engine" in shared:
        raise ConfigError(
            "`engine` is given both as a shared field and in `sweep:`",
            hint="list the engines once, e.g. `engine: [transformers, vllm]`",
        )
    if "engine" in sweep:
        return _engine_list(sweep["engine"])
    if "engine" in shared:
        return _engine_list(shared["engine"])
    return [None]


def _engine_list(value: Any) -> list[str | None]:
    names = value if isinstance(value, list) else [value]
    if not names:
        raise ConfigError("`engine:` lists no engine")
    for name in names:
        if not isinstance(name, str) or name not in ENGINE_NAMES:
            suggestion = did_you_mean(str(name), list(ENGINE_NAMES))
            raise ConfigError(
                f"unknown engine `{printable(name)}`{suggestion}",
                hint="engines: " + ", ".join(ENGINE_NAMES),
            )
    return list(names)


def _dimensions(sweep: Mapping[str, Any]) -> list[_Dimension]:
    dimensions: list[_Dimension] = []
    for key, values in sweep.items():
        if key == "engine":  # the engine list, not an axis: each engine gets its own grid
            continue
        _check_dotted(key, "sweep")
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"sweep `{printable(key)}` must be a non-empty list of values, "
                f"got {printable(repr(values))}",
                hint=f"write `{printable(key)}: [{printable(repr(values))}]` for a single value",
            )
        if any(isinstance(v, Mapping) for v in values):
            dimensions.append(_group(key, values))
        else:
            _check_keys({key.split(".", 1)[0]: None}, "in `sweep:`", list(_FIELDS))
            dimensions.append(_Dimension(key, _scope(key), tuple(((key, v),) for v in values)))
    return dimensions


def _group(key: str, values: list[Any]) -> _Dimension:
    """A group: a list of mappings; a null item counts as ``{}`` (unchanged)."""
    choices: list[_Choice] = []
    for value in values:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"sweep group `{printable(key)}` mixes mappings and plain values "
                f"({printable(repr(value))})",
                hint="a group lists mappings of dotted keys; an axis lists plain values",
            )
        for inner in value:
            _check_dotted(inner, f"sweep group `{key}`")
        _check_keys(
            {str(k).split(".", 1)[0]: None for k in value},
            f"in sweep group `{key}`",
            list(_FIELDS),
        )
        choices.append(tuple(value.items()))
    return _Dimension(key, _scope(key), tuple(choices))


def _scope(dotted: str) -> str | None:
    """The engine a dotted key is scoped to (its first part), or None."""
    head, dot, _ = dotted.partition(".")
    return head if dot and head in ENGINE_NAMES else None


def _check_dotted(key: Any, where: str) -> None:
    if not isinstance(key, str) or not all(key.split(".")):
        raise ConfigError(f"invalid key {key!r} in {where}")


def _check_keys(keys: Mapping[str, Any], where: str, allowed: list[str]) -> None:
    """Every unknown top-level key at once, each with a did-you-mean suggestion."""
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        listed = ", ".join(f"`{printable(k)}`{did_you_mean(k, allowed)}" for k in unknown)
        noun = "key" if len(unknown) == 1 else "keys"
        raise ConfigError(
            f"unknown {noun} {listed} {where}",
            hint="the accepted fields are listed in docs/configuration.md",
        )


# ------------------------------------------------------------------- labels


def _label_fragments(choice: _Choice) -> list[str]:
    """``short=value`` for each leaf the choice sets (nested mappings are walked)."""
    fragments: list[str] = []
    for key, value in choice:
        if isinstance(value, Mapping):
            fragments.extend(_label_fragments(tuple((f"{key}.{k}", v) for k, v in value.items())))
        else:
            last = key.rsplit(".", 1)[-1]
            fragments.append(f"{_SHORT_NAMES.get(last, last)}={_format(value)}")
    return fragments


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float | str):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


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
