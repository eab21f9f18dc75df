"""The three measures: greedy pass/fail, sampled pass fraction, compliance margin — their
intervals, and the batched runner on the shipped model against the plain one."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from salience.evals.backends import LocalBackend, References, Unit
from salience.evals.grid import Grid
from salience.evals.metrics import clustered, measure, paired_measure
from salience.evals.runner import run
from salience.evals.store import Store


def records_for(items: int, seed: int) -> list[tuple[str, float]]:
    """Three prompts per item; an item's prompts share an item effect, so they cluster."""
    rng = random.Random(seed)
    out = []
    for i in range(items):
        effect = rng.gauss(0, 1)
        out += [(f"item{i}", effect + rng.gauss(0, 0.5)) for _ in range(3)]
    return out


def test_the_clustered_bootstrap_interval_narrows_as_items_grow() -> None:
    widths = []
    for items in (10, 40, 160):
        e = clustered(records_for(items, seed=items))
        assert e.low <= e.mean <= e.high and e.items == items and e.n == 3 * items
        widths.append(e.high - e.low)
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] > 2.5  # about √16 = 4 in theory


def test_the_clustered_interval_is_wider_than_one_that_ignores_clusters() -> None:
    pairs = records_for(30, seed=1)
    as_items = clustered(pairs)
    as_prompts = clustered([(f"p{i}", v) for i, (_, v) in enumerate(pairs)])
    assert as_items.mean == pytest.approx(as_prompts.mean)
    assert as_items.high - as_items.low > 1.2 * (as_prompts.high - as_prompts.low)


def test_paired_differences_flip_sign_with_the_method() -> None:
    records: list[dict[str, Any]] = []
    for i in range(20):
        for method, m in (("none", -1.0), ("uniform", 0.5 + 0.1 * i)):
            records.append({"item": f"i{i}", "prompt_hash": f"p{i}", "method": method,
                            "margin": m, "length": 0})  # fmt: skip
    up = paired_measure(records, "uniform", "margin")
    assert up.diff > 0 and up.low > 0 and up.p < 0.01
    for r in records:
        r["margin"] = -float(r["margin"])
    down = paired_measure(records, "uniform", "margin")
    assert down.diff == pytest.approx(-up.diff) and down.high < 0


def test_measure_reads_each_measure_and_none_where_absent() -> None:
    r: dict[str, Any] = {"strict": True, "quality": False, "margin": None}
    assert measure(r, "greedy", "strict") == 1.0 and measure(r, "greedy") == 0.0
    assert measure(r, "sampled") is None and measure(r, "margin") is None
    r["sampled"] = {"both": 0.25}
    r["margin"] = 0.0
    assert measure(r, "sampled") == 0.25 and measure(r, "choice") == 0.5


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    return LocalBackend()


def by_key(store: Store, name: str) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in store.records(name)}


def test_one_sample_at_temperature_zero_is_the_greedy_answer(
    backend: LocalBackend, tmp_path: Path
) -> None:
    grid = Grid(items=3, lengths=(0, 48), methods=("none", "uniform"), max_new_tokens=10,
                samples=1, temperature=0.0)  # fmt: skip
    store = Store(tmp_path / "t.sqlite3")
    assert run(grid, backend, store, "t").done == 12
    records = list(store.records("t"))
    assert len(records) == 12
    for r in records:
        (only,) = r["samples"]
        assert only["response"] == r["response"]
        for metric in ("strict", "loose", "quality"):
            assert r["sampled"][metric] == float(r[metric])
        assert r["sampled"]["both"] == float(r["strict"] and r["quality"])


def test_the_batched_runner_records_what_the_plain_runner_records(
    backend: LocalBackend, tmp_path: Path
) -> None:
    grid = Grid(items=2, lengths=(0, 64), positions=("before", "after"),
                methods=("none", "uniform", "spa", "xml"), max_new_tokens=8, samples=2,
                margin=True)  # fmt: skip
    plain, batched = Store(tmp_path / "p.sqlite3"), Store(tmp_path / "b.sqlite3")
    run(grid, backend, plain, "r", batch=1)
    stats = run(grid, backend, batched, "r", batch=16)
    assert stats.done == grid.size() - 2 * 4  # at length 0, the two positions coincide
    a, b = by_key(plain, "r"), by_key(batched, "r")
    assert a.keys() == b.keys()
    margins = 0
    for key, one in a.items():
        other = b[key]
        for field in ("response", "strict", "loose", "quality", "samples", "sampled"):
            assert one[field] == other[field], (field, one["method"])
        assert (one["margin"] is None) == (other["margin"] is None)
        if one["margin"] is not None:
            margins += 1
            assert one["margin"] == pytest.approx(other["margin"], abs=2e-3)
    assert margins >= len(a) // 2  # the references exist for most items: the margin is measured


def test_swapping_the_references_flips_the_margin(backend: LocalBackend) -> None:
    from salience.evals import prompts, split
    from salience.evals.distractors import make

    item = split.items("test", 1)[0]
    conv = prompts.conversation(item, make("prose", 64, backend.count, 0, "a", "b"), "before")
    refs = References(violating="Rome is the capital.", compliant="ROME IS THE CAPITAL.")
    back = References(violating=refs.compliant, compliant=refs.violating)
    units = [Unit(str(i), conv, "uniform", 4, 0, references=r) for i, r in enumerate((refs, back))]
    out = dict(backend.evaluate(units))
    lp_c, n_c, lp_v, n_v = out["0"].margin or (0, 0, 0, 0)
    assert n_c and n_v and lp_c != lp_v
    assert out["1"].margin == pytest.approx((lp_v, n_v, lp_c, n_c), abs=1e-4)
