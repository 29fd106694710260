"""The FLOPs model: forward-pass FLOPs of a decoder-only transformer from its matmul shape.

Per layer and token (a multiply-add is two FLOPs; ``h`` hidden, ``H`` query heads, ``K``
key/value heads, ``d`` head width, ``I`` MLP width, ``V`` vocabulary):

* attention projections: ``2·(h·H·d + 2·h·K·d + H·d·h)`` (q, k and v, o; grouped KV heads)
* MLP: ``2·3·h·I`` when gated (gate, up, down), ``2·2·h·I`` otherwise; a mixture of experts
  counts the experts a token is routed to, plus its router (``2·h·E``)
* attention scores: ``4·H·d·c`` for a token that attends to ``c`` positions (q·k and
  attention·v), causal: the i-th prompt token attends to i positions
* LM head: ``2·h·V``, counted even when it is tied to the embedding: the matmul runs anyway

Prefill runs every prompt token through the layers and the LM head once (engines compute
logits only at the last prompt position); it yields the first output token. Each later
output token costs one decode step: the previous token through the layers at its context
length, and the LM head. Padding and tokens after a request's end are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from llenergymeasure.records.compute import ModelShape, ParamCounts

__all__ = [
    "Flops",
    "decode_context_sum",
    "decode_flops",
    "kv_bytes_per_position",
    "param_counts",
    "prefill_flops",
]


@dataclass(frozen=True)
class Flops:
    """FLOPs, with the context-dependent attention-score part and the LM head's part."""

    total: float = 0.0
    scores: float = 0.0
    lm_head: float = 0.0

    def __add__(self, other: Flops) -> Flops:
        return Flops(
            self.total + other.total, self.scores + other.scores, self.lm_head + other.lm_head
        )


def _attention_params(shape: ModelShape) -> int:
    """One layer's q, k, v and o projection weights."""
    q_width = shape.n_heads * shape.head_dim
    kv_width = shape.n_kv_heads * shape.head_dim
    return (
        shape.hidden_size * q_width + 2 * shape.hidden_size * kv_width + q_width * shape.hidden_size
    )


def _expert_params(shape: ModelShape) -> int:
    """One expert's (or the dense MLP's) weights."""
    return (3 if shape.gated_mlp else 2) * shape.hidden_size * shape.intermediate_size


def _router_params(shape: ModelShape) -> int:
    return shape.hidden_size * shape.n_experts if shape.n_experts else 0


def param_counts(shape: ModelShape) -> ParamCounts:
    """Logical matmul parameters: attention, MLP (every expert), LM head; and per token."""
    attention = shape.n_layers * _attention_params(shape)
    experts = shape.n_experts or 1
    mlp = shape.n_layers * (experts * _expert_params(shape) + _router_params(shape))
    active_mlp = shape.n_layers * (
        (shape.n_active_experts or 1) * _expert_params(shape) + _router_params(shape)
    )
    lm_head = shape.hidden_size * shape.vocab_size
    return ParamCounts(
        attention=attention,
        mlp=mlp,
        lm_head=lm_head,
        total=attention + mlp + lm_head,
        active_per_token=attention + active_mlp + lm_head,
    )


def _layer_flops_per_token(shape: ModelShape) -> float:
    """FLOPs of every layer's matmuls for one token, attention scores excluded."""
    counts = param_counts(shape)
    return 2.0 * (counts.active_per_token - counts.lm_head)


def _score_flops_per_position(shape: ModelShape) -> float:
    """Attention-score FLOPs, all layers, for one token per position it attends to."""
    return 4.0 * shape.n_layers * shape.n_heads * shape.head_dim


def prefill_flops(shape: ModelShape, n_prompt: int) -> Flops:
    """The prefill of one prompt of ``n_prompt`` tokens (causal), and its one LM head."""
    if n_prompt <= 0:
        return Flops()
    scores = _score_flops_per_position(shape) * n_prompt * (n_prompt + 1) / 2
    lm_head = 2.0 * shape.hidden_size * shape.vocab_size
    total = _layer_flops_per_token(shape) * n_prompt + scores + lm_head
    return Flops(total, scores, lm_head)


def decode_context_sum(n_prompt: int, n_output: int) -> int:
    """Positions attended to over a request's decode steps: the sum of ``n_prompt + j``
    for ``j`` from 1 to ``n_output - 1``."""
    steps = max(n_output - 1, 0)
    return steps * n_prompt + steps * (steps + 1) // 2


def decode_flops(shape: ModelShape, n_prompt: int, n_output: int) -> Flops:
    """The ``n_output - 1`` decode steps of one request (its first token came from prefill)."""
    steps = max(n_output - 1, 0)
    scores = _score_flops_per_position(shape) * decode_context_sum(n_prompt, n_output)
    lm_head = 2.0 * shape.hidden_size * shape.vocab_size * steps
    total = _layer_flops_per_token(shape) * steps + scores + lm_head
    return Flops(total, scores, lm_head)


def kv_bytes_per_position(shape: ModelShape, element_bytes: int) -> int:
    """Bytes of K and V cache for one position, all layers."""
    return 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * element_bytes
