"""Engine parity on results of the deterministic fake engine, relabelled as other engines.

One real fake-engine run gives real requests with real token ids; copies of it stand
for the same workload on transformers, vLLM or TensorRT-LLM, with the settings (and, where
a test says so, the outputs) each engine would record.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llenergymeasure import run_experiment
from llenergymeasure.cli.study_tables import summary_table
from llenergymeasure.config import ExperimentConfig
from llenergymeasure.config.hashing import measurement_config_hash
from llenergymeasure.engines.registry import get_engine
from llenergymeasure.engines.resolve import resolve_model
from llenergymeasure.records.result import ExperimentResult, RequestRecord
from llenergymeasure.study.manifest import Manifest, ManifestEntry
from llenergymeasure.study.models import HeadlineMetrics, StudyProtocol, StudyResult
from llenergymeasure.study.parity import (
    FIRST_TOKENS_COMPARED,
    ConfigRef,
    ParityComparison,
    StudyParity,
    compare_engines,
    study_parity,
)
from llenergymeasure.study.stats import build_study_result

N_PROMPTS = 6
N_OUTPUT = 24  # more than FIRST_TOKENS_COMPARED, so "first k" and "whole" can differ
TASK = {"dataset": {"n_prompts": N_PROMPTS}, "max_output_tokens": N_OUTPUT}
TRANSFORMERS = {"batch_size": 2, "dtype": "bfloat16", "sampling": {"do_sample": False}}
VLLM = {"dtype": "bfloat16", "engine": {"max_num_seqs": 2}, "sampling": {"temperature": 0.0}}
PROTOCOL = StudyProtocol(
    n_cycles=1,
    experiment_order="sequential",
    experiment_gap_s=0.0,
    cycle_gap_s=0.0,
    experiment_timeout_s=600.0,
    max_consecutive_failures=10,
)


@pytest.fixture(scope="module")
def fake_run() -> ExperimentResult:
    config = ExperimentConfig(
        engine="fake",
        fake={"batch_size": 2},
        task=TASK,
        measurement={
            "energy_sampler": "none",
            "warmup": {"enabled": False},
            "baseline": {"enabled": False},
        },
    )
    return run_experiment(config)


def as_engine(
    run: ExperimentResult,
    engine: str,
    section: dict[str, Any],
    *,
    dtype: str = "bfloat16",
    cycle: int = 1,
    requests: tuple[RequestRecord, ...] | None = None,
) -> ExperimentResult:
    """The fake run as if ``engine`` had produced it with ``section``."""
    data = run.config.model_dump(exclude={"fake"})
    config = ExperimentConfig(**{**data, "engine": engine, engine: section})
    return run.model_copy(
        update={
            "engine": engine,
            "config": config,
            "measurement_config_hash": measurement_config_hash(config),
            "model": run.model.model_copy(update={"dtype": dtype}),
            "window": run.window.model_copy(
                update={"started_at": run.window.started_at + timedelta(hours=cycle)}
            ),
            "requests": run.requests if requests is None else requests,
        }
    )


def with_output(record: RequestRecord, ids: list[int]) -> RequestRecord:
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()
    return record.model_copy(update={"first_token_ids": tuple(ids[:32]), "output_sha256": digest})


def original_ids(run: ExperimentResult, index: int) -> list[int]:
    """The fake engine's full output for request ``index`` (its first 32 ids are all of it)."""
    ids = list(run.requests[index].first_token_ids)
    assert len(ids) == N_OUTPUT
    return ids


def compare(*results: ExperimentResult) -> StudyParity | None:
    runs = [
        (ConfigRef(i, f"{r.engine}-{i}", f"{r.measurement_config_hash}-{i}"), r)
        for i, r in enumerate(results, 1)
    ]
    return compare_engines(runs)


def only_comparison(parity: StudyParity | None) -> ParityComparison:
    assert parity is not None
    (group,) = parity.groups
    (comparison,) = group.comparisons
    return comparison


# ------------------------------------------------------------------ output identity


def test_results_carry_each_requests_output_identity(fake_run: ExperimentResult) -> None:
    model = get_engine("fake").load(fake_run.config, resolve_model("smollm2-135m"))
    from llenergymeasure.datasets import load_prompts

    prompts = load_prompts(fake_run.config.task.dataset, seed=fake_run.config.task.random_seed)
    out = model.generate(model.prepare([p.text for p in prompts]))
    for record, request in zip(fake_run.requests, out.requests, strict=True):
        assert record.first_token_ids == request.token_ids[:32]
        expected = hashlib.sha256(",".join(map(str, request.token_ids)).encode()).hexdigest()
        assert record.output_sha256 == expected


