"""The sample store: one record per (run, key); an old store (key alone unique) is migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from salience.evals.store import Store


def test_two_runs_of_the_same_grid_keep_a_record_each(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    assert store.add("k1", "job-a", {"method": "none"}, {"strict": True})
    assert store.add("k1", "job-b", {"method": "none"}, {"strict": False})
    assert not store.add("k1", "job-a", {"method": "none"}, {"strict": False})  # no twice
    assert [r["strict"] for r in store.records("job-a")] == [True]
    assert [r["strict"] for r in store.records("job-b")] == [False]
    assert store.done("job-b") == {"k1"}


def test_a_store_from_before_is_migrated_with_its_records(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """
        create table samples (key text primary key, run text not null, factors text not null,
                              result text not null, created real not null);
        create index samples_run on samples(run);
        insert into samples values ('k1', 'job-a', '{"method": "none"}', '{"strict": true}', 1);
        """
    )
    db.commit()
    db.close()
    store = Store(path)
    assert [r["key"] for r in store.records("job-a")] == ["k1"]
    assert store.add("k1", "job-b", {"method": "none"}, {"strict": False})
    assert [r["strict"] for r in store.records("job-b")] == [False]
    store.close()
    # opening it again changes nothing
    assert [r["key"] for r in Store(path).records("job-a")] == ["k1"]


def test_run_names_cover_every_setting_and_a_run_refuses_other_settings(tmp_path: Path) -> None:
    from salience.evals.grid import Grid
    from salience.evals.store import RunConflict, Store

    a = Grid(max_new_tokens=8)
    assert a.identity("local", "m") != Grid(max_new_tokens=16).identity("local", "m")
    assert a.identity("local", "m") != Grid(max_new_tokens=8, kinds=("noise",)).identity(
        "local", "m"
    )
    assert a.identity("local", "m") != a.identity("local", "m:bfloat16")
    assert a.identity("local", "m") == Grid(max_new_tokens=8).identity("local", "m")
    store = Store(tmp_path / "s.sqlite3")
    store.claim("r", {**a.settings(), "model": "m"}, a.cells())
    grown = Grid(max_new_tokens=8, lengths=(0, 256, 512), methods=("none", "xml"))
    store.claim("r", {**grown.settings(), "model": "m"}, grown.cells())  # new cells: fine
    with pytest.raises(RunConflict, match="max_new_tokens was 8, now 16"):
        other = Grid(max_new_tokens=16)
        store.claim("r", {**other.settings(), "model": "m"}, other.cells())
    store.add("k", "old", {"method": "none"}, {"strict": True})  # a run from before claims
    with pytest.raises(RunConflict, match="before runs kept their settings"):
        store.claim("old", {**a.settings(), "model": "m"}, a.cells())
    listing = {r["run"]: r for r in store.listing()}
    assert listing["r"]["cells"]["lengths"] == [0, 256, 512] and listing["r"]["samples"] == 0
    assert listing["old"]["settings"] is None and listing["old"]["samples"] == 1
