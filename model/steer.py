"""The attention bias, inside the model: a registered attention function, no forked model code.

``register(model)`` installs the function ``salience`` through transformers' attention-function
registry (and the stock SDPA mask function under the same name). Outside a ``steering(...)``
block, and on layers whose β is all zero, a multi-token pass *is* the stock SDPA attention; a
decoding step (one query) takes a packed path, steered or not (``_decode_step``). Inside, for a
steered layer, it adds β[level, layer, head] to the attention logits of every key of that level,
at prefill and at every decoding step (the keys come from the KV cache; generated tokens have no
level).

How, without losing the fused causal kernel: the bias is folded into extra head dimensions.
With one-hot key levels m_j ∈ {0,1}^L appended to each key, β_h / scale appended to each query,
and zeros appended to each value, the kernel computes

    scale · (q·k + (β_h / scale)·m_j) = scale · q·k + β_h·m_j

so ``is_causal=True`` still holds and nothing T×T is materialised. The extra output dimensions
are zero and are cut off. Queries can be gated (``gate``): a query position that is not steered
gets zeros instead of β.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import (
    ALL_MASK_ATTENTION_FUNCTIONS,
    AttentionMaskInterface,
    sdpa_mask,
)

from .bias import DistanceScale, ImportanceBias, RowBias, layer_beta
from .mass import record_mass

NAME = "salience"


def _distance_scales(
    bias: ImportanceBias | RowBias,
) -> DistanceScale | list[DistanceScale | None] | None:
    if isinstance(bias, RowBias):
        return bias.distances if any(d is not None for d in bias.distances) else None
    return bias.distance


@dataclass
class Steering:
    """What one forward pass (or one generation) is steered by.

    ``bias`` is one ``ImportanceBias`` for every row, or a ``RowBias`` (one per row).
    ``key_levels`` is (T, L) for one sequence or (B, T, L) for a batch, in the batch's own
    (left-padded) coordinates: a padding position has a zero row, like a token with no level.
    ``gate`` is (T,) or (B, T) to match. Positions at or past T are generated tokens."""

    bias: ImportanceBias | RowBias
    key_levels: torch.Tensor  # (T_prompt, L) or (B, T_prompt, L): one-hot level of each token
    gate: torch.Tensor | None = None  # (T_prompt,) or (B, T_prompt) bool: prompt queries to steer
    steer_generated: bool = True
    layers: set[int] | None = None  # layers that take the folded path (default: non-zero β)
    record: bool = False  # measure attention mass on marked keys (slow; for tests and plots)
    # where the current pass starts, for the importance embedding of a pass that holds only part
    # of the prompt (a prompt continued from a shared prefix); None: a pass shorter than the
    # prompt is a decoding step
    start: int | None = None
    # (B,) left-padding columns per row (model.rows.stack): a scale that reads the keys a query
    # sees (input ``ratio``) does not count them; None: no padding
    offsets: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.active = self.bias.active_layers() if self.layers is None else set(self.layers)
        # the bias's device (the model's: LocalModel moves a method's bias there); what is made
        # here for the attention is made there
        self.device = self.bias.beta.device
        self.key_levels = self.key_levels.to(self.device)
        if self.key_levels.dim() == 2:
            self.key_levels = self.key_levels.unsqueeze(0)
        if self.gate is not None:
            self.gate = self.gate.to(self.device)
            if self.gate.dim() == 1:
                self.gate = self.gate.unsqueeze(0)
        self._cache: dict[tuple[int, torch.dtype], torch.Tensor] = {}
        self._rows: dict[int, torch.Tensor] = {}  # layer -> (B, H, 1, capacity) decode bias rows
        self._scales = _distance_scales(self.bias)
        self._scale: tuple[int, int, torch.Tensor] | None = None  # (q_len, k_len, factors)
        if self._scales is not None:
            # per row and prompt position: the last hard/high token at or before it (-1: none)
            marked = self.key_levels[..., :2].sum(dim=-1) > 0  # LEVELS: hard, high, …
            where = torch.arange(marked.shape[1], device=self.device).expand_as(marked)
            self._last_marked = torch.where(marked, where, -1).cummax(dim=1).values
            self._marked_seen = marked.long().cumsum(dim=1)  # (B, T): marked keys up to each
            self._offsets = (
                self.offsets.to(self.device).view(-1, 1)
                if self.offsets is not None
                else torch.zeros(1, 1, dtype=torch.long, device=self.device)
            )
            # for decoding steps: the prompt columns that carry a level in any row, their
            # levels, and every layer's β (layers, B|1, H, L)
            self._marked_cols = self.key_levels.sum(dim=-1).sum(dim=0).nonzero().flatten()
            self._marked_levels = self.key_levels[:, self._marked_cols].float()  # (B, M, L)
            self._beta_all = torch.stack(
                [layer_beta(self.bias, i).detach().float() for i in range(self.bias.beta.shape[-2])]
            )
        self._scaled_rows: torch.Tensor | None = None  # (layers, B, H, 1, capacity)
        self._scaled_g: torch.Tensor | None = None  # the g those rows were written with
        # layer -> (H,) attention mass on marked keys, averaged over steered query positions
        self.mass: dict[int, torch.Tensor] = {}

    @property
    def prompt_len(self) -> int:
        return int(self.key_levels.shape[1])

    def keys(self, k_len: int, dtype: torch.dtype) -> torch.Tensor:
        """(B, 1, k_len, L) key levels, zero past the prompt."""
        cached = self._cache.get((k_len, dtype))
        if cached is None:
            rows, _, n_levels = self.key_levels.shape
            out = torch.zeros(rows, k_len, n_levels, dtype=dtype, device=self.device)
            n = min(k_len, self.prompt_len)
            out[:, :n] = self.key_levels[:, :n].to(dtype)
            cached = out.view(rows, 1, k_len, n_levels)
            self._cache = {(k_len, dtype): cached}  # one size at a time: decoding grows by one
        return cached

    def decode_row(self, layer: int, k_len: int, dtype: torch.dtype) -> torch.Tensor:
        """(B, H, 1, k_len): the bias one new query adds to each key — a view of a buffer that
        is filled once per layer, so a decoding step allocates nothing; with a distance scale,
        the per-level rows are kept and weighted by this step's g."""
        if self._scales is not None:
            return self._scaled_decode_row(layer, k_len, dtype)
        row = self._rows.get(layer)
        if row is None or row.shape[-1] < k_len or row.dtype != dtype:
            capacity = max(k_len, 2 * (row.shape[-1] if row is not None else 0), 256)
            levels = self.key_levels.to(torch.float32)  # (B, T_prompt, L)
            beta = layer_beta(self.bias, layer).detach().float()  # (B or 1, H, L)
            beta = beta.expand(levels.shape[0], -1, -1)
            values = torch.einsum("bhl,btl->bht", beta, levels)  # (B, H, T_prompt)
            row = torch.zeros(
                values.shape[0], values.shape[1], 1, capacity, dtype=dtype, device=self.device
            )
            n = min(capacity, values.shape[2])
            row[:, :, 0, :n] = values[:, :, :n].to(dtype)
            self._rows[layer] = row
        return row[..., :k_len]

    def _scaled_decode_row(self, layer: int, k_len: int, dtype: torch.dtype) -> torch.Tensor:
        """With a distance scale the row changes with every step's g, but only on the marked
        columns: one small product per step gives every layer's values there,
        Σ_l β[layer, h, l] · g_l · m_l(t) for the columns t marked in any row, written into one
        zero buffer (layers, B, H, 1, capacity) that each layer then reads as a view. A step whose
        g equals the last one's (past the last knot) writes nothing."""
        buffer = self._scaled_rows
        if buffer is None or buffer.shape[-1] < k_len or buffer.dtype != dtype:
            old = 0 if buffer is None else buffer.shape[-1]
            capacity = max(k_len, 2 * old, 256)
            n_layers = self.bias.beta.shape[-2]
            rows, heads = self.key_levels.shape[0], self.bias.beta.shape[-1]
            buffer = torch.zeros(
                n_layers, rows, heads, 1, capacity, dtype=dtype, device=self.device
            )
            self._scaled_rows, self._scaled_g = buffer, None
        g = self.query_scale(1, k_len)
        assert g is not None
        g = g[:, 0].detach().float()  # (B, L)
        if self._scaled_g is None or not torch.equal(g, self._scaled_g):
            # (layers, B|1, H, L) · g → (layers, B, H, L); then onto the marked columns' levels
            coef = self._beta_all * g.unsqueeze(0).unsqueeze(2)
            values = torch.einsum("nbhl,bml->nbhm", coef, self._marked_levels)
            buffer[:, :, :, 0, self._marked_cols] = values.to(dtype)
            self._scaled_g = g
        return buffer[layer, ..., :k_len]

    def query_scale(self, q_len: int, k_len: int) -> torch.Tensor | None:
        """(B, q_len, L): g_level(x) for the query positions k_len-q_len … k_len-1, where x is
        what the scale reads: the distance from the nearest hard/high token at or before the
        query (for generated queries: the prompt's last one), or the ratio of unmarked to
        marked keys the query sees (padding not counted; generated keys are unmarked); None
        when the bias has no scale (g ≡ 1)."""
        if self._scales is None:
            return None
        if self._scale is not None and self._scale[:2] == (q_len, k_len):
            return self._scale[2]  # every layer of one pass asks for the same factors
        positions = torch.arange(k_len - q_len, k_len, device=self.device)
        inputs: dict[str, torch.Tensor] = {}

        def read(name: str) -> torch.Tensor:  # (B, q), computed once per pass
            if name not in inputs:
                at = positions.clamp(max=self.prompt_len - 1)
                if name == "distance":  # no marked token yet: β multiplies nothing
                    inputs[name] = positions.unsqueeze(0) - self._last_marked[:, at]
                else:
                    seen = (positions.unsqueeze(0) + 1 - self._offsets).float()
                    marked = self._marked_seen[:, at].float()
                    # no marked key seen: β multiplies nothing; the ratio is then immaterial
                    inputs[name] = (seen - marked) / marked.clamp(min=1)
            return inputs[name]

        factors: torch.Tensor
        if isinstance(self._scales, DistanceScale):
            factors = self._scales(read(self._scales.input))
        else:
            rows = []
            for r, scale in enumerate(self._scales):
                if scale is None:
                    rows.append(torch.ones(q_len, self.key_levels.shape[-1], device=self.device))
                else:
                    rows.append(scale(read(scale.input)[r]))
            factors = torch.stack(rows)
        if not factors.requires_grad:  # a fitting pass builds its graph anew each time
            self._scale = (q_len, k_len, factors)
        return factors

    def query_gate(self, q_len: int, k_len: int, dtype: torch.dtype) -> torch.Tensor | None:
        """(B, 1, q_len, 1) of 0/1 for the query positions k_len-q_len … k_len-1, or None (all)."""
        if self.gate is None and self.steer_generated:
            return None
        rows = self.key_levels.shape[0]
        positions = torch.arange(k_len - q_len, k_len, device=self.device)
        gate = torch.full((rows, q_len), self.steer_generated, dtype=torch.bool, device=self.device)
        in_prompt = positions < self.prompt_len
        if self.gate is not None:
            gate[:, in_prompt] = self.gate[:, positions[in_prompt]]
        else:
            gate[:, in_prompt] = True
        return gate.to(dtype).view(rows, 1, q_len, 1)


