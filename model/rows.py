"""Rows of one batched pass: per-row steerings stacked into one (model.steer's RowBias where the
rows differ), the streams a pass runs (each row, then the contrastive rows' masked passes), and
how a row picks its next token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .bias import ImportanceBias, RowBias
from .kvcache import KV
from .steer import Steering

if TYPE_CHECKING:
    from .methods import Contrast


def stack(steers: Sequence[Steering | None], width: int, lengths: torch.Tensor) -> Steering | None:
    """Per-row steerings as one, in a left-padded batch's coordinates (``width`` columns, row r's
    prompt in its last ``lengths[r]``). Rows that share one bias keep it as is; rows that differ
    (several methods, a contrastive row's masked pass) get a ``RowBias``; a row with no steering
    gets no bias."""
    present = [s for s in steers if s is not None]
    if not present:
        return None
    first = present[0]
    rows = len(steers)
    n_levels = first.key_levels.shape[-1]
    device = first.key_levels.device
    levels = torch.zeros(rows, width, n_levels, device=device)
    gated = any(s.gate is not None for s in present)
    gate = torch.zeros(rows, width, dtype=torch.bool, device=device) if gated else None
    for r, s in enumerate(steers):
        if s is None:
            continue
        n = int(lengths[r])
        levels[r, width - n :] = s.key_levels[0].to(levels.dtype)
        if gate is not None:
            gate[r, width - n :] = s.gate[0] if s.gate is not None else True
    uniform = len(present) == rows and all(
        s.bias is first.bias and s.layers == first.layers for s in present
    )
    offsets = (width - lengths).to(device=device, dtype=torch.long)  # left padding per row
    if uniform:
        return Steering(first.bias, levels, gate=gate, layers=first.layers, offsets=offsets)
    biases: list[ImportanceBias | None] = []
    layer_sets: list[set[int] | None] = []
    for s in steers:
        if s is None:
            biases.append(None)
            layer_sets.append(None)
        elif isinstance(s.bias, ImportanceBias):
            biases.append(s.bias)
            layer_sets.append(s.active)
        else:
            raise TypeError("a row's steering must carry one ImportanceBias")
    return Steering(RowBias(biases, layer_sets), levels, gate=gate, offsets=offsets)


@dataclass
class Streams:
    """What one batched pass runs: a stream per row, then the contrastive rows' masked streams."""

    kvs: list[KV]
    steers: list[Steering | None]
    lengths: torch.Tensor
    masked_of: list[int | None]  # row r -> the index of its masked stream
    contrasts: list[Contrast | None]  # row r's contrastive method, if it has one

    def expand(self, tokens: Sequence[int]) -> list[int]:
        """Each row's token, then each masked stream's (its row's) token."""
        return list(tokens) + [tokens[r] for r, m in enumerate(self.masked_of) if m is not None]

    def expand_ids(self, ids: torch.Tensor) -> torch.Tensor:
        extra = [r for r, m in enumerate(self.masked_of) if m is not None]
        return torch.cat([ids, ids[extra]]) if extra else ids

    def combine(self, logits: torch.Tensor) -> torch.Tensor:
        """The rows' logits from the streams': a contrast's combination where a row has one."""
        rows = len(self.masked_of)
        out = logits[:rows]
        if rows == logits.shape[0]:
            return out
        out = out.clone()
        for r, m in enumerate(self.masked_of):
            contrast = self.contrasts[r]
            if m is not None and contrast is not None:
                out[r] = contrast.combine(out[r], logits[m])
        return out


MIN_TEMPERATURE = 1e-4


def pick(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> int:
    """Greedy (argmax; ties go to the lowest token id) or a seeded sample at ``temperature``."""
    if not temperature > 0:  # 0, and a NaN that slipped through, are greedy
        return int(torch.argmax(logits))
    # a temperature near 0 would turn the logits into infinities and the draw into NaNs: below
    # MIN_TEMPERATURE the distribution is the argmax's to within float precision anyway
    temperature = max(temperature, MIN_TEMPERATURE)
    probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)  # the generator's device
    return int(torch.multinomial(probs, 1, generator=generator))
