"""Reading configs: YAML/JSON files, dotted overrides, the user config, precedence.

Precedence, highest first: CLI flags (dotted overrides) > file > user config > defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llenergymeasure.config.errors import config_error_from_validation
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import ConfigError

__all__ = [
    "MAX_CONFIG_BYTES",
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
STUDY_KEYS = ("sweep", "experiments")


class UserConfig(BaseModel):
    """Per-user settings: host facts and personal defaults for every experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_tdp_w: float | None = Field(
        None, gt=0, le=10_000, allow_inf_nan=False, description="TDP of the CPUs this process sees"
    )
    results_dir: str | None = None
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="experiment fields applied under every config file"
    )


def user_config_path() -> Path:
    """``$LLEM_USER_CONFIG`` or ``<user config dir>/llenergymeasure/config.yaml``."""
    explicit = os.environ.get("LLEM_USER_CONFIG")
    if explicit:
        return Path(explicit)
    import platformdirs  # lazy: only needed when a user config is looked up

    return platformdirs.user_config_path("llenergymeasure") / "config.yaml"


def load_user_config(path: Path | None = None) -> UserConfig:
    """The user config, or the defaults when there is none."""
    path = path or user_config_path()
    if not path.exists():
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
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file is {size} bytes, over the {MAX_CONFIG_BYTES}-byte limit: {path}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file is not UTF-8 text: {path} (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    data = _parse(text, path)
    if data is None:
        raise ConfigError(f"config file is empty: {path}", hint="see examples/experiment.yaml")
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file must hold a mapping of keys, not a {type(data).__name__}: {path}"
        )
    return data


def _parse(text: str, path: Path) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"invalid JSON in {path}, line {err.lineno}, column {err.colno}: {err.msg}"
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"invalid YAML in {path}{where}: {problem}") from None


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
            raise ConfigError(f"invalid override key `{dotted}`")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override `{dotted}` conflicts with another override")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"override `{dotted}` conflicts with another override")
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
