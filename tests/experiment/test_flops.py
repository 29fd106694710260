"""The FLOPs model, against figures worked out by hand for two real shapes."""

from __future__ import annotations

import pytest

from llenergymeasure.experiment.flops import (
    decode_context_sum,
    decode_flops,
    kv_bytes_per_position,
    param_counts,
    prefill_flops,
)
from llenergymeasure.records.compute import ModelShape

SMOLLM2_135M = ModelShape(
    model_type="llama",
    n_layers=30,
    hidden_size=576,
    n_heads=9,
    n_kv_heads=3,
    head_dim=64,
    intermediate_size=1536,
    vocab_size=49152,
    gated_mlp=True,
    tied_embeddings=True,
)
LLAMA3_8B = ModelShape(
    model_type="llama",
    n_layers=32,
    hidden_size=4096,
    n_heads=32,
    n_kv_heads=8,
    head_dim=128,
    intermediate_size=14336,
    vocab_size=128256,
    gated_mlp=True,
    tied_embeddings=False,
)


def test_smollm2_135m_parameters_include_the_tied_lm_head() -> None:
    counts = param_counts(SMOLLM2_135M)
    # per layer: q 576x576 = 331,776; k, v 576x192 = 110,592 each; o 331,776 -> 884,736
    assert counts.attention == 30 * 884_736 == 26_542_080
    # gate, up, down: 3 x 576 x 1536 = 2,654,208 per layer
    assert counts.mlp == 30 * 2_654_208 == 79_626_240
    # 576 x 49,152, counted although it shares the embedding's weights
    assert counts.lm_head == 28_311_552
    assert counts.total == counts.active_per_token == 134_479_872  # not ~106 M


def test_llama3_8b_parameters_with_grouped_kv_heads() -> None:
    counts = param_counts(LLAMA3_8B)
    # per layer: q, o 4096 x 4096 = 16,777,216 each; k, v 4096 x (8 x 128) = 4,194,304 each
    assert counts.attention == 32 * 41_943_040 == 1_342_177_280
    assert counts.mlp == 32 * 3 * 4096 * 14336 == 5_637_144_576
    assert counts.lm_head == 4096 * 128256 == 525_336_576
    # + the 525,336,576-parameter input embedding = the published 8.03 B
    assert counts.total == 7_504_658_432


def test_smollm2_prefill_and_decode_by_hand() -> None:
    # per token through the layers: 2 x 106,168,320 = 212,336,640
    # attention scores per attended position: 4 x 30 layers x 9 heads x 64 = 69,120
    # LM head: 2 x 28,311,552 = 56,623,104
    prefill = prefill_flops(SMOLLM2_135M, 10)
    assert prefill.scores == 69_120 * 55  # causal: 1 + 2 + ... + 10 positions
    assert prefill.lm_head == 56_623_104  # once: logits only at the last prompt position
    assert prefill.total == 2_123_366_400 + 3_801_600 + 56_623_104 == 2_183_791_104
    # 3 output tokens: the first from prefill, then 2 decode steps at contexts 11 and 12
    decode = decode_flops(SMOLLM2_135M, 10, 3)
    assert decode.scores == 69_120 * 23 == 1_589_760
    assert decode.lm_head == 2 * 56_623_104
    assert decode.total == 424_673_280 + 1_589_760 + 113_246_208 == 539_509_248


def test_llama3_8b_prefill_of_a_thousand_tokens_and_one_decode_step() -> None:
    # layers per token: 2 x 6,979,321,856 = 13,958,643,712; scores per position:
    # 4 x 32 x 32 x 128 = 524,288; LM head: 2 x 525,336,576 = 1,050,673,152
    prefill = prefill_flops(LLAMA3_8B, 1000)
    assert prefill.scores == 524_288 * 500_500 == 262_406_144_000
    assert prefill.total == 14_222_100_529_152
    step = decode_flops(LLAMA3_8B, 1000, 2)
    assert step.total == 13_958_643_712 + 524_288 * 1001 + 1_050_673_152 == 15_534_129_152
    # the score term grows with the context: one more position, 524,288 more FLOPs
    later = decode_flops(LLAMA3_8B, 1001, 2)
    assert later.total - step.total == 524_288


def test_grouped_kv_heads_shrink_only_the_k_and_v_projections() -> None:
    mha = LLAMA3_8B.model_copy(update={"n_kv_heads": 32})
    assert param_counts(mha).attention - param_counts(LLAMA3_8B).attention == 32 * 2 * (
        4096 * 4096 - 4096 * 1024
    )
    # scores depend on the query heads only
    assert prefill_flops(mha, 8).scores == prefill_flops(LLAMA3_8B, 8).scores


def test_a_mixture_of_experts_counts_every_expert_but_runs_the_routed_ones() -> None:
    moe = ModelShape(
        model_type="mixtral",
        n_layers=2,
        hidden_size=8,
        n_heads=2,
        n_kv_heads=1,
        head_dim=4,
        intermediate_size=16,
        vocab_size=10,
        gated_mlp=True,
        tied_embeddings=False,
        n_experts=4,
        n_active_experts=2,
    )
    counts = param_counts(moe)
    # attention per layer: q 64 + k 32 + v 32 + o 64 = 192; expert: 3 x 8 x 16 = 384;
    # router: 8 x 4 = 32
    assert counts.attention == 384
    assert counts.mlp == 2 * (4 * 384 + 32) == 3136
    assert counts.total == 384 + 3136 + 80 == 3600
    assert counts.active_per_token == 384 + 2 * (2 * 384 + 32) + 80 == 2064
    assert prefill_flops(moe, 1).total == 2 * (2064 - 80) + 4 * 2 * 2 * 4 + 2 * 80


def test_plain_mlp_has_two_matmuls() -> None:
    plain = SMOLLM2_135M.model_copy(update={"gated_mlp": False})
    assert param_counts(plain).mlp == 30 * 2 * 576 * 1536


def test_edges_and_kv_bytes() -> None:
    assert prefill_flops(SMOLLM2_135M, 0).total == 0
    assert decode_flops(SMOLLM2_135M, 10, 1).total == 0  # one token: prefill made it
    assert decode_flops(SMOLLM2_135M, 10, 0).total == 0
    assert decode_context_sum(10, 3) == 23
    # K and V, 30 layers, 3 KV heads of 64, bfloat16
    assert kv_bytes_per_position(SMOLLM2_135M, 2) == 2 * 30 * 3 * 64 * 2 == 23_040
    assert decode_flops(SMOLLM2_135M, 5, 4).total == pytest.approx(
        3 * (212_336_640 + 56_623_104) + 69_120 * (6 + 7 + 8)
    )
