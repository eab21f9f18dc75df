"""A run's plots: each measure against distractor length, one line per method (all kinds
pooled, then each kind), as PNG and SVG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .metrics import MEASURE_TITLES, estimates, table
from .report import margins_by, ordered_methods


def plots(records: Sequence[dict[str, Any]], out_dir: str | Path, title: str = "") -> list[Path]:
    """Score vs distractor length per method (Wilson bands), for each metric: all kinds pooled,
    then each distractor kind; PNG and SVG. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    kinds = sorted({r["kind"] for r in records})
    if len(kinds) > 1:
        kinds = ["all kinds", *kinds]  # the pooled view first: per kind, n is small
    for metric in ("strict", "quality", "both"):
        fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
        for ax, kind in zip(axes[0], kinds, strict=True):
            subset = [r for r in records if kind in ("all kinds", r["kind"])]
            by = table(subset, ("method", "length"))
            order = ordered_methods({m for m, _ in by})
            for i, method in enumerate(order):
                points = sorted((length, c[metric]) for (m, length), c in by.items() if m == method)
                xs = _dodge([p[0] for p in points], i, len(order), subset)
                label = f"{method} ({_per_point([p[1].n for p in points])})"
                ax.plot(xs, [p[1].rate for p in points], label=label, **_line(i))
                ax.fill_between(
                    xs, [p[1].low for p in points], [p[1].high for p in points], alpha=0.15
                )
            ax.set_title(f"{kind}: {metric}")
            ax.set_xlabel("distractor tokens")
            ax.set_ylabel("rate (95 % Wilson)")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        if title:
            fig.suptitle(title)
        written += _save(fig, out, f"{metric}-vs-length")
    written += _measures_figure(records, out, title)
    written += _effective_figure(records, out, title)
    groups = margins_by(records)
    if groups:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        order = ordered_methods({m for m, _ in groups})
        for i, method in enumerate(order):
            at = sorted(length for m, length in groups if m == method)
            means = [sum(groups[(method, x)]) / len(groups[(method, x)]) for x in at]
            label = f"{method} ({_per_point([len(groups[(method, x)]) for x in at])})"
            ax.plot(_dodge(at, i, len(order), records), means, label=label, **_line(i))
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("distractor tokens")
        ax.set_ylabel("mean margin (nats)")
        ax.set_title("log p(compliant) − log p(violating)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        written += _save(fig, out, "margin-vs-length")
    return written


def _measures_figure(records: Sequence[dict[str, Any]], out: Path, title: str) -> list[Path]:
    """The three measures against distractor length, per method, side by side (95 % intervals:
    Wilson for the greedy rate, item-clustered bootstrap for the others)."""
    import matplotlib.pyplot as plt

    names = ("greedy", "sampled", "margin")
    panels = [name for name in names if estimates(records, ("method",), name)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, name in zip(axes[0], panels, strict=True):
        by = estimates(records, ("method", "length"), name)
        order = ordered_methods({m for m, _ in by})
        for i, method in enumerate(order):
            points = sorted((length, e) for (m, length), e in by.items() if m == method)
            xs = _dodge([x for x, _ in points], i, len(order), records)
            label = f"{method} ({_per_point([e.n for _, e in points])})"
            ax.plot(xs, [e.mean for _, e in points], label=label, **_line(i))
            ax.fill_between(xs, [e.low for _, e in points], [e.high for _, e in points], alpha=0.15)
        if name == "margin":
            ax.axhline(0, color="grey", linewidth=0.8)
        else:
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(MEASURE_TITLES[name], fontsize=9)
        ax.set_xlabel("distractor tokens")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, out, "measures-vs-length")


def _effective_figure(records: Sequence[dict[str, Any]], out: Path, title: str) -> list[Path]:
    """The headline's curves: the sampled ``both`` rate (greedy where nothing was sampled) and
    the margin against distractor length on a log axis, one column per rule position, with
    95 % item-bootstrap bands (evals.effective; the items measured at every cell)."""
    import matplotlib.pyplot as plt

    from .effective import POSITIONS, curves, tables

    name = "sampled" if any(r.get("sampled") for r in records) else "greedy"
    rows = [(f"{name} both", tables(records, name)), ("margin (nats)", tables(records, "margin"))]
    rows = [(label, ts) for label, ts in rows if ts]
    positions = sorted(
        {t.position for _, ts in rows for t in ts}, key=lambda p: (*POSITIONS, p).index(p)
    )
    if not rows or not any(len(t.lengths) > 1 for _, ts in rows for t in ts):
        return []
    fig, axes = plt.subplots(
        len(rows), len(positions), figsize=(5 * len(positions), 3.4 * len(rows)), squeeze=False
    )
    for r, (label, ts) in enumerate(rows):
        for c, position in enumerate(positions):
            ax = axes[r][c]
            t = next((t for t in ts if t.position == position), None)
            if t is None:
                ax.set_visible(False)
                continue
            for i, curve in enumerate(curves(t)):
                xs = list(curve.rates)
                ys = [s.value for s in curve.rates.values()]
                ax.plot(xs, ys, label=f"{curve.method}", **_line(i))
                lows = [s.low if s.low is not None else float("nan") for s in curve.rates.values()]
                highs = [
                    s.high if s.high is not None else float("nan") for s in curve.rates.values()
                ]
                ax.fill_between(xs, lows, highs, alpha=0.1)
            ax.set_xscale("symlog", linthresh=max(1, min(n for n in t.lengths if n) // 2))
            ax.set_title(f"rule {position} the distractor: {label} ({len(t.values)} items)",
                         fontsize=9)  # fmt: skip
            ax.set_xlabel("distractor tokens (log scale)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, out, "effective-vs-length")


def _per_point(ns: Sequence[int]) -> str:
    """What a legend's count means: prompts behind each point, as the tables count them."""
    low, high = min(ns, default=0), max(ns, default=0)
    return f"{low} prompts per point" if low == high else f"{low}–{high} prompts per point"


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")
DASHES = ("-", "--", "-.", ":")


def _line(i: int) -> dict[str, Any]:
    """Method ``i``'s line style: a marker and a dash pattern of its own, so a line lying
    exactly on another's stays visible."""
    return {"marker": MARKERS[i % len(MARKERS)], "linestyle": DASHES[i % len(DASHES)],
            "markersize": 5, "alpha": 0.9}  # fmt: skip


def _dodge(xs: Sequence[float], i: int, n: int, records: Sequence[dict[str, Any]]) -> list[float]:
    """``xs`` shifted a little sideways for method ``i`` of ``n`` (1.2 % of the longest length
    per method), so equal values at one length do not hide each other."""
    span = max((float(r["length"]) for r in records), default=0.0) or 1.0
    step = 0.012 * span
    return [x + (i - (n - 1) / 2) * step for x in xs]


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [out / f"{stem}.{suffix}" for suffix in ("png", "svg")]
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths
