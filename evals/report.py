"""A run's summary as Markdown: rates by method and length with Wilson intervals, paired
differences against ``none``, and effective lengths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .metrics import METRICS, effective_length, paired, table


def markdown(run: str, records: Sequence[dict[str, Any]]) -> str:
    if not records:
        return f"# Run {run}\n\nNo records.\n"
    methods = sorted({r["method"] for r in records}, key=lambda m: (m != "none", m))
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
            "| method | metric | pairs | difference [95 % CI] | p |",
            "|---|---|---:|---|---:|",
        ]
        for method in methods[1:]:
            for metric in ("strict", "quality", "both"):
                p = paired(records, method, metric)
                lines.append(
                    f"| {method} | {metric} | {p.n} | {p.diff:+.2f} "
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
