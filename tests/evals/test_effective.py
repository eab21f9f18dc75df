"""Effective length and margin recovery, per rule position (evals.effective), on records whose
answers are known by construction."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

from salience.evals.effective import curves, markdown, recoveries, tables

ROOT = Path(__file__).resolve().parents[2]


def record(
    item: str, method: str, length: int, position: str, margin: float, both: float
) -> dict[str, Any]:
    return {
        "item": item,
        "method": method,
        "length": length,
        "position": position,
        "prompt_hash": f"{item}|{length}|{position}",
        "margin": margin,
        "sampled": {
            "both": both,
            "strict": both,
            "quality": 1.0,
            "loose": both,
            "k": 4,
            "temperature": 0.7,
        },
    }


def study(items: int = 30, seed: int = 0) -> list[dict[str, Any]]:
    """Rule before: the distractor takes 4 nats from none at 1024 and 8 at 4096; `full` gives
    all of it back, `half` half of it. Rule after: nothing is taken (noise only)."""
    rng = random.Random(seed)
    out = []
    for i in range(items):
        item = f"i{i:02d}"
        position = "before" if i % 2 == 0 else "after"
        base = 2 + rng.gauss(0, 1)
        for method in ("none", "half", "full"):
            out.append(record(item, method, 0, position, base, 0.8))
            for length, loss in ((1024, 4.0), (4096, 8.0)):
                taken = loss if position == "before" else 0.0
                kept = {"none": 0.0, "half": 0.5, "full": 1.0}[method]
                noise = rng.gauss(0, 0.1) if position == "before" else 0.0
                margin = base - taken * (1 - kept) + noise
                rate = (
                    0.8 if (position == "after" or method == "full") else 0.8 - 0.1 * length / 1024
                )
                out.append(record(item, method, length, position, margin, rate))
    return out


def test_recovery_is_the_share_of_the_damage_undone_per_position() -> None:
    by_position = {t.position: t for t in tables(study(), "margin")}
    assert set(by_position) == {"before", "after"}  # never pooled
    before = {r.length: r for r in recoveries(by_position["before"])}
    assert before[1024].items == 15
    assert abs(before[1024].damage.value - 4.0) < 0.2  # type: ignore[operator]
    assert abs(before[4096].damage.value - 8.0) < 0.2  # type: ignore[operator]
    for r in before.values():
        full, half = r.recovery["full"], r.recovery["half"]
        assert full.value is not None and abs(full.value - 1.0) < 0.05
        assert half.value is not None and abs(half.value - 0.5) < 0.05
        assert (
            full.low is not None and full.high is not None and full.low <= 1.0 <= full.high + 0.05
        )
    after = recoveries(by_position["after"])
    # nothing taken (the margins at every length are the length-0 ones): the damage's interval
    # reaches 0, and no ratio is given
    assert all(r.recovery["full"].value is None for r in after)
    assert all(r.damage.low is not None and r.damage.low <= 0 for r in after)


def test_effective_length_against_own_and_none() -> None:
    before = next(t for t in tables(study(), "sampled") if t.position == "before")
    got = {c.method: c for c in curves(before)}
    assert got["full"].own.value == 4096 and got["full"].vs_none.value == 4096
    # none and half fall to 0.7 at 1024 (>= 0.9 × 0.8 = 0.72? no: 0.7 < 0.72), so 0
    assert got["none"].own.value == 0 and got["half"].own.value == 0
    assert got["none"].rates[4096].value is not None
    assert abs(got["none"].rates[4096].value - 0.4) < 1e-9


def test_items_missing_a_cell_are_left_out() -> None:
    gone = ("i00", "half", 4096)
    records = [r for r in study() if (r["item"], r["method"], r["length"]) != gone]
    before = next(t for t in tables(records, "margin") if t.position == "before")
    assert "i00" not in before.values and len(before.values) == 14


def test_the_committed_distance_study_reads_as_the_issue_reported() -> None:
    """The numbers that opened issue 35, from the committed records: the rule before a 2k
    distractor costs `none` 4.1 nats, and share gives back 9 % of it, echo 68 %."""
    path = ROOT / "docs/eval/distance/records.jsonl.gz"
    with gzip.open(path, "rt") as f:
        records = [json.loads(line) for line in f]
    text = "\n".join(markdown(records))
    assert "| damage (nats) | +4.12 [" in text
    assert "| share | 9% [" in text and "| echo | 68% [" in text
    before, after = text.split("Rule **after** the distractor (41 items):")
    assert "Rule **before** the distractor (39 items):" in before
    assert "| share | – |" in after  # no damage to undo with the rule next to the question
