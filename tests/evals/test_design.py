"""The runner's plan: the rotated design and method fingerprints in sample keys, on the shipped
model's tokenizer and methods."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from salience.evals.backends import LocalBackend
from salience.evals.grid import Grid
from salience.evals.runner import plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    return LocalBackend()


KINDS = ("prose", "similar", "conflicting", "noise")
POSITIONS = ("before", "after")


def test_the_rotated_design_gives_each_item_one_pair_and_covers_every_pair(
    backend: LocalBackend,
) -> None:
    grid = Grid(
        items=16, kinds=KINDS, lengths=(0, 64), positions=POSITIONS, methods=("none", "xml"),
        design="rotated",
    )  # fmt: skip
    planned = plan(grid, backend)
    assert len(planned) == grid.size() == 16 * 2 * 2
    per_item: dict[str, set[tuple[str, str]]] = {}
    for p in planned:
        per_item.setdefault(p.factors["item"], set()).add(
            (p.factors["kind"], p.factors["position"])
        )
    assert len(per_item) == 16 and all(len(pairs) == 1 for pairs in per_item.values())
    pairs = Counter(next(iter(v)) for v in per_item.values())
    assert set(pairs) == {(k, p) for k in KINDS for p in POSITIONS}  # 8 pairs, 2 items each
    assert set(pairs.values()) == {2}

    crossed = plan(Grid(items=2, kinds=KINDS, lengths=(64,), positions=POSITIONS), backend)
    assert len({(p.factors["kind"], p.factors["position"]) for p in crossed}) == 8
    with pytest.raises(ValueError, match="design"):
        Grid(design="diagonal")


def test_a_prompt_met_twice_at_length_0_is_planned_once(backend: LocalBackend) -> None:
    grid = Grid(items=2, kinds=("prose", "noise"), lengths=(0,), positions=("before", "after"),
                methods=("none",))  # fmt: skip
    planned = plan(grid, backend)
    keys = [p.key for p in planned]
    assert len(keys) == len(set(keys))
    assert len(planned) == len({p.factors["prompt_hash"] for p in planned}) < 2 * 2 * 2


def test_a_refitted_bias_file_gets_new_sample_keys(backend: LocalBackend, tmp_path: Path) -> None:
    grid = Grid(items=1, lengths=(64,), methods=("none", "xml", "uniform", "learned"))
    before = {p.factors["method"]: p.key for p in plan(grid, backend)}

    shipped = json.loads((ROOT / "model/data/learned-smollm2-135m.json").read_text())
    shipped["beta"][0][3][2] += 0.5
    refitted = tmp_path / "refit.json"
    refitted.write_text(json.dumps(shipped))
    other = LocalBackend(bias_path=str(refitted))
    after = {p.factors["method"]: p.key for p in plan(grid, other)}

    assert after["learned"] != before["learned"]  # a resumed run must not reuse old samples
    assert after["none"] == before["none"] and after["xml"] == before["xml"]
    assert after["uniform"] == before["uniform"]  # uniform ignores bias_path
    beta = Grid(items=1, lengths=(64,), methods=("uniform", "uniform@0.5"))
    ids = {p.factors["method"]: p.factors["method_id"] for p in plan(beta, backend)}
    assert ids["uniform"] != ids["uniform@0.5"] and ids["uniform"].startswith("uniform#")


@pytest.mark.parametrize("study", ["measures", "inject", "distance"])
def test_the_method_ids_of_committed_records_are_reproduced(
    backend: LocalBackend, study: str
) -> None:
    """A method's fingerprint is part of every sample key: recomputing it from the registry
    must give the ids of the records committed before (or a resumed study would start over)."""
    from salience.evals.runner import method_id
    from salience.evals.store import read_jsonl

    records = read_jsonl(ROOT / "docs" / "eval" / study / "records.jsonl.gz")
    recorded = {(r["method"], r["method_id"]) for r in records}
    assert len(recorded) >= 2 and len({m for m, _ in recorded}) == len(recorded)
    for method, key in sorted(recorded):
        assert method_id(backend, method) == key


def test_complete_keeps_only_prompts_every_method_answered() -> None:
    from salience.evals.report import complete

    def r(prompt: str, method: str) -> dict[str, object]:
        return {"prompt_hash": prompt, "method": method}

    records = [r("a", "none"), r("a", "xml"), r("b", "none"), r("c", "xml"), r("c", "none")]
    kept = complete(records)
    assert sorted((x["prompt_hash"], x["method"]) for x in kept) == [
        ("a", "none"), ("a", "xml"), ("c", "none"), ("c", "xml"),
    ]  # fmt: skip
    assert complete([r("a", "none")]) == [r("a", "none")]


def test_a_refitted_distance_scale_gets_new_sample_keys(
    backend: LocalBackend, tmp_path: Path
) -> None:
    """g(distance) is part of what the method does: two files equal in β but not in g must
    not share samples."""
    shipped = json.loads((ROOT / "model/data/learned-smollm2-135m.json").read_text())
    grid = Grid(items=1, lengths=(64,), methods=("learned",))
    keys = []
    for values in ([1.0, 1.0, 1.0], [0.5, 1.0, 2.0]):
        data = {**shipped, "distance": {"knots": [0, 16, 256], "values": [values] * 4}}
        path = tmp_path / f"g{values[0]}.json"
        path.write_text(json.dumps(data))
        keys.append({p.key for p in plan(grid, LocalBackend(bias_path=str(path)))})
    assert keys[0] != keys[1]
