"""A run's summary as Markdown: rates by method and length with Wilson intervals, paired
differences against ``none``, and effective lengths."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .metrics import METRICS, effective_length, paired, table


def ordered_methods(methods: set[str]) -> list[str]:
    """``none`` first, then the rest by name."""
    return sorted(methods, key=lambda m: (m != "none", m))


def complete(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the prompts every method of the run answered: rates then compare methods on the same
    prompts (a run stopped mid-way, or methods run in phases, leaves some prompts short)."""
    methods = {r["method"] for r in records}
    seen: dict[str, set[str]] = {}
    for r in records:
        seen.setdefault(r["prompt_hash"], set()).add(r["method"])
    return [r for r in records if seen[r["prompt_hash"]] == methods]


def margins_by(records: Sequence[dict[str, Any]]) -> dict[tuple[str, int], list[float]]:
    """The margins recorded, grouped by (method, length)."""
    groups: dict[tuple[str, int], list[float]] = {}
    for r in records:
        if r.get("margin") is not None:
            groups.setdefault((r["method"], r["length"]), []).append(float(r["margin"]))
    return dict(sorted(groups.items()))


def markdown(run: str, records: Sequence[dict[str, Any]]) -> str:
    if not records:
        return f"# Run {run}\n\nNo records.\n"
    methods = ordered_methods({r["method"] for r in records})
    lines = [f"# Run {run}", "", f"{len(records)} samples; model {records[0]['model']}.", ""]
    lines += ["## Rates (95 % Wilson intervals)", ""]
    lines += [
        "| method | length | n | " + " | ".join(METRICS) + " |",
        "|---|---:|---:|" + "---|" * len(METRICS),
    ]
    for (method, length), cells in table(records, ("method", "length")).items():
        row = " | ".join(f"{c.rate:.2f} [{c.low:.2f}, {c.high:.2f}]" for c in cells.values())
        lines.append(f"| {method} | {length} | {cells['strict'].n} | {row} |")
    if "none" in methods and len(methods) > 1:
        lines += [
            "",
            "## Against `none` on the same prompts (item-clustered bootstrap, McNemar)",
            "",
        ]
        lines += [
            "| method | length | metric | pairs | difference [95 % CI] | p |",
            "|---|---:|---|---:|---|---:|",
        ]
        lengths = sorted({r["length"] for r in records})
        for method in methods[1:]:
            for length in lengths:  # per length: the question is how each holds up as it grows
                at = [r for r in records if r["length"] == length]
                for metric in ("strict", "quality", "both"):
                    p = paired(at, method, metric)
                    if p.n:
                        lines.append(
                            f"| {method} | {length} | {metric} | {p.n} | {p.diff:+.2f} "
                            f"[{p.low:+.2f}, {p.high:+.2f}] | {p.p_mcnemar:.3f} |"
                        )
    lines += [
        "",
        "## Effective length (longest length keeping 90 % of the length-0 `both` rate)",
        "",
    ]
    by = table(records, ("method", "length"))
    for method in methods:
        rates = {length: c["both"].rate for (m, length), c in by.items() if m == method}
        lines.append(f"- {method}: {effective_length(rates)}")
    return "\n".join(lines) + "\n"


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
            for method in ordered_methods({m for m, _ in by}):
                points = sorted((length, c[metric]) for (m, length), c in by.items() if m == method)
                xs = [p[0] for p in points]
                ax.plot(xs, [p[1].rate for p in points], marker="o", label=method)
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
    groups = margins_by(records)
    if groups:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        for method in ordered_methods({m for m, _ in groups}):
            xs = sorted(length for m, length in groups if m == method)
            means = [sum(groups[(method, x)]) / len(groups[(method, x)]) for x in xs]
            ax.plot(xs, means, marker="o", label=method)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("distractor tokens")
        ax.set_ylabel("mean margin (nats)")
        ax.set_title("log p(compliant) − log p(violating)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        written += _save(fig, out, "margin-vs-length")
    return written


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    paths = [out / f"{stem}.{suffix}" for suffix in ("png", "svg")]
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths
