"""A run's summary as Markdown: the three measures (greedy pass/fail, sampled pass fraction,
compliance margin) by method and length with intervals, paired differences against ``none``
for each, the headline (effective length and margin recovery per rule position,
evals.effective), and per-family floors; and the plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .effective import markdown as effective_markdown
from .metrics import (
    METRICS,
    Estimate,
    estimates,
    paired,
    paired_measure,
    table,
)


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
    lines += grid_lines(records, methods)
    lines += effective_markdown(records)
    lines += ["", "## Rates (95 % Wilson intervals)", ""]
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
    lines += _sampled_and_margin(records, methods)
    lines += by_position(records, methods)
    lines += head_to_head(records, methods)
    lines += floors(records)
    lines += injection(records)
    return "\n".join(lines) + "\n"


def by_position(records: Sequence[dict[str, Any]], methods: list[str]) -> list[str]:
    """Each method against ``none`` split by where the rule sat (before or after the distractor),
    per length: greedy quality (McNemar) and the sampled ``both`` fraction (sign-flip over
    items). At length 2,048 the rule is next to the question when it comes after the distractor,
    as it is at length 0 either way, so this separates what the rule's distance does from what
    the prompt's length does. Only where a run has both positions."""
    positions = [p for p in ("before", "after") if any(r.get("position") == p for r in records)]
    if len(positions) < 2 or "none" not in methods or len(methods) < 2:
        return []
    sampled = any(r.get("sampled") for r in records)
    lines = [
        "",
        "## By rule position (before or after the distractor), each method against `none` "
        "on the same prompts (item-clustered bootstrap; p: McNemar for greedy, sign-flip for "
        "sampled)",
        "",
        "| method | length | position | measure | pairs | difference [95 % CI] | p |",
        "|---|---:|---|---|---:|---|---:|",
    ]
    lengths = sorted({r["length"] for r in records})
    for method in methods[1:]:
        for length in lengths:
            for position in positions:
                at = [r for r in records if r["length"] == length and r["position"] == position]
                g = paired(at, method, "quality")
                if g.n:
                    lines.append(
                        f"| {method} | {length} | {position} | greedy quality | {g.n} | "
                        f"{g.diff:+.2f} [{g.low:+.2f}, {g.high:+.2f}] | {g.p_mcnemar:.3f} |"
                    )
                d = paired_measure(at, method, "sampled", "both") if sampled else None
                if d is not None and d.n:
                    lines.append(
                        f"| {method} | {length} | {position} | sampled both | {d.n} | "
                        f"{d.diff:+.2f} [{d.low:+.2f}, {d.high:+.2f}] | {d.p:.3f} |"
                    )
    return lines


def head_to_head(records: Sequence[dict[str, Any]], methods: list[str]) -> list[str]:
    """Per length, the method with the largest sampled ``both`` gain over ``none`` against each
    other method on the same prompts: which method is best, and by how much (item-clustered
    bootstrap, sign-flip p). Only where the run has sampled answers and three or more methods."""
    if not any(r.get("sampled") for r in records) or "none" not in methods or len(methods) < 3:
        return []
    lines = [
        "",
        "## Head to head: the best method at each length (largest sampled `both` gain over "
        "`none`) against every other method, same prompts (item-clustered bootstrap; sign-flip p)",
        "",
        "| length | best | gain over none | against | prompts | difference [95 % CI] | p |",
        "|---:|---|---|---|---:|---|---:|",
    ]
    for length in sorted({r["length"] for r in records}):
        at = [r for r in records if r["length"] == length]
        gains = {m: paired_measure(at, m, "sampled", "both") for m in methods[1:]}
        gains = {m: g for m, g in gains.items() if g.n}
        if not gains:
            continue
        best = max(gains, key=lambda m: (gains[m].diff, m))  # ties: the later name, stably
        g = gains[best]
        gain = f"{g.diff:+.2f} [{g.low:+.2f}, {g.high:+.2f}]"
        for other in methods[1:]:
            if other == best:
                continue
            d = paired_measure(at, best, "sampled", "both", against=other)
            if d.n:
                lines.append(
                    f"| {length} | {best} | {gain} | {other} | {d.n} | {d.diff:+.2f} "
                    f"[{d.low:+.2f}, {d.high:+.2f}] | {d.p:.3f} |"
                )
    return lines


