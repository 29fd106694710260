"""The `serving:` section and `mode`: defaults, cross-field rules, hashing, the examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llenergymeasure.config.hashing import canonical_json, measurement_config_hash
from llenergymeasure.config.loading import load_experiment_config
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.config.study import load_study

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _serving(**serving: object) -> dict[str, object]:
    return {"mode": "serving", "engine": "vllm", "serving": serving}


def test_serving_mode_fills_in_its_section_with_the_defaults() -> None:
    config = ExperimentConfig(mode="serving", engine="vllm")
    assert config.serving is not None
    assert config.serving.server == "launch"
    assert config.serving.arrival.process == "poisson" and config.serving.arrival.rate == 1.0
    assert config.serving.planned_duration_s == 60.0
    assert ExperimentConfig().mode == "offline" and ExperimentConfig().serving is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"serving": {}}, "needs `mode: serving`"),
        ({"mode": "serving"}, "not `engine: transformers`"),
        (_serving(arrival={"process": "closed"}), "needs `n_users`"),
        (_serving(arrival={"process": "closed", "n_users": 2, "rate": 1}), "has no `rate`"),
        (_serving(arrival={"process": "gamma"}), "needs `rate`"),
        (_serving(arrival={"rate": 1, "burstiness": 0.5}), "applies to `process: gamma`"),
        (_serving(arrival={"rate": 1, "n_users": 3}), "applies to `process: closed`"),
        (_serving(duration_s=10, n_requests=5), "not both"),
        (_serving(server="endpoint"), "needs `endpoint"),
        (_serving(server="launch", endpoint="http://h:1/v1"), "measures a running server"),
        (_serving(endpoint="ftp://h/v1"), "http(s) URL"),
        (_serving(arrival={"process": "closed", "n_users": 2}, max_concurrency=2), "closed loop"),
        (_serving(arrival={"rate": True}), "boolean"),
        (
            {**_serving(), "task": {"dataset": {"source": "synthetic", "input_len": 8}}},
            "not `synthetic`",
        ),
    ],
)
def test_bad_serving_configs_are_refused_with_a_clear_message(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExperimentConfig.model_validate(data)


def test_an_endpoint_means_server_endpoint_and_any_engine() -> None:
    config = ExperimentConfig.model_validate(
        {"mode": "serving", "serving": {"endpoint": "http://127.0.0.1:8000/v1/"}}
    )
    assert config.serving is not None
    assert config.serving.server == "endpoint"
    assert config.serving.endpoint == "http://127.0.0.1:8000/v1"


def test_an_offline_config_hashes_without_the_serving_fields() -> None:
    config = ExperimentConfig()
    assert '"mode"' not in canonical_json(config) and '"serving"' not in canonical_json(config)
    serving = ExperimentConfig.model_validate(_serving())
    faster = ExperimentConfig.model_validate(_serving(arrival={"rate": 2}))
    assert measurement_config_hash(serving) != measurement_config_hash(faster)


def test_the_serving_example_loads() -> None:
    config = load_experiment_config(EXAMPLES / "serving.yaml")
    assert config.mode == "serving" and config.serving is not None
    assert config.serving.server == "launch" and config.serving.arrival.process == "poisson"
    assert config.vllm is not None and config.vllm.engine.enforce_eager is True


def test_the_serving_sweep_example_expands_over_the_rate() -> None:
    plan = load_study(EXAMPLES / "serving-sweep.yaml")
    rates = [c.serving.arrival.rate for c in plan.configs if c.serving is not None]
    assert rates == [0.1, 0.2, 0.4]
    assert all(c.mode == "serving" for c in plan.configs)
