"""Reading configs: YAML/JSON files, dotted overrides, the user config, precedence.

Precedence, highest first: CLI flags (dotted overrides) > file > user config > defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator

from llenergymeasure.config.base import NumbersNotBooleans
from llenergymeasure.config.errors import config_error_from_validation, did_you_mean, printable
from llenergymeasure.config.models import ENGINE_NAMES, ExperimentConfig
from llenergymeasure.errors import ConfigError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_VALUES",
    "UserConfig",
    "carbon_intensity",
    "deep_merge",
    "is_study",
    "load_experiment_config",
    "load_user_config",
    "nest_dotted",
    "read_config_file",
    "user_config_path",
    "validate_experiment",
]

# A config is a few KiB; a larger file is a mistake (or an attack), not a config.
MAX_CONFIG_BYTES = 1024 * 1024
# A config is a few hundred values, a few levels deep. YAML aliases can repeat a subtree
# without repeating its text (`a: &a [*b, *b, ...]`, the "billion laughs"): the bound is
# on the document as it expands, so a small file cannot become a huge config.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 64
STUDY_KEYS = ("sweep", "experiments")


class UserConfig(NumbersNotBooleans):
    """Per-user settings: host facts and personal defaults for every experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_tdp_w: float | None = Field(
        None, gt=0, le=10_000, allow_inf_nan=False, description="TDP of the CPUs this process sees"
    )
    results_dir: str | None = None
    # Alike records/energy.py:DeviceThermal, kept apart because only the field shape matches
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="experiment fields applied under every config file"
    )
    runners: dict[str, str] = Field(
        default_factory=dict,
        description="engine -> the Python interpreter of another environment that runs it "
        "(e.g. vllm: .venv-vllm/bin/python); relative paths start at the working directory",
    )

    @field_validator("runners")
    @classmethod
    def _runner_engines(cls, runners: dict[str, str]) -> dict[str, str]:
        unknown = [name for name in runners if name not in ENGINE_NAMES]
        if unknown:
            raise ValueError(
                "unknown engine "
                + ", ".join(f"`{n}`{did_you_mean(n, list(ENGINE_NAMES))}" for n in unknown)
                + " in `runners`; engines: "
                + ", ".join(ENGINE_NAMES)
            )
        return runners


def user_config_path() -> Path:
    """``$LLEM_USER_CONFIG`` or ``<user config dir>/llenergymeasure/config.yaml``."""
    explicit = os.environ.get("LLEM_USER_CONFIG")
    if explicit:
        return Path(explicit)
    import platformdirs  # lazy: only needed when a user config is looked up

    return platformdirs.user_config_path("llenergymeasure") / "config.yaml"


def load_user_config(path: Path | None = None) -> UserConfig:
    """The user config, or the defaults when there is none.

    A file named by ``$LLEM_USER_CONFIG`` must exist: a typo there would otherwise
    silently drop every personal setting.
    """
    named = path is None and bool(os.environ.get("LLEM_USER_CONFIG"))
    path = path or user_config_path()
    if not path.exists():
        if named:
            raise ConfigError(
                f"user config {path} not found (named by LLEM_USER_CONFIG)",
                hint="fix LLEM_USER_CONFIG, or unset it to use the defaults",
            )
        return UserConfig()
    data = read_config_file(path)
    try:
        return UserConfig.model_validate(data)
    except ValidationError as err:
        raise config_error_from_validation(err, UserConfig, origin=f"user config {path}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML (safe loader only) or JSON file whose top level is a mapping."""
    if not path.exists():
        raise ConfigError(f"config file not found: {path}", hint="check the path")
    if not path.is_file():
        raise ConfigError(f"config path is not a file: {path}", hint="give a .yaml or .json file")
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ConfigError(
            f"config file must end in .yaml, .yml or .json: {path}",
            hint="rename the file or pass a YAML/JSON config",
        )
    too_big = ConfigError(
        f"config file is over the {MAX_CONFIG_BYTES}-byte limit: {path}",
        hint="a config is a few KiB; is this the right file?",
    )
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise too_big
        with path.open("rb") as fh:  # read at most the limit, whatever stat said
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise too_big
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark from a Windows editor is not text
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"config file is not UTF-8 text: {path}, line {line} (byte {err.start})",
            hint="save the file as UTF-8",
        ) from None
    data = _parse(text, path)
    if data is None:
        raise ConfigError(f"config file is empty: {path}", hint="see examples/experiment.yaml")
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file must hold a mapping of keys, not a {type(data).__name__}: {path}"
        )
    return data


