"""PASTA's head profiling: steer one head at a time, rank heads by effect, keep the top k.

For every (layer, head), the bias β is put on that head alone and the log-probability of each
profiling item's compliant answer is measured; a head's score is the mean gain over no steering.
The top ``k`` heads get β (hard; high gets β/2) in an ``ImportanceBias``, saved with the scores,
the settings and the command that reproduces it. (PASTA: Zhang et al., 2023, "Tell Your Model
Where to Attend"; their α = 0.01 is β ≈ 4.6 here.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..bias import ImportanceBias
from ..local import LocalModel
from ..methods import Method
from .profiling import Scored


def profile_heads(
    lm: LocalModel,
    items: Sequence[Scored],
    beta: float = 1.5,
    layers: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """(n_layers, n_heads) mean log-probability gain of steering each head alone (NaN: skipped)."""
    layers = list(range(lm.n_layers)) if layers is None else list(layers)
    base = torch.tensor([lm.score(item.conversation, item.target, "none") for item in items])
    scores = torch.full((lm.n_layers, lm.n_heads), float("nan"))
    done, total = 0, len(layers) * lm.n_heads
    for layer in layers:
        for head in range(lm.n_heads):
            bias = ImportanceBias(lm.n_layers, lm.n_heads)
            bias.set_strength(beta, layer, head)
            method = Method("pasta-profile", bias=bias)
            steered = torch.tensor([lm.score(i.conversation, i.target, method) for i in items])
            scores[layer, head] = float((steered - base).mean())
            done += 1
            if progress is not None:
                progress(done, total)
    return scores


def select_heads(scores: torch.Tensor, k: int, beta: float, meta: dict[str, Any]) -> ImportanceBias:
    n_layers, n_heads = scores.shape
    flat = torch.nan_to_num(scores, nan=float("-inf")).flatten()
    top = torch.topk(flat, k=min(k, int(torch.isfinite(flat).sum()))).indices
    bias = ImportanceBias(n_layers, n_heads)
    heads = []
    for index in top.tolist():
        layer, head = divmod(index, n_heads)
        bias.set_strength(beta, layer, head)
        heads.append([layer, head, round(float(scores[layer, head]), 5)])
    bias.meta = {
        **meta,
        "method": "pasta",
        "beta": beta,
        "k": len(heads),
        "heads": heads,  # [layer, head, mean log-prob gain], best first
        "scores": [
            [None if s != s else round(float(s), 5) for s in row] for row in scores.tolist()
        ],
        "created": time.strftime("%Y-%m-%d"),
    }
    return bias