_current: contextvars.ContextVar[Steering | None] = contextvars.ContextVar(
    "salience_steering", default=None
)


@contextmanager
def steering(state: Steering | None) -> Iterator[None]:
    """Steer every forward pass inside the block (``None``: explicitly unsteered)."""
    token = _current.set(state)
    try:
        yield
    finally:
        _current.reset(token)


def steered_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (B, H, q_len, d)
    key: torch.Tensor,  # (B, H_kv, k_len, d)
    value: torch.Tensor,  # (B, H_kv, k_len, d)
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    state = _current.get()
    layer = getattr(module, "layer_idx", None)
    if state is not None and state.record and isinstance(layer, int):
        record_mass(state, layer, query, key, attention_mask, scaling)
    steered = state is not None and layer in state.active
    if query.shape[2] == 1 and not query.requires_grad:
        active = state if steered else None
        return _decode_step(active, layer, query, key, value, attention_mask, dropout, scaling)
    if state is None or not isinstance(layer, int) or not steered:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    batch, n_heads, q_len, head_dim = query.shape
    n_kv, k_len = key.shape[1], key.shape[2]
    scale = scaling if scaling is not None else head_dim**-0.5
    dtype = query.dtype

    beta = layer_beta(state.bias, layer).to(dtype)  # (B or 1, H, L)
    assert beta.shape[1] == n_heads, f"bias has {beta.shape[1]} heads, the layer {n_heads}"
    q_extra = (beta / scale).unsqueeze(2).expand(batch, n_heads, q_len, -1)
    factors = state.query_scale(q_len, k_len)  # (B, q, L): β · g(distance of each query)
    if factors is not None:
        q_extra = q_extra * factors.to(dtype).unsqueeze(1)
    gate = state.query_gate(q_len, k_len, dtype)
    if gate is not None:
        q_extra = q_extra * gate
    levels = state.keys(k_len, dtype).expand(batch, n_kv, k_len, -1)
    if attention_mask is not None:
        attention_mask = attention_mask[..., :k_len]
    query = torch.cat([query, q_extra], dim=-1)
    key = torch.cat([key, levels], dim=-1)
    value = torch.cat([value, torch.zeros_like(levels)], dim=-1)

    causal = q_len > 1 and attention_mask is None and (is_causal if is_causal is not None else True)
    if causal and k_len > q_len:
        raise NotImplementedError("a multi-token query over a longer cache needs an explicit mask")
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=attention_mask,
        dropout_p=dropout,
        scale=scale,
        is_causal=causal,
        enable_gqa=n_heads != n_kv,
    )
    out = out[..., :head_dim]  # the folded dimensions carry no value
    return out.transpose(1, 2).contiguous(), None


