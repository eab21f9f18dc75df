"""Effective length and margin recovery, per rule position: the study's headline.

*Effective length* of a method at one rule position: the longest distractor length at which its
rate (by default the sampled ``both`` fraction) stays at least 90 % of a reference, and every
shorter length does too. Two references: the method's own length-0 rate ("own": how far the
distractor pushes this method) and ``none``'s length-0 rate ("vs none": how far the method keeps
the quality of the unsteered model with no distractor, so a method cannot look long-lived by
starting low).

*Margin recovery* at length L: (method − none at L) / (none at 0 − none at L) on the same
prompts, the margins' means: the share of the damage the distractor does to ``none`` that the
method undoes (1: all of it; above 1: more than the distractor took). Beside it the damage
itself, because with the rule next to the question (after the distractor) there is little or
nothing to undo and the ratio then means nothing: where the damage's interval reaches 0 the
ratio is not given.

Both are read per rule position and never pooled over positions. Intervals resample items (a
length-0 prompt and its longer versions are one item): 95 % percentile bootstrap, 2,000 draws.
The data of one item are its values at every (method, length): at length 0 the item's one
prompt (positions coincide there), at longer lengths the mean over the item's prompts at this
position (kinds, in a crossed design). Only items with a value at every (method, length) count.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .metrics import measure

KEEP = 0.9
RESAMPLES = 2000
POSITIONS = ("before", "after", "both", "system", "user")


@dataclass(frozen=True)
class Table:
    """One position's values: ``values[item][(method, length)]``, items complete."""

    position: str
    methods: list[str]
    lengths: list[int]
    values: dict[str, dict[tuple[str, int], float]]

    def resampled(
        self, resamples: int, seed: int
    ) -> tuple[dict[tuple[str, int], float], list[dict[tuple[str, int], float]]]:
        """The means over every item, and over each of ``resamples`` bootstrap draws of items."""
        items = list(self.values)
        rng = random.Random(seed)
        boot = [self.means([rng.choice(items) for _ in items]) for _ in range(resamples)]
        return self.means(items), boot

    def means(self, items: Sequence[str]) -> dict[tuple[str, int], float]:
        out = {}
        for key in ((m, n) for m in self.methods for n in self.lengths):
            out[key] = sum(self.values[i][key] for i in items) / len(items)
        return out


