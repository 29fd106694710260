"""A study's sweep and explicit experiments, expanded into candidate configs in design order.

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

Each candidate is a plain mapping with a label; validating it (and skipping what fails, with
its reason) is the study's job (:mod:`llenergymeasure.config.study`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from llenergymeasure.config.errors import did_you_mean, printable
from llenergymeasure.config.loading import deep_merge
from llenergymeasure.config.models import ENGINE_NAMES, ExperimentConfig
from llenergymeasure.errors import ConfigError

__all__ = ["EXPERIMENT_FIELDS", "MAX_COMBINATIONS", "Candidate", "check_keys", "sweep_candidates"]

# Bound that turns a typo (an extra axis) into an error before anything is built: every
# combination is validated.
MAX_COMBINATIONS = 100_000


def sweep_candidates(data: Mapping[str, Any], shared: Mapping[str, Any]) -> Iterator[Candidate]:
    """Every config to validate, in design order: each engine's grid, then the explicit list.

    Raises ConfigError for a malformed sweep or experiment list, or one that expands to more
    than :data:`MAX_COMBINATIONS` combinations (before building any).
    """
    sweep = _sweep_mapping(data.get("sweep"))
    experiments = _experiment_list(data.get("experiments"))
    engines = _engines(shared, sweep)
    dimensions = _dimensions(sweep)
    _check_size(engines, dimensions, experiments, "sweep" in data)
    return _candidates(shared, engines, dimensions, experiments, "sweep" in data)


# Short names in labels for keys that appear in most studies.
_SHORT_NAMES: Mapping[str, str] = MappingProxyType(
    {"batch_size": "bs", "max_output_tokens": "out", "max_num_seqs": "seqs"}
)


# The engine a config runs on when it names none (ExperimentConfig's default).
_DEFAULT_ENGINE: str = str(ExperimentConfig.model_fields["engine"].default)


# The top-level fields of one experiment.
EXPERIMENT_FIELDS: tuple[str, ...] = tuple(ExperimentConfig.model_fields)


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
class Candidate:
    label: str
    data: dict[str, Any]


def _candidates(
    shared: Mapping[str, Any],
    engines: Sequence[str | None],
    dimensions: Sequence[_Dimension],
    experiments: Sequence[Mapping[str, Any]],
    has_sweep: bool,
) -> Iterator[Candidate]:
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
                yield Candidate(" ".join(parts), config)
    for item in experiments:
        own_engine = item.get("engine")
        item_engines = _engine_list(own_engine) if own_engine is not None else engines
        rest = [(k, v) for k, v in item.items() if k != "engine"]
        for engine in item_engines:
            config = _shared_for(shared, engine)
            for key, value in rest:
                config = _set_path(config, key, value)
            parts = [engine or _DEFAULT_ENGINE, *_label_fragments(tuple(rest))]
            yield Candidate(" ".join(parts), config)


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
        _check_overrides(item, f"experiment {i}")
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
            check_keys({key.split(".", 1)[0]: None}, "in `sweep:`", list(EXPERIMENT_FIELDS))
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
        _check_overrides(value, f"sweep group `{key}`")
        choices.append(tuple(value.items()))
    return _Dimension(key, _scope(key), tuple(choices))


def _scope(dotted: str) -> str | None:
    """The engine a dotted key is scoped to (its first part), or None."""
    head, dot, _ = dotted.partition(".")
    return head if dot and head in ENGINE_NAMES else None


def _check_overrides(overrides: Mapping[Any, Any], where: str) -> None:
    """Dotted keys of an experiment's fields: well formed, and each heading a known field."""
    for key in overrides:
        _check_dotted(key, where)
    check_keys(
        {str(k).split(".", 1)[0]: None for k in overrides}, f"in {where}", list(EXPERIMENT_FIELDS)
    )


def _check_dotted(key: Any, where: str) -> None:
    if not isinstance(key, str) or not all(key.split(".")):
        raise ConfigError(f"invalid key {key!r} in {where}")


def check_keys(keys: Mapping[str, Any], where: str, allowed: list[str]) -> None:
    """Every unknown top-level key at once, each with a did-you-mean suggestion."""
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        listed = ", ".join(f"`{printable(k)}`{did_you_mean(k, allowed)}" for k in unknown)
        noun = "key" if len(unknown) == 1 else "keys"
        raise ConfigError(
            f"unknown {noun} {listed} {where}",
            hint="the accepted fields are listed in docs/configuration.md",
        )


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
