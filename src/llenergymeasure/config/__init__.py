"""WHAT to run: config models, loading, hashing. Never imports torch or engines."""

from llenergymeasure.config.hashing import canonical_json, measurement_config_hash
from llenergymeasure.config.loading import (
    UserConfig,
    load_experiment_config,
    load_user_config,
    validate_experiment,
)
from llenergymeasure.config.models import ExperimentConfig

__all__ = [
    "ExperimentConfig",
    "UserConfig",
    "canonical_json",
    "load_experiment_config",
    "load_user_config",
    "measurement_config_hash",
    "validate_experiment",
]
