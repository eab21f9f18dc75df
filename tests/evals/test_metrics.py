"""Metrics: Wilson intervals, McNemar, paired bootstrap, effective length."""

from __future__ import annotations

import random

import pytest

from salience.evals.effective import effective
from salience.evals.metrics import cell, mcnemar, paired, paired_measure, wilson


def test_wilson_matches_known_values() -> None:
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)


def test_mcnemar_exact() -> None:
    assert mcnemar([1] * 10) == pytest.approx(2 / 2**10)
    assert mcnemar([1, -1, 0, 0]) == 1.0
    assert mcnemar([0, 0]) == 1.0


def record(item: str, phash: str, method: str, strict: bool, q: bool = True) -> dict[str, object]:
    return {
        "item": item,
        "prompt_hash": phash,
        "method": method,
        "strict": strict,
        "loose": strict,
        "quality": q,
    }


def test_paired_difference_uses_the_same_prompts() -> None:
    records = []
    for i in range(20):
        records.append(record(f"i{i}", f"p{i}", "none", strict=False))
        records.append(record(f"i{i}", f"p{i}", "uniform", strict=i < 15))
    records.append(record("lonely", "px", "uniform", strict=True))  # no `none` pair: ignored
    p = paired(records, "uniform", "strict")
    assert p.n == 20 and p.diff == pytest.approx(0.75)
    assert 0.5 < p.low <= 0.75 <= p.high <= 0.95
    assert p.p_mcnemar < 0.001
    assert cell(records, "both").n == 41


def test_effective_length() -> None:
    assert effective({0: 0.8, 256: 0.75, 512: 0.70, 1024: 0.5}, 0.8) == 256
    assert effective({0: 0.8, 256: 0.3, 512: 0.8}, 0.8) == 0  # every shorter length must hold
    assert effective({0: 0.0, 256: 0.0}, 0.0) is None  # nothing to keep a share of
    # against a higher reference (none's length-0 rate) even length 0 may fall short
    assert effective({0: 0.5, 256: 0.5}, 0.8) is None
    assert effective({0: 0.75, 256: 0.72, 512: 0.5}, 0.8) == 256


def test_the_injection_section_compares_each_rendering_with_its_raw_form() -> None:
    from salience.evals.report import injection, markdown

    records = []
    for i in range(12):
        for kind in ("conflicting", "prose"):
            phash = f"{kind}{i}"
            for method, kept in (
                ("none", kind == "prose" or i < 3),
                ("xml", kind == "prose" or i < 9),
                ("xml@raw", kind == "prose" or i < 4),
            ):
                r = record(f"i{i}", phash, method, strict=kept)
                r |= {"kind": kind, "length": 512, "position": "user", "model": "m", "split": "t"}
                records.append(r)
    lines = injection(records)
    row = next(line for line in lines if line.startswith("| xml | xml@raw | conflicting |"))
    assert "| 12 | +0.42 [" in row  # 9 kept defused − 4 kept raw, of 12
    assert any(line.startswith("| xml | xml@raw | prose | 512 | 12 | +0.00 [") for line in lines)
    assert any(line.startswith("| xml@raw | conflicting | 512 | 12 | 0.33 [") for line in lines)
    assert "## Injected rules" in markdown("run", records)
    assert injection([{**r, "position": "before"} for r in records]) == []


def test_intervals_depend_on_the_pairs_alone_not_the_order_or_other_methods() -> None:
    """A study's file grows as methods are added in phases; the figures already published for
    the methods it held must not move when the file is re-sorted or another method joins."""
    rng = random.Random(7)
    records = []
    for i in range(40):
        records.append(record(f"i{i}", f"p{i}", "none", strict=rng.random() < 0.3))
        records.append(record(f"i{i}", f"p{i}", "uniform", strict=rng.random() < 0.5))
        records[-1]["margin"], records[-2]["margin"] = rng.gauss(1, 1), rng.gauss(0, 1)
    shuffled = records[:]
    rng.shuffle(shuffled)
    joined = shuffled + [{**r, "method": "echo"} for r in records if r["method"] == "none"]
    first, second, third = (paired(r, "uniform", "strict") for r in (records, shuffled, joined))
    assert first == second == third
    measured = [paired_measure(r, "uniform", "margin") for r in (records, shuffled, joined)]
    assert measured[0].low < measured[0].diff < measured[0].high
    assert measured[0] == measured[1] == measured[2]


