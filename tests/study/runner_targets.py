"""Child targets for runs in a runner's interpreter: importable by name from this folder."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.errors import EngineError
from llenergymeasure.experiment.reporter import Reporter
from llenergymeasure.experiment.run import run_experiment
from llenergymeasure.records.result import ExperimentResult
from llenergymeasure.testing.fake_sampler import FakeEnergySampler

# Where `noting_entry` writes how it was started.
ENTRY_FILE_ENV = "LLEM_TEST_ENTRY_FILE"


def noting_entry(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    """Writes this process's entry module, pid and config hash, then runs the experiment."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    facts = {
        "main": None if spec is None else spec.name,
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "executable": sys.executable,
        "config_hash": measurement_config_hash(config),
    }
    Path(os.environ[ENTRY_FILE_ENV]).write_text(json.dumps(facts), encoding="utf-8")
    sampler = FakeEnergySampler({"cpu:0": 10.0}, method="counter")
    return run_experiment(config, sampler=sampler, reporter=reporter)


def engine_error_with_hint(config: ExperimentConfig, reporter: Reporter) -> ExperimentResult:
    raise EngineError("the scripted engine failed", hint="a scripted hint")