def test_a_result_written_before_output_identity_still_loads(fake_run: ExperimentResult) -> None:
    data = json.loads(fake_run.model_dump_json())
    for request in data["requests"]:
        del request["first_token_ids"], request["output_sha256"]
    old = ExperimentResult.model_validate(data)
    assert old.requests[0].first_token_ids == ()
    assert old.requests[0].output_sha256 is None


# ------------------------------------------------------------------ comparisons


def test_like_for_like_engines_agree_on_greedy_outputs(fake_run: ExperimentResult) -> None:
    hf = as_engine(fake_run, "transformers", TRANSFORMERS)
    vllm = as_engine(fake_run, "vllm", VLLM)
    parity = compare(hf, vllm)
    c = only_comparison(parity)
    assert parity is not None and parity.like_for_like
    assert c.like_for_like and c.reasons == ()
    # inherent to the engines: listed, not held against the comparison
    assert c.differing == ("batch semantics", "KV cache")
    settings = {s.name: s for s in c.settings}
    assert settings["max concurrent requests"].a == settings["max concurrent requests"].b == "2"
    assert settings["precision used"].a == "bfloat16"
    assert settings["decoding"].a == settings["decoding"].b == "greedy"
    assert settings["truncation (max_input_tokens)"].a == "256"
    assert settings["max_output_tokens"].a == str(N_OUTPUT)
    assert "static batches" in settings["batch semantics"].a
    assert "continuous batching" in settings["batch semantics"].b
    agreement = c.agreement
    assert agreement.comparable and agreement.k == FIRST_TOKENS_COMPARED
    assert agreement.n_requests == N_PROMPTS
    assert agreement.first_k_identical == 1.0
    assert agreement.fully_identical == 1.0
    assert agreement.input_tokens_identical == 1.0


def test_differing_outputs_are_counted_at_both_depths(fake_run: ExperimentResult) -> None:
    requests = list(fake_run.requests)
    late = original_ids(fake_run, 0)
    late[FIRST_TOKENS_COMPARED + 2] += 1  # agrees on the first k tokens only
    early = original_ids(fake_run, 1)
    early[0] += 1  # differs from the first token
    requests[0] = with_output(requests[0], late)
    requests[1] = with_output(requests[1], early)
    vllm = as_engine(fake_run, "vllm", VLLM, requests=tuple(requests))
    c = only_comparison(compare(as_engine(fake_run, "transformers", TRANSFORMERS), vllm))
    assert c.like_for_like  # different outputs are a finding, not a broken setup
    assert c.agreement.first_k_identical == pytest.approx((N_PROMPTS - 1) / N_PROMPTS)
    assert c.agreement.fully_identical == pytest.approx((N_PROMPTS - 2) / N_PROMPTS)


def test_differing_precision_and_batch_cap_are_flagged(fake_run: ExperimentResult) -> None:
    hf = as_engine(fake_run, "transformers", TRANSFORMERS)
    vllm = as_engine(
        fake_run, "vllm", {"dtype": "float16", "sampling": {"temperature": 0.0}}, dtype="float16"
    )
    parity = compare(hf, vllm)
    c = only_comparison(parity)
    assert parity is not None and not parity.like_for_like
    assert not c.like_for_like
    assert set(c.differing) == {
        "batch semantics",
        "KV cache",
        "precision used",
        "max concurrent requests",
    }
    assert len(c.reasons) == 2
    assert "precision used differs: bfloat16 vs float16" in c.reasons
    assert "max concurrent requests differs: 2 vs engine default" in c.reasons
    assert c.agreement.comparable  # greedy on both: outputs are still compared


def at(run: ExperimentResult, path: str, fingerprint: str | None) -> ExperimentResult:
    """The run as if its model had been loaded from ``path``, with that content identity."""
    model = run.model.model_copy(update={"resolved": path, "fingerprint": fingerprint})
    return run.model_copy(update={"model": model})


def test_the_same_weights_in_two_environments_are_one_model(fake_run: ExperimentResult) -> None:
    hf = at(as_engine(fake_run, "transformers", TRANSFORMERS), "/a/m.gguf", "0123abcd")
    vllm = at(as_engine(fake_run, "vllm", VLLM), "/b/m.gguf", "0123abcd")
    c = only_comparison(compare(hf, vllm))
    assert c.like_for_like and "model loaded" not in c.differing