def injection(records: Sequence[dict[str, Any]]) -> list[str]:
    """Position ``user`` (evals.prompts): how often the system's rule held against rules typed
    into an untrusted user message (kind ``conflicting``), next to the same position without
    them (any other kind, the control); and each rendering against its ``@raw`` form (no
    defusing) on the same prompts. Keeping the rule is what is scored; breaking it where the
    injected text asks for the opposite is the measurable trace of obeying the injection."""
    at = [r for r in records if r.get("position") == "user"]
    if not at:
        return []
    methods = ordered_methods({r["method"] for r in at})
    lines = [
        "",
        "## Injected rules (position `user`: the rule in the system message; the distractor in "
        "an untrusted user message, with `<rule>`-typed counter-instructions where the kind is "
        "`conflicting`)",
        "",
        "| method | kind | length | n | rule kept (strict) [95 % Wilson] |",
        "|---|---|---:|---:|---|",
    ]
    for (method, kind, length), cells in table(at, ("method", "kind", "length")).items():
        c = cells["strict"]
        lines.append(
            f"| {method} | {kind} | {length} | {c.n} | {c.rate:.2f} [{c.low:.2f}, {c.high:.2f}] |"
        )
    raw = [(m, m.removesuffix("@raw")) for m in methods if m.endswith("@raw")]
    pairs = [(safe, unsafe) for unsafe, safe in raw if safe in methods]
    if pairs:
        lines += [
            "",
            "Defused against `@raw` (the same rendering, typed markers left as they are), same "
            "prompts, rule kept (strict); item-clustered bootstrap, McNemar:",
            "",
            "| method | against | kind | length | pairs | difference [95 % CI] | p |",
            "|---|---|---|---:|---:|---|---:|",
        ]
        for safe, unsafe in pairs:
            for kind in sorted({r["kind"] for r in at}):
                for length in sorted({r["length"] for r in at}):
                    cell = [r for r in at if r["kind"] == kind and r["length"] == length]
                    p = paired(cell, safe, "strict", against=unsafe)
                    if p.n:
                        lines.append(
                            f"| {safe} | {unsafe} | {kind} | {length} | {p.n} | {p.diff:+.2f} "
                            f"[{p.low:+.2f}, {p.high:+.2f}] | {p.p_mcnemar:.3f} |"
                        )
    return lines


def grid_lines(records: Sequence[dict[str, Any]], methods: list[str]) -> list[str]:
    """What the run covered, read from its records (so a report of a records file states it
    too): the cells and the generation settings."""

    def values(field: str) -> str:
        found = sorted({r[field] for r in records if r.get(field) is not None}, key=str)
        return ", ".join(str(v) for v in found) or "–"

    items = len({r["item"] for r in records if "item" in r})
    sampled = next((r["sampled"] for r in records if r.get("sampled")), None)
    measures = ["greedy"]
    if sampled:
        measures.append(f"sampled (k = {sampled['k']}, T = {sampled['temperature']:g})")
    if any(r.get("margin") is not None for r in records):
        measures.append("margin")
    lengths = ", ".join(str(v) for v in sorted({int(r["length"]) for r in records}))
    budget = values("max_new_tokens")  # recorded since 2026-11-24
    return [
        f"Grid: {items} items of the {values('split')} split; methods {', '.join(methods)}; "
        f"lengths {lengths}; kinds {values('kind')}; positions {values('position')}; "
        + (f"max new tokens {budget}; " if budget != "–" else "")
        + f"seed {values('seed')}; measures {', '.join(measures)}."
    ]