def _decode_step(
    state: Steering | None,
    layer: int | None,
    query: torch.Tensor,  # (B, H, 1, d)
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    scaling: float | None,
) -> tuple[torch.Tensor, None]:
    """One decoding step, steered or not: no causal mask is needed, so the bias is a plain
    (H, k_len) additive row read from a buffer (plus the batch's padding mask, if any), and the
    heads that share a KV head are packed as queries of it — the stock path repeats the KV
    heads instead, a copy of the whole cache per layer and step that costs more than the
    attention itself once several rows decode together."""
    batch, n_heads, _, head_dim = query.shape
    n_kv, k_len = key.shape[1], key.shape[2]
    scale = scaling if scaling is not None else head_dim**-0.5
    dtype = query.dtype
    row: torch.Tensor | None = None
    if state is not None and isinstance(layer, int):
        gate = state.query_gate(1, k_len, dtype)  # generated queries: the same for every row
        row = state.decode_row(layer, k_len, dtype)
        if gate is not None and not bool(gate.any()):
            row = None
    if attention_mask is not None:
        mask = attention_mask[..., :k_len]
        if mask.dtype == torch.bool:
            if row is None:
                row = torch.zeros(mask.shape[0], 1, 1, k_len, dtype=dtype, device=query.device)
            row = row.masked_fill(~mask, torch.finfo(dtype).min)
        else:
            row = mask.to(dtype) if row is None else row + mask.to(dtype)
    n_rep = n_heads // n_kv
    attn_mask = None
    if row is not None:
        heads = row.shape[1]
        attn_mask = row.expand(batch, heads, 1, k_len)
        attn_mask = (
            attn_mask.reshape(batch, n_kv, n_rep, k_len)
            if heads == n_heads
            else attn_mask.expand(batch, n_heads, 1, k_len).reshape(batch, n_kv, n_rep, k_len)
        )
    out = F.scaled_dot_product_attention(
        query.reshape(batch, n_kv, n_rep, head_dim),
        key,
        value,
        attn_mask=attn_mask,
        dropout_p=dropout,
        scale=scale,
    )
    return out.reshape(batch, n_heads, 1, head_dim).transpose(1, 2).contiguous(), None