def test_other_weights_are_flagged_even_under_the_same_name(fake_run: ExperimentResult) -> None:
    hf = at(as_engine(fake_run, "transformers", TRANSFORMERS), "/a/m.gguf", "0123abcd")
    vllm = at(as_engine(fake_run, "vllm", VLLM), "/a/m.gguf", "ffff0000")
    c = only_comparison(compare(hf, vllm))
    assert not c.like_for_like and "model loaded" in c.differing
    # without a content identity the paths are all there is to compare
    hf, vllm = at(hf, "/a/m.gguf", None), at(vllm, "/b/m.gguf", None)
    assert "model loaded" in only_comparison(compare(hf, vllm)).differing


def test_a_quantised_kv_cache_is_flagged(fake_run: ExperimentResult) -> None:
    vllm = as_engine(
        fake_run, "vllm", {**VLLM, "engine": {"max_num_seqs": 2, "kv_cache_dtype": "fp8"}}
    )
    c = only_comparison(compare(as_engine(fake_run, "transformers", TRANSFORMERS), vllm))
    assert c.reasons == ("KV cache precision differs: as the weights vs fp8",)


def test_engine_args_fill_in_effective_defaults(fake_run: ExperimentResult) -> None:
    vllm = as_engine(fake_run, "vllm", {"dtype": "bfloat16", "sampling": {"temperature": 0.0}})
    vllm = vllm.model_copy(update={"engine_args": {"engine": {"max_num_seqs": 2}}})
    c = only_comparison(compare(as_engine(fake_run, "transformers", TRANSFORMERS), vllm))
    assert c.like_for_like
    assert {s.name: s.b for s in c.settings}["max concurrent requests"] == "2"


def test_sampling_is_not_comparable_and_is_flagged(fake_run: ExperimentResult) -> None:
    hf = as_engine(fake_run, "transformers", TRANSFORMERS)
    vllm = as_engine(fake_run, "vllm", {**VLLM, "sampling": {"temperature": 0.8, "top_p": 0.9}})
    c = only_comparison(compare(hf, vllm))
    agreement = c.agreement
    assert not agreement.comparable
    assert agreement.note.startswith("not comparable: sampling")
    assert agreement.first_k_identical is None and agreement.fully_identical is None
    assert agreement.input_tokens_identical == 1.0
    assert not c.like_for_like
    assert any(
        r.startswith("decoding differs: greedy vs sampling (temperature=0.8") for r in c.reasons
    )


def test_unpinned_decoding_and_different_tokenisation_are_flagged(
    fake_run: ExperimentResult,
) -> None:
    unpinned = as_engine(fake_run, "transformers", {"batch_size": 2, "dtype": "bfloat16"})
    requests = list(fake_run.requests)
    requests[2] = requests[2].model_copy(update={"n_input_tokens": requests[2].n_input_tokens + 3})
    vllm = as_engine(fake_run, "vllm", VLLM, requests=tuple(requests))
    c = only_comparison(compare(unpinned, vllm))
    assert not c.like_for_like
    assert any("generation config" in r for r in c.reasons)
    assert any("tokenised the prompts differently" in r for r in c.reasons)
    assert c.agreement.input_tokens_identical == pytest.approx((N_PROMPTS - 1) / N_PROMPTS)


def test_results_without_token_ids_are_not_compared(fake_run: ExperimentResult) -> None:
    bare = tuple(
        r.model_copy(update={"first_token_ids": (), "output_sha256": None})
        for r in fake_run.requests
    )
    c = only_comparison(
        compare(
            as_engine(fake_run, "transformers", TRANSFORMERS, requests=bare),
            as_engine(fake_run, "tensorrt", {"sampling": {"temperature": 0.0}}),
        )
    )
    assert not c.agreement.comparable
    assert c.agreement.note == "not comparable: the results carry no generated token ids"
    settings = {s.name: s for s in c.settings}
    assert settings["batch semantics"].b.startswith("in-flight batching")
    assert settings["decoding"].b == "greedy"


def test_groups_pair_only_configs_of_the_same_workload_on_other_engines(
    fake_run: ExperimentResult,
) -> None:
    hf_2 = as_engine(fake_run, "transformers", TRANSFORMERS)
    hf_8 = as_engine(fake_run, "transformers", {**TRANSFORMERS, "batch_size": 8})
    vllm = as_engine(fake_run, "vllm", VLLM)
    longer = fake_run.config.task.model_copy(update={"max_output_tokens": 8})
    other_workload = vllm.model_copy(
        update={"config": vllm.config.model_copy(update={"task": longer})}
    )
    parity = compare(hf_2, hf_8, vllm, other_workload)
    assert parity is not None
    (group,) = parity.groups
    assert [m.engine for m in group.members] == ["transformers", "transformers", "vllm"]
    assert [(c.a, c.b) for c in group.comparisons] == [(1, 3), (2, 3)]
    assert [c.like_for_like for c in group.comparisons] == [True, False]
    assert compare(hf_2, hf_8) is None  # one engine: nothing to compare