def test_the_position_section_splits_each_difference_by_where_the_rule_sat() -> None:
    """Quality lost only where the rule is next to the question (length 0 either way, 2,048
    after): the section shows it cell by cell; a one-position run has no such section."""
    from salience.evals.report import by_position, markdown

    records = []
    for i in range(16):
        for length in (0, 2048):
            for position in ("before", "after"):
                near = length == 0 or position == "after"
                phash = f"{i}-{length}-{position}"
                for method, q, both in (("none", True, 0.0), ("x", not (near and i < 8), 0.25)):
                    r = record(f"i{i}", phash, method, strict=True, q=q)
                    r |= {
                        "length": length,
                        "position": position,
                        "model": "m",
                        "split": "t",
                        "family": "f",
                    }
                    s = {"both": both, "strict": 1.0, "loose": 1.0, "quality": 1.0}
                    r |= {"sampled": {"k": 4, "temperature": 0.7, **s}}
                    records.append(r)
    lines = by_position(records, ["none", "x"])
    cells = [(0, "before", "-0.50"), (0, "after", "-0.50"), (2048, "before", "+0.00")]
    for length, position, diff in [*cells, (2048, "after", "-0.50")]:
        row = f"| x | {length} | {position} | greedy quality | 16 | {diff} ["
        assert any(line.startswith(row) for line in lines), row
        row = f"| x | {length} | {position} | sampled both | 16 | +0.25 ["
        assert any(line.startswith(row) for line in lines), row
    assert "## By rule position" in markdown("run", records)
    assert by_position([r for r in records if r["position"] == "before"], ["none", "x"]) == []


def test_head_to_head_names_the_best_method_and_its_margin_over_each_other() -> None:
    """Three methods over `none`: `b` gains most (+0.5), `a` +0.25; the section names `b` and
    gives b − a = +0.25 on the same prompts; with a single method besides `none` there is no
    section."""
    from salience.evals.report import head_to_head

    records = []
    for i in range(16):
        for method, both in (("none", 0.0), ("a", 0.25), ("b", 0.5), ("c", 0.0)):
            r = record(f"i{i}", f"p{i}", method, strict=True)
            s = {"both": both, "strict": 1.0, "loose": 1.0, "quality": 1.0}
            r |= {"length": 512, "sampled": {"k": 4, "temperature": 0.7, **s}}
            records.append(r)
    lines = head_to_head(records, ["none", "a", "b", "c"])
    assert any(
        line.startswith("| 512 | b | +0.50 [+0.50, +0.50] | a | 16 | +0.25 [") for line in lines
    )
    assert any(
        line.startswith("| 512 | b | +0.50 [+0.50, +0.50] | c | 16 | +0.50 [") for line in lines
    )
    assert not any("| b | 16 |" in line for line in lines)  # never against itself
    only = [r for r in records if r["method"] in ("none", "a")]
    assert head_to_head(only, ["none", "a"]) == []


def test_a_cell_of_one_item_shows_its_count_and_no_interval() -> None:
    """A bootstrap over one item cannot vary: the floors table says so instead of printing a
    degenerate [x, x] interval; two items get a real one."""
    from salience.evals.report import floors

    def record(item: str, family: str, both: float) -> dict[str, object]:
        return {"item": item, "family": family, "method": "none", "length": 0, "strict": True,
                "quality": True, "sampled": {"both": both}, "prompt_hash": item}  # fmt: skip

    records = [record("a", "title", 0.5), record("b", "quoted", 0.25), record("c", "quoted", 0.75)]
    table = "\n".join(floors(records))
    assert "| title | 1 | 1.00 (1 item: no interval) | 0.50 (1 item: no interval) | – |" in table
    quoted = next(line for line in table.splitlines() if line.startswith("| quoted |"))
    assert "no interval" not in quoted and "0.50 [0.25, 0.75]" in quoted