def _add_importance_embedding(
    module: torch.nn.Module, inputs: tuple[Any, ...], output: torch.Tensor
) -> torch.Tensor | None:
    """Forward hook on the input embeddings: add the bias's per-level vector to every prompt
    token of that level. A pass that holds the whole prompt (prefill, a scoring pass) starts at 0;
    one that continues a prompt from a shared prefix says where it starts (``Steering.start``);
    decoding steps carry generated tokens, which have no level."""
    state = _current.get()
    if state is None or state.bias.embed is None:
        return None
    n = state.prompt_len
    width = output.shape[1]
    start = state.start if state.start is not None else (0 if width >= n else n)
    if start >= n:
        return None  # a decoding step: generated tokens have no level
    levels = state.key_levels[:, start : start + width].to(output.dtype)  # (B, w, L)
    offset = levels @ state.bias.embed.to(output.dtype)  # (B, w, D); embed (L, D) or (B, L, D)
    if offset.shape[1] < width:
        offset = F.pad(offset, (0, 0, 0, width - offset.shape[1]))
    return output + offset


def register(model: PreTrainedModel) -> PreTrainedModel:
    """Install the steering attention (and the importance-embedding hook) on ``model``
    (idempotent)."""
    AttentionInterface.register(NAME, steered_attention)
    if NAME not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionMaskInterface.register(NAME, sdpa_mask)
    if model.config._attn_implementation != NAME:
        model.set_attn_implementation(NAME)
    embeddings = model.get_input_embeddings()
    if not getattr(embeddings, "_salience_hooked", False):
        embeddings.register_forward_hook(_add_importance_embedding)
        embeddings._salience_hooked = True  # type: ignore[assignment]
    return model