def _fmt(e: Estimate, digits: int = 2) -> str:
    """A mean with its interval; a mean over one item has none (its bootstrap cannot vary)."""
    if e.items < 2:
        return f"{e.mean:.{digits}f} (1 item: no interval)"
    return f"{e.mean:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def _sampled_and_margin(records: Sequence[dict[str, Any]], methods: list[str]) -> list[str]:
    lines: list[str] = []
    sampled = estimates(records, ("method", "length"), "sampled")
    if sampled:
        k = next(r["sampled"]["k"] for r in records if r.get("sampled"))
        temperature = next(r["sampled"]["temperature"] for r in records if r.get("sampled"))
        lines += [
            "",
            f"## Sampled pass fraction (k = {k} answers per prompt at temperature "
            f"{temperature:g}; mean of per-prompt fractions, item-clustered 95 % bootstrap)",
            "",
            "| method | length | prompts | strict | quality | both |",
            "|---|---:|---:|---|---|---|",
        ]
        by_metric = {m: estimates(records, ("method", "length"), "sampled", m) for m in METRICS}
        for key, e in sampled.items():
            cells = " | ".join(_fmt(by_metric[m][key]) for m in ("strict", "quality", "both"))
            lines.append(f"| {key[0]} | {key[1]} | {e.n} | {cells} |")
    margins = estimates(records, ("method", "length"), "margin")
    if margins:
        per_token = estimates(records, ("method", "length"), "margin_per_token")
        choice = estimates(records, ("method", "length"), "choice")
        lines += [
            "",
            "## Compliance margin log p(compliant) − log p(violating) (nats; item-clustered "
            "95 % bootstrap; choice = mean σ(margin))",
            "",
            "| method | length | prompts | total | per token | choice |",
            "|---|---:|---:|---|---|---|",
        ]
        for key, e in margins.items():
            lines.append(
                f"| {key[0]} | {key[1]} | {e.n} | {_fmt(e)} | {_fmt(per_token[key], 3)} "
                f"| {_fmt(choice[key])} |"
            )
    measured = [
        (name, metric)
        for name, metric, present in (
            ("sampled", "both", bool(sampled)),
            ("sampled", "strict", bool(sampled)),
            ("margin", "both", bool(margins)),
            ("margin_per_token", "both", bool(margins)),
        )
        if present
    ]
    if measured and "none" in methods and len(methods) > 1:
        lines += [
            "",
            "## Against `none` on the same prompts: sampled fraction and margin (item-clustered "
            "bootstrap; p from a sign-flip test over items)",
            "",
            "| method | length | measure | prompts | difference [95 % CI] | p |",
            "|---|---:|---|---:|---|---:|",
        ]
        lengths = sorted({r["length"] for r in records})
        for method in methods[1:]:
            for length in lengths:
                at = [r for r in records if r["length"] == length]
                for name, metric in measured:
                    d = paired_measure(at, method, name, metric)
                    if d.n:
                        label = name if name.startswith("margin") else f"{name} {metric}"
                        lines.append(
                            f"| {method} | {length} | {label} | {d.n} | {d.diff:+.2f} "
                            f"[{d.low:+.2f}, {d.high:+.2f}] | {d.p:.3f} |"
                        )
    return lines


def floors(records: Sequence[dict[str, Any]]) -> list[str]:
    """Each family's length-0 values under ``none``: which rules the model follows at all."""
    base = [r for r in records if r["method"] == "none" and r["length"] == 0]
    if not base:
        return []
    greedy = estimates(base, ("family",), "greedy")
    sampled = estimates(base, ("family",), "sampled")
    margin = estimates(base, ("family",), "margin")
    lines = [
        "",
        "## Per-family floors (length 0, method `none`)",
        "",
        "| family | prompts | greedy both | sampled both | margin |",
        "|---|---:|---|---|---|",
    ]
    for (family,), e in greedy.items():
        s = sampled.get((family,))
        m = margin.get((family,))
        lines.append(
            f"| {family} | {e.n} | {_fmt(e)} | {'–' if s is None else _fmt(s)} "
            f"| {'–' if m is None else _fmt(m)} |"
        )
    return lines


def headline_families(records: Sequence[dict[str, Any]], floor: float = 0.3) -> list[str]:
    """The families whose sampled length-0 ``both`` under ``none`` is at least ``floor``."""
    base = [r for r in records if r["method"] == "none" and r["length"] == 0]
    sampled = estimates(base, ("family",), "sampled")
    return sorted(family for (family,), e in sampled.items() if e.mean >= floor)
