"""Attention mass on marked keys, for measurement only (tests and plots; ``Steering.record``):
the explicit softmax the fused kernel never forms, with the same bias the steered pass adds."""

from __future__ import annotations

from typing import Protocol

import torch

from .bias import ImportanceBias, RowBias, layer_beta


class Steered(Protocol):
    """What the measurement reads of a steering state (model.steer.Steering)."""

    bias: ImportanceBias | RowBias
    active: set[int]
    mass: dict[int, torch.Tensor]

    def keys(self, k_len: int, dtype: torch.dtype) -> torch.Tensor: ...

    def query_scale(self, q_len: int, k_len: int) -> torch.Tensor | None: ...

    def query_gate(self, q_len: int, k_len: int, dtype: torch.dtype) -> torch.Tensor | None: ...


def record_mass(
    state: Steered,
    layer: int,
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None,
) -> None:
    """The explicit softmax, for measurement only: mass on keys that carry any level."""
    with torch.no_grad():
        _, n_heads, q_len, head_dim = query.shape
        n_kv, k_len = key.shape[1], key.shape[2]
        scale = scaling if scaling is not None else head_dim**-0.5
        keys = key.float().repeat_interleave(n_heads // n_kv, dim=1)
        logits = torch.matmul(query.float(), keys.transpose(-1, -2)) * scale  # (B, H, q, k)
        levels = state.keys(k_len, torch.float32)[:, 0]  # (B, k, L)
        if layer in state.active:
            beta = layer_beta(state.bias, layer).float().expand(levels.shape[0], -1, -1)
            factors = state.query_scale(q_len, k_len)
            if factors is None:
                add = torch.einsum("bhl,bkl->bhk", beta, levels).unsqueeze(2)  # (B, H, 1, k)
            else:  # (B, H, q, k): each query its own g
                add = torch.einsum("bhl,bql,bkl->bhqk", beta, factors.float(), levels)
            gate = state.query_gate(q_len, k_len, torch.float32)
            logits = logits + (add if gate is None else add * gate)
        positions = torch.arange(k_len - q_len, k_len, device=query.device).view(q_len, 1)
        later = torch.arange(k_len, device=query.device).view(1, k_len) > positions
        logits = logits.masked_fill(later, float("-inf"))
        if attention_mask is not None and attention_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attention_mask[..., :k_len], float("-inf"))
        weights = logits.softmax(dim=-1).nan_to_num(0.0)
        marked = (levels.sum(dim=-1) > 0).unsqueeze(1).unsqueeze(1)  # (B, 1, 1, k)
        mass = (weights * marked).sum(dim=-1)  # (B, H, q)
        gate = state.query_gate(q_len, k_len, torch.float32)
        if gate is not None:
            g = gate.view(gate.shape[0], 1, q_len)
            per_head = (mass * g).sum(dim=-1) / g.sum(dim=-1).clamp(min=1)
        else:
            per_head = mass.mean(dim=-1)
        state.mass[layer] = per_head.mean(dim=0)
