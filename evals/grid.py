"""An eval grid: which items, distractor kinds, lengths, rule positions and methods, what is
measured beyond the greedy answer, and how a run's settings are told apart from its cells; and
one planned sample of it (evals.runner plans, evals.records scores)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from salience.markup import Conversation

from . import split
from .errors import GridError


@dataclass
class Grid:
    split: str = "test"
    items: int = 4
    kinds: Sequence[str] = ("prose",)
    lengths: Sequence[int] = (0, 256)
    positions: Sequence[str] = ("before",)
    methods: Sequence[str] = ("none", "uniform")
    seed: int = 0
    max_new_tokens: int = 64
    margin: bool = False  # measure (c), local backend: the compliance margin
    design: str = "crossed"  # or "rotated": one (kind, position) per item, in turn
    samples: int = 0  # measure (b): sampled answers per prompt (0: greedy only)
    temperature: float = 0.7  # of the sampled answers
    families: Sequence[str] | None = None  # only items of these families
    dataset: str | None = None  # an IFEval-format file whose rows are the items (evals.ifeval)
    bank: str | None = None  # a calibrated item bank (evals.bank): its first ``items`` items

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise GridError(f"design must be one of {', '.join(DESIGNS)}, not {self.design!r}")
        if not 0 <= self.samples <= 64:
            raise GridError(f"samples must lie in 0…64, not {self.samples}")
        if self.samples and not 0 <= self.temperature <= 5:
            raise GridError(f"temperature must lie in 0…5, not {self.temperature}")
        if self.families is not None:
            self.families = list(self.families)
        if self.bank is not None and (self.dataset is not None or self.families is not None):
            raise GridError("a bank names its items: it does not go with a dataset or families")

    CELLS = ("items", "kinds", "lengths", "positions", "methods")

    def settings(self) -> dict[str, Any]:
        """What every record of a run made with this grid shares (a run may grow new cells —
        more items, lengths, methods — but never mixes records that differ in one of these)."""
        return {k: v for k, v in asdict(self).items() if k not in self.CELLS}

    def cells(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in self.CELLS}

    def identity(self, backend: str, model: str) -> str:
        """A run name covering every grid factor, generation setting and the model."""
        data = json.dumps([asdict(self), backend, model], sort_keys=True, default=list)
        return "run-" + hashlib.sha256(data.encode()).hexdigest()[:8]

    def measures(self) -> str:
        """What beyond the greedy answer a sample holds (part of its key)."""
        out = f"|k{self.samples}|t{self.temperature:g}" if self.samples else ""
        return out + ("|margin" if self.margin else "")

    def size(self) -> int:
        per_item = 1 if self.design == "rotated" else len(self.kinds) * len(self.positions)
        return self.items * per_item * len(self.lengths) * len(self.methods)

    def conditions(self, index: int) -> list[tuple[str, str]]:
        """The (kind, position) pairs item number ``index`` gets."""
        pairs = [(k, p) for k in self.kinds for p in self.positions]
        return [pairs[index % len(pairs)]] if self.design == "rotated" else pairs


DESIGNS = ("crossed", "rotated")


@dataclass(frozen=True)
class _Planned:
    key: str
    item: split.Item
    conv: Conversation
    factors: dict[str, Any]