# ------------------------------------------------------------------ in a study folder


def _entry(index: int, cycle: int, folder: str, result: ExperimentResult) -> ManifestEntry:
    return ManifestEntry(
        index=index,
        label=f"{result.engine}",
        config_hash=result.measurement_config_hash,
        cycle=cycle,
        status="completed",
        duration_s=1.0,
        result=folder,
        metrics=HeadlineMetrics.of(result),
    )


def _study(tmp_path: Path, results: list[tuple[int, int, ExperimentResult]]) -> Manifest:
    entries = []
    for index, cycle, result in results:
        folder = f"{index:03d}_c{cycle}_{result.engine}"
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "result.json").write_text(result.model_dump_json())
        entries.append(_entry(index, cycle, folder, result))
    now = datetime.now(timezone.utc)
    return Manifest(
        name="parity",
        design_hash="d" * 16,
        status="completed",
        created_at=now,
        updated_at=now,
        entries=tuple(entries),
    )


def _render(result: StudyResult) -> str:
    console = Console(record=True, width=240)
    console.print(summary_table(result))
    return console.export_text()


def test_study_result_carries_the_parity_block(fake_run: ExperimentResult, tmp_path: Path) -> None:
    hf = as_engine(fake_run, "transformers", TRANSFORMERS)
    vllm = as_engine(fake_run, "vllm", VLLM)
    manifest = _study(
        tmp_path,
        [
            (1, 1, hf),
            (2, 1, vllm),
            (1, 2, as_engine(fake_run, "transformers", TRANSFORMERS, cycle=2)),
            (2, 2, as_engine(fake_run, "vllm", VLLM, cycle=2)),
        ],
    )
    result = build_study_result(manifest, protocol=PROTOCOL, wall_time_s=1.0, study_dir=tmp_path)
    assert result.parity is not None and result.parity.like_for_like
    (group,) = result.parity.groups
    assert [(m.index, m.engine, m.n_results) for m in group.members] == [
        (1, "transformers", 2),
        (2, "vllm", 2),
    ]
    assert group.comparisons[0].agreement.n_requests == 2 * N_PROMPTS  # both cycles paired
    reloaded = StudyResult.model_validate_json(result.model_dump_json())
    assert reloaded.parity == result.parity
    text = _render(result)
    assert "engine parity" in text and "#1 transformers vs #2 vllm" in text
    assert "100% (k=16)" in text and "NOT LIKE FOR LIKE" not in text
    # without a study folder (or with one engine) there is no parity block
    assert build_study_result(manifest, protocol=PROTOCOL, wall_time_s=1.0).parity is None


def test_summary_shouts_when_not_like_for_like(fake_run: ExperimentResult, tmp_path: Path) -> None:
    hf = as_engine(fake_run, "transformers", TRANSFORMERS)
    vllm = as_engine(fake_run, "vllm", {**VLLM, "dtype": "float16"}, dtype="float16")
    manifest = _study(tmp_path, [(1, 1, hf), (2, 1, vllm)])
    result = build_study_result(manifest, protocol=PROTOCOL, wall_time_s=1.0, study_dir=tmp_path)
    assert result.parity is not None and not result.parity.like_for_like
    text = _render(result)
    assert "NOT LIKE FOR LIKE: #1 transformers vs #2 vllm" in text
    assert "precision used differs: bfloat16 vs float16" in text


def test_an_unreadable_result_is_noted_not_fatal(
    fake_run: ExperimentResult, tmp_path: Path
) -> None:
    hf = as_engine(fake_run, "transformers", TRANSFORMERS)
    vllm = as_engine(fake_run, "vllm", VLLM)
    manifest = _study(
        tmp_path, [(1, 1, hf), (2, 1, vllm), (2, 2, as_engine(fake_run, "vllm", VLLM, cycle=2))]
    )
    (tmp_path / "002_c2_vllm" / "result.json").write_text("{not json")
    parity = study_parity(tmp_path, manifest.entries)
    assert parity is not None
    assert any("002_c2_vllm" in note and "unreadable" in note for note in parity.notes)
    assert parity.groups[0].members[1].n_results == 1