def _parse(text: str, path: Path) -> Any:
    too_deep = ConfigError(
        f"config file {path} nests deeper than {MAX_CONFIG_DEPTH} levels",
        hint="a config is a few levels of mappings; is this the right file?",
    )
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"invalid JSON in {path}, line {err.lineno}, column {err.colno}: {err.msg}"
            ) from None
        except RecursionError:
            raise too_deep from None
        if _depth_exceeds(data, MAX_CONFIG_DEPTH):
            raise too_deep
        return data
    try:
        return _load_yaml(text, path)
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (NUL, ...)
        line = text.count("\n", 0, err.position) + 1
        raise ConfigError(
            f"invalid YAML in {path}, line {line}: character {err.character!r} is not allowed",
            hint="a config is plain text",
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"invalid YAML in {path}{where}: {problem}") from None
    except RecursionError:
        raise too_deep from None


class _DepthBoundedLoader(yaml.SafeLoader):
    """The safe loader, stopping at the first node nested too deep (before recursing on)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_CONFIG_DEPTH:
                raise yaml.MarkedYAMLError(
                    problem=f"nested deeper than {MAX_CONFIG_DEPTH} levels",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _load_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load``, refusing documents that nest or expand too far or repeat a key."""
    loader = _DepthBoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_nodes(node, path)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_yaml_nodes(root: yaml.Node, path: Path) -> None:
    """Bound the expanded size and depth of a composed YAML document; refuse cycles and
    repeated keys.

    Aliases make the composed document a graph whose nodes may be shared; each node's
    expanded size is computed once, so checking a "billion laughs" file takes as long as
    reading it.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def where(node: yaml.Node) -> str:
        return f"{path}, line {node.start_mark.line + 1}"

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(
                f"invalid YAML in {where(node)}: the node anchored here contains an alias of "
                "itself",
                hint="a config cannot be recursive; copy the values instead",
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"config file {where(node)} nests deeper than {MAX_CONFIG_DEPTH}")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            _check_unique_keys(node, where)
            for key_node, value_node in node.value:
                total += size(key_node, depth + 1) + size(value_node, depth + 1)
                if total > MAX_CONFIG_VALUES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
                if total > MAX_CONFIG_VALUES:
                    break
        if total > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"config file {where(node)} expands to more than {MAX_CONFIG_VALUES:,} values "
                "(are `*alias` references repeating a large block?)",
                hint="a config is a few hundred values; write the sweep out instead",
            )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root, 0)


def _check_unique_keys(node: yaml.MappingNode, where: Callable[[yaml.Node], str]) -> None:
    seen: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if (key_node.tag, key_node.value) in seen:
            raise ConfigError(
                f"duplicate key `{printable(key_node.value)}` in {where(key_node)}",
                hint="each key may appear once per mapping; the later one would silently win",
            )
        seen.add((key_node.tag, key_node.value))


def _depth_exceeds(data: Any, limit: int) -> bool:
    """True when nested lists/dicts go deeper than ``limit`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


def carbon_intensity(config: ExperimentConfig) -> float | None:
    """g CO2/kWh from the config, else ``$LLEM_CARBON_INTENSITY``, else None."""
    if config.measurement.carbon_intensity_g_per_kwh is not None:
        return config.measurement.carbon_intensity_g_per_kwh
    raw = os.environ.get("LLEM_CARBON_INTENSITY")
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (0 <= value <= 10_000):
        raise ConfigError(
            f"LLEM_CARBON_INTENSITY must be a number of g CO2/kWh between 0 and 10000, got {raw!r}"
        )
    return value


def is_study(data: Mapping[str, Any]) -> bool:
    """A file is a study when it has ``sweep:`` or ``experiments:``."""
    return any(key in data for key in STUDY_KEYS)


def nest_dotted(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``; conflicting paths are a ConfigError."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        parts = dotted.split(".")
        if not all(parts):
            raise ConfigError(f"invalid override key `{printable(dotted)}`")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override `{printable(dotted)}` conflicts with another override")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"override `{printable(dotted)}` conflicts with another override")
        node[parts[-1]] = value
    return nested


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``; mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in top.items():
        below = merged.get(key)
        if isinstance(below, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(below, value)
        else:
            merged[key] = value
    return merged


def validate_experiment(data: Mapping[str, Any], *, origin: str = "config") -> ExperimentConfig:
    """Validate a mapping into an ExperimentConfig, or raise one readable ConfigError."""
    try:
        return ExperimentConfig.model_validate(dict(data))
    except ValidationError as err:
        raise config_error_from_validation(err, ExperimentConfig, origin=origin) from None


def load_experiment_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    user: UserConfig | None = None,
) -> ExperimentConfig:
    """Resolve one experiment config from defaults, user config, a file and dotted overrides."""
    user = user if user is not None else load_user_config()
    data: dict[str, Any] = dict(user.defaults)
    origin = "config"
    if path is not None:
        file_data = read_config_file(path)
        if is_study(file_data):
            raise ConfigError(
                f"{path} is a study file (it has `sweep:` or `experiments:`); "
                "this command runs single experiments",
                hint="remove `sweep:`/`experiments:` to run one experiment",
            )
        data = deep_merge(data, file_data)
        origin = f"config {path}"
    if overrides:
        data = deep_merge(data, nest_dotted(overrides))
    return validate_experiment(data, origin=origin)