def tables(
    records: Sequence[dict[str, Any]], name: str = "sampled", metric: str = "both"
) -> list[Table]:
    """One table per rule position present at a length above 0."""
    base: dict[str, dict[str, float]] = defaultdict(dict)  # item → method → length-0 value
    longer: dict[str, dict[str, dict[tuple[str, int], list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    methods: set[str] = set()
    lengths: set[int] = set()
    for r in records:
        v = measure(r, name, metric)
        if v is None:
            continue
        methods.add(r["method"])
        if r["length"] == 0:
            base[r["item"]][r["method"]] = v
        else:
            lengths.add(r["length"])
            longer[r["position"]][r["item"]][(r["method"], r["length"])].append(v)
    out = []
    ordered = sorted(methods, key=lambda m: (m != "none", m))
    grid = [0, *sorted(lengths)]
    for position in sorted(longer, key=lambda p: (*POSITIONS, p).index(p)):
        values: dict[str, dict[tuple[str, int], float]] = {}
        for item, cells in longer[position].items():
            row = {(m, 0): base[item][m] for m in ordered if m in base.get(item, {})}
            row.update({k: sum(vs) / len(vs) for k, vs in cells.items()})
            if all((m, n) in row for m in ordered for n in grid):
                values[item] = row
        if values:
            out.append(Table(position, ordered, grid, dict(sorted(values.items()))))
    return out


def effective(rates: dict[int, float], reference: float, keep: float = KEEP) -> int | None:
    """The longest length whose rate (and every shorter one's) is >= keep × reference; None
    where the reference is 0 (nothing to keep a share of)."""
    if reference <= 0:
        return None
    best = None
    for length in sorted(rates):
        if rates[length] >= keep * reference - 1e-12:
            best = length
        else:
            break
    return best


@dataclass(frozen=True)
class Span:
    """A point estimate with its 95 % interval (None: undefined in the data or the draw)."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Curve:
    position: str
    method: str
    items: int
    rates: dict[int, Span]
    own: Span  # effective length against the method's own length-0 rate
    vs_none: Span  # against none's length-0 rate


def _percentiles(draws: list[float | None]) -> tuple[float | None, float | None]:
    """The 2.5th and 97.5th percentiles, None-aware: an undefined draw (None) counts as below
    every number, so an interval whose low end is None says "may be undefined"."""
    if not draws:
        return None, None
    order = sorted(draws, key=lambda d: (d is not None, d if d is not None else 0.0))
    n = len(order)
    return order[int(0.025 * n)], order[int(0.975 * n) - 1]


def curves(table: Table, resamples: int = RESAMPLES, seed: int = 0) -> list[Curve]:
    items = list(table.values)
    point, boot = table.resampled(resamples, seed)
    out = []
    for method in table.methods:
        rates = {}
        for n in table.lengths:
            lo, hi = _percentiles([b[(method, n)] for b in boot])
            rates[n] = Span(point[(method, n)], lo, hi)

        def lengths(
            means: dict[tuple[str, int], float], against: str, method: str = method
        ) -> int | None:
            curve = {n: means[(method, n)] for n in table.lengths}
            return effective(curve, means[(against, 0)])

        own = [lengths(b, method) for b in boot]
        vs = [lengths(b, "none") for b in boot] if "none" in table.methods else []
        o_point = lengths(point, method)
        v_point = lengths(point, "none") if "none" in table.methods else None
        own_lo, own_hi = _percentiles([None if x is None else float(x) for x in own])
        vs_lo, vs_hi = _percentiles([None if x is None else float(x) for x in vs])
        out.append(
            Curve(
                table.position,
                method,
                len(items),
                rates,
                Span(None if o_point is None else float(o_point), own_lo, own_hi),
                Span(None if v_point is None else float(v_point), vs_lo, vs_hi),
            )
        )
    return out


@dataclass(frozen=True)
class Recovery:
    position: str
    length: int
    items: int
    damage: Span  # none at 0 − none at length (margin, nats)
    recovery: dict[str, Span]  # method → share of the damage undone (value None: not given)


def recoveries(table: Table, resamples: int = RESAMPLES, seed: int = 0) -> list[Recovery]:
    """Margin recovery per length above 0 (``table`` of margins)."""
    if "none" not in table.methods:
        return []
    items = list(table.values)
    point, boot = table.resampled(resamples, seed)
    out = []
    for n in table.lengths[1:]:

        def damage(means: dict[tuple[str, int], float], n: int = n) -> float:
            return means[("none", 0)] - means[("none", n)]

        d_draws = [damage(b) for b in boot]
        d_lo, d_hi = _percentiles([float(x) for x in d_draws])
        hurt = Span(damage(point), d_lo, d_hi)
        shares = {}
        for method in table.methods[1:]:
            if d_lo is None or d_lo <= 0:  # no damage told apart from none: no ratio
                shares[method] = Span(None, None, None)
                continue
            ratios: list[float | None] = []
            for b, d in zip(boot, d_draws, strict=True):
                ratios.append((b[(method, n)] - b[("none", n)]) / d if d > 0 else None)
            lo, hi = _percentiles(ratios)
            shares[method] = Span((point[(method, n)] - point[("none", n)]) / damage(point), lo, hi)
        out.append(Recovery(table.position, n, len(items), hurt, shares))
    return out


def _num(x: float | None, digits: int) -> str:
    return "undefined" if x is None else f"{x:.{digits}f}"


def _length(s: Span) -> str:
    if s.value is None:
        return "n/a"
    lo = "n/a" if s.low is None else f"{s.low:.0f}"
    hi = "n/a" if s.high is None else f"{s.high:.0f}"
    return f"{s.value:.0f} [{lo}, {hi}]"


def markdown(records: Sequence[dict[str, Any]]) -> list[str]:
    """The headline sections: effective length per position and method (sampled ``both``, else
    greedy ``both``), and margin recovery per position, method and length."""
    lines: list[str] = []
    sampled = any(r.get("sampled") for r in records)
    name = "sampled" if sampled else "greedy"
    rate_tables = tables(records, name)
    if rate_tables:
        what = "sampled `both` (fraction of k answers passing)" if sampled else "greedy `both`"
        lines += [
            "",
            "## Effective length, per rule position (the headline)",
            "",
            f"Measure: {what}. *own*: the longest length keeping {KEEP:.0%} of the method's "
            f"own length-0 rate; *vs none*: keeping {KEEP:.0%} of `none`'s length-0 rate. "
            "Rates with 95 % item-bootstrap intervals; items: those measured at every length "
            "under every method.",
            "",
        ]
        for t in rate_tables:
            header = " | ".join(str(n) for n in t.lengths)
            lines += [
                f"Rule **{t.position}** the distractor ({len(t.values)} items):",
                "",
                f"| method | {header} | own | vs none |",
                "|---|" + "---|" * len(t.lengths) + "---:|---:|",
            ]
            for c in curves(t):
                cells = " | ".join(
                    f"{_num(s.value, 2)} [{_num(s.low, 2)}, {_num(s.high, 2)}]"
                    for s in c.rates.values()
                )
                lines.append(f"| {c.method} | {cells} | {_length(c.own)} | {_length(c.vs_none)} |")
            lines.append("")
    margin_tables = tables(records, "margin")
    if margin_tables and any("none" in t.methods and len(t.methods) > 1 for t in margin_tables):
        lines += [
            "## Margin recovery, per rule position",
            "",
            "Damage: `none`'s margin at length 0 minus at the length (nats; how much the "
            "distractor takes). Recovery: (method − `none`) / damage on the same prompts, the "
            "share of the damage undone (1.00 = all of it), 95 % item-bootstrap intervals. "
            "Where the damage's interval reaches 0 there is nothing told apart to undo and no "
            "ratio is given (–).",
            "",
        ]
        for t in margin_tables:
            rec = recoveries(t)
            if not rec:
                continue
            header = " | ".join(str(r.length) for r in rec)
            lines += [
                f"Rule **{t.position}** the distractor ({len(t.values)} items):",
                "",
                f"| | {header} |",
                "|---|" + "---|" * len(rec),
                "| damage (nats) | "
                + " | ".join(
                    f"{r.damage.value:+.2f} [{_num(r.damage.low, 2)}, {_num(r.damage.high, 2)}]"
                    for r in rec
                )
                + " |",
            ]
            for method in t.methods[1:]:
                shares = []
                for r in rec:
                    s = r.recovery[method]
                    shares.append(
                        "–" if s.value is None else f"{s.value:.0%} [{_pct(s.low)}, {_pct(s.high)}]"
                    )
                lines.append(f"| {method} | " + " | ".join(shares) + " |")
            lines.append("")
    return lines


def _pct(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.0%}"
