"""Measure the energy, throughput, latency and compute cost of LLM inference.

Public API::

    from llenergymeasure import ExperimentConfig, run_experiment
    result = run_experiment(ExperimentConfig(task={"model": "smollm2-135m"}))
    outcome = run_study("study.yaml")   # every config x cycle in its own subprocess

Importing this package never imports torch, transformers or any engine.
"""

from llenergymeasure._version import tool_version
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.loading import load_experiment_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import (
    ConfigError,
    EnergyError,
    EngineError,
    LlemError,
    PreflightError,
    ResultError,
    ServerError,
    StudyError,
)
from llenergymeasure.experiment.run import run_experiment
from llenergymeasure.records.files import load_result
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.study.run import StudyOutcome, run_study

__version__ = tool_version()

__all__ = [
    "ConfigError",
    "EnergyError",
    "EngineError",
    "ExperimentConfig",
    "ExperimentResult",
    "LlemError",
    "PreflightError",
    "ResultError",
    "ServerError",
    "StudyError",
    "StudyOutcome",
    "__version__",
    "load_experiment_config",
    "load_result",
    "measurement_config_hash",
    "run_experiment",
    "run_study",
]
