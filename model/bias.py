"""``ImportanceBias``: one additive attention bias β per (level, layer, head).

Every steering method stores its parameters here: ``uniform`` fills one β everywhere, ``pasta``
a β on its profiled heads, ``learned`` the fitted values. Adding β to the attention logits of the
keys of one level is the same as PASTA's scaling of every other key's attention by α = e^-β (the
softmax renormalises). It saves to and loads from a small JSON file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salience.markup import LEVELS, Level

FORMAT = "salience.importance-bias"
VERSION = 1


DISTANCE_KNOTS = (0, 16, 64, 256, 1024, 4096, 16384)  # tokens; g is linear in log(1 + d) between


INPUTS = ("distance", "ratio")  # what a scale reads of each query (Steering.query_scale)
FEATURES = {  # how a file describes it
    "distance": "log1p(tokens from the end of the nearest marked span before the query)",
    "ratio": "log1p((keys seen - marked keys seen) / marked keys seen), marked: hard or high",
}


class DistanceScale(nn.Module):
    """g_level(x): how much of β a query gives the marked keys of a level, as a function of one
    number x the query has.

    ``input`` says which: ``distance`` (the default), the tokens from the end of the nearest
    marked span before the query; or ``ratio``, the unmarked keys the query sees per marked key
    it sees, (n − m) / m (n keys seen, m of them hard or high) — what decides the marked keys'
    share of attention.

    Piecewise linear in log(1 + x), through one value per level at each knot (constant past the
    last knot and before the first). All values 1 is g ≡ 1: the distance-free β.
    An additive β multiplies a key's attention weight by e^β, but the marked keys' share falls
    roughly as 1/(keys seen), so a β that is right up close is too weak far away; g lets the fit
    grow it with log distance, as Scalable-Softmax (Nakanishi, 2025) grows the logit scale
    with log n, or shrink it up close.
    """

    def __init__(
        self, n_levels: int, knots: tuple[int, ...] = DISTANCE_KNOTS, input: str = "distance"
    ) -> None:
        super().__init__()
        if list(knots) != sorted(set(knots)) or knots[0] < 0:
            raise ValueError(f"knots must be increasing and non-negative, not {knots}")
        if input not in INPUTS:
            raise ValueError(f"a scale reads {' or '.join(INPUTS)}, not {input!r}")
        self.register_buffer("x", torch.log1p(torch.tensor(knots, dtype=torch.float32)))
        self.knots = tuple(int(k) for k in knots)
        self.input = input
        self.values = nn.Parameter(torch.ones(n_levels, len(knots)))

    def forward(self, distance: torch.Tensor) -> torch.Tensor:
        """(…, n_levels) factors for inputs (distances or ratios) of any shape (negative counts
        as 0)."""
        x = torch.log1p(distance.float().clamp(min=0))
        knots: torch.Tensor = self.x  # type: ignore[assignment]
        x = x.clamp(float(knots[0]), float(knots[-1]))
        i = torch.searchsorted(knots, x.contiguous(), right=True).clamp(1, len(knots) - 1)
        left, right = knots[i - 1], knots[i]
        w = ((x - left) / (right - left)).unsqueeze(-1)  # (…, 1)
        lo = self.values[:, i - 1].movedim(0, -1)  # (…, n_levels)
        hi = self.values[:, i].movedim(0, -1)
        return lo + w * (hi - lo)

    def is_identity(self) -> bool:
        return bool((self.values.detach() == 1).all())


HIGH_SHARE = 0.5  # high spans get this share of the hard β (uniform, pasta, a fit's start)


def level_strengths(beta: float) -> dict[Level, float]:
    """The β per level a single strength stands for: hard β, high β·HIGH_SHARE, others 0 —
    the rule every method that takes one strength (uniform, pasta, ``fit --init-beta``) uses."""
    return {Level.HARD: beta, Level.HIGH: beta * HIGH_SHARE}


class ImportanceBias(nn.Module):
    """β of shape (len(LEVELS), n_layers, n_heads); LEVELS = hard, high, normal, low.

    Optionally an *importance embedding*: one vector per level of the model's hidden size, added
    to the input embedding of every prompt token of that level (in the spirit of BERT's segment
    embeddings), so the model can be told which tokens are rules before any attention runs.
    """

    embed: nn.Parameter | None
    distance: DistanceScale | None

    def __init__(
        self,
        n_layers: int,
        n_heads: int,
        meta: dict[str, Any] | None = None,
        hidden: int | None = None,
        distance: tuple[int, ...] | None = None,
        scale_input: str = "distance",
    ) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(len(LEVELS), n_layers, n_heads))
        if hidden:
            self.embed = nn.Parameter(torch.zeros(len(LEVELS), hidden))
        else:
            self.register_parameter("embed", None)
        # optional: β · g(distance of the query from the rule, or its ratio), see DistanceScale
        self.distance = (
            DistanceScale(len(LEVELS), distance, scale_input) if distance is not None else None
        )
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def n_layers(self) -> int:
        return int(self.beta.shape[1])

    @property
    def n_heads(self) -> int:
        return int(self.beta.shape[2])

    def signature(self) -> list[Any]:
        """The values that decide what the bias does, as plain lists: β, then (only where there
        is one, so files without keep the eval keys they had) the distance scale's knots and
        values."""
        parts: list[Any] = [self.beta.detach().flatten().tolist()]
        if self.distance is not None:
            parts += [list(self.distance.knots), self.distance.values.detach().flatten().tolist()]
            if self.distance.input != "distance":
                parts.append(self.distance.input)
        return parts

    @classmethod
    def uniform(
        cls,
        n_layers: int,
        n_heads: int,
        betas: dict[Level, float],
        meta: dict[str, Any] | None = None,
    ) -> ImportanceBias:
        """The same β for a level on every layer and head (InstABoost-like)."""
        bias = cls(n_layers, n_heads, meta)
        with torch.no_grad():
            for level, value in betas.items():
                bias.beta[LEVELS.index(level)] = value
        return bias

    @classmethod
    def share(
        cls, n_layers: int, n_heads: int, share: float, meta: dict[str, Any] | None = None
    ) -> ImportanceBias:
        """The bias that gives the marked keys a target share of attention, whatever the
        prompt's length: with n keys seen, m of them marked, and the logits otherwise alike, an
        additive β gives the marked keys the share m·e^β / (m·e^β + n − m), which is ``share``
        when β = logit(share) + log((n − m) / m). So hard keys get
        max(0, logit(share) + log((n − m) / m)) and high keys half of it (as uniform does), on
        every layer and head: no bias where the rule already holds that share (a short prompt),
        more as unmarked text piles up — the log-n growth of Scalable-Softmax (Nakanishi, 2025),
        with the marked keys' count in it. g runs through the knots 0, 1, 2, 4, … 16,384 of
        the ratio (n − m) / m."""
        if not 0 < share < 1:
            raise ValueError(f"share must lie strictly between 0 and 1, not {share}")
        knots = (0, *(2**i for i in range(15)))
        bias = cls(n_layers, n_heads, meta, distance=knots, scale_input="ratio")
        assert bias.distance is not None
        ratio = torch.tensor(knots, dtype=torch.float32)
        logit = math.log(share / (1 - share))
        g = (logit + torch.log(ratio)).clamp(min=0)  # log 0 = -inf: no bias
        with torch.no_grad():
            for level, value in level_strengths(1.0).items():
                bias.beta[LEVELS.index(level)] = value
            bias.distance.values.copy_(g.expand(len(LEVELS), -1))
        return bias

    def set_strength(self, beta: float, layer: int | None = None, head: int | None = None) -> None:
        """``level_strengths(beta)`` on one head, or on every layer and head (None)."""
        at = (slice(None) if layer is None else layer, slice(None) if head is None else head)
        with torch.no_grad():
            for level, value in level_strengths(beta).items():
                self.beta[(LEVELS.index(level), *at)] = value

    def layer(self, index: int) -> torch.Tensor:
        """(n_heads, len(LEVELS)) for one layer: what the attention function adds."""
        return self.beta[:, index, :].transpose(0, 1)

    def active_layers(self) -> set[int]:
        """Layers with any non-zero β (the others run the stock attention)."""
        nonzero = self.beta.detach().abs().sum(dim=(0, 2)) > 0
        return {int(i) for i in nonzero.nonzero().flatten()}

    def to_dict(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.embed is not None:
            extra = {
                "hidden": int(self.embed.shape[1]),
                "embed": [[round(float(x), 6) for x in row] for row in self.embed.detach()],
            }
        if self.distance is not None:
            extra["distance"] = {
                "feature": FEATURES[self.distance.input],
                "input": self.distance.input,
                "knots": list(self.distance.knots),
                "values": [
                    [round(float(x), 6) for x in row] for row in self.distance.values.detach()
                ],
            }
        return {
            "format": FORMAT,
            "version": VERSION,
            "levels": [level.value for level in LEVELS],
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "beta": [
                [[round(float(x), 6) for x in row] for row in level] for level in self.beta.detach()
            ],
            **extra,
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportanceBias:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an importance-bias file (format {data.get('format')!r})")
        if data.get("levels") != [level.value for level in LEVELS]:
            raise ValueError(
                f"levels {data.get('levels')} do not match {[lv.value for lv in LEVELS]}"
            )
        hidden = int(data["hidden"]) if "embed" in data else None
        distance = data.get("distance")
        knots = tuple(int(k) for k in distance["knots"]) if distance is not None else None
        scale_input = str(distance.get("input", "distance")) if distance is not None else "distance"
        bias = cls(
            int(data["n_layers"]),
            int(data["n_heads"]),
            data.get("meta"),
            hidden,
            knots,
            scale_input,
        )
        values = torch.tensor(data["beta"], dtype=torch.float32)
        if values.shape != bias.beta.shape:
            raise ValueError(
                f"beta has shape {tuple(values.shape)}, expected {tuple(bias.beta.shape)}"
            )
        with torch.no_grad():
            bias.beta.copy_(values)
            if bias.embed is not None:
                embed = torch.tensor(data["embed"], dtype=torch.float32)
                if embed.shape != bias.embed.shape:
                    raise ValueError(
                        f"embed has shape {tuple(embed.shape)}, expected {tuple(bias.embed.shape)}"
                    )
                bias.embed.copy_(embed)
            if bias.distance is not None:
                assert distance is not None
                values = torch.tensor(distance["values"], dtype=torch.float32)
                if values.shape != bias.distance.values.shape:
                    raise ValueError(
                        f"distance values have shape {tuple(values.shape)}, expected "
                        f"{tuple(bias.distance.values.shape)}"
                    )
                bias.distance.values.copy_(values)
        return bias

    @classmethod
    def load(cls, path: str | Path) -> ImportanceBias:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


class RowBias:
    """Per-row β for a batch whose rows steer differently (rows of several methods, or a spa row
    next to its masked pass, in one forward pass): row r takes ``biases[r]`` on ``layers[r]``
    (all of its non-zero layers where None), and no bias at all where ``biases[r]`` is None."""

    def __init__(
        self, biases: Sequence[ImportanceBias | None], layers: Sequence[set[int] | None]
    ) -> None:
        first = next(b for b in biases if b is not None)
        rows, n_levels, n_layers, n_heads = len(biases), *first.beta.shape
        device = first.beta.device
        self.beta = torch.zeros(rows, n_levels, n_layers, n_heads, device=device)
        self._active: set[int] = set()
        embeds = [b.embed for b in biases if b is not None and b.embed is not None]
        self.embed: torch.Tensor | None = (
            torch.zeros(rows, n_levels, embeds[0].shape[-1], device=device) if embeds else None
        )
        # each row's distance scale (None: g ≡ 1), evaluated row by row
        self.distances: list[DistanceScale | None] = [
            b.distance if b is not None else None for b in biases
        ]
        for r, (bias, only) in enumerate(zip(biases, layers, strict=True)):
            if bias is None:
                continue
            active = bias.active_layers() if only is None else set(only)
            self._active |= active
            keep = torch.tensor([i in active for i in range(n_layers)], device=device)
            self.beta[r] = bias.beta.detach().to(device) * keep.view(1, n_layers, 1)
            if self.embed is not None and bias.embed is not None:
                self.embed[r] = bias.embed.detach().to(device)

    def layer(self, index: int) -> torch.Tensor:
        """(B, n_heads, len(LEVELS)) for one layer."""
        return self.beta[:, :, index, :].transpose(1, 2)

    def active_layers(self) -> set[int]:
        return set(self._active)


def layer_beta(bias: ImportanceBias | RowBias, layer: int) -> torch.Tensor:
    """(B or 1, H, L): the β one layer adds, per row where the rows differ."""
    beta = bias.layer(layer)
    return beta if beta.dim() == 3 else beta.unsqueeze(0)
