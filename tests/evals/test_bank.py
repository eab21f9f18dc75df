"""``salience eval calibrate`` on the shipped model: the bank keeps the items whose selection
draws pass, measures them again on draws the selection never saw, and ``eval run --bank`` runs
exactly those items."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from salience.evals.bank import item_id, load
from salience.evals.store import Store
from tests.evals.runs import ROOT

# the train split's first draws: max_words / max_sentences items this model often keeps
CALIBRATE = ["eval", "calibrate", "--split", "train", "--samples", "3", "--threshold", "0.34",
             "--max-new-tokens", "16", "--quiet"]  # fmt: skip


def salience(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salience", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_a_bank_selects_then_measures_on_fresh_draws_and_runs_its_items(tmp_path: Path) -> None:
    db, out = tmp_path / "cal.sqlite3", tmp_path / "bank.json"
    done = salience(*CALIBRATE, "--candidates", "6", "--db", str(db), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    bank = load(out)
    assert summary["kept"] == len(bank.items) >= 1, summary
    assert bank.split == "train" and bank.threshold == 0.34 and bank.samples == 3
    assert bank.model == "SmolLM2-135M-Instruct.Q4_1.gguf:float32"
    assert bank.command.startswith("salience eval calibrate --split train")
    assert all(e["selection"] >= 0.34 for e in bank.items)
    assert all(e["id"] == item_id(e["task"], e["family"], e["phrasing"], e["params"])
               for e in bank.items)  # fmt: skip
    # the two passes: every kept item measured again, on draws (sample keys, hence seeds) of
    # its own: no key of the measurement pass is a key of the selection pass
    with closing(Store(db)) as store:
        runs = {r: list(store.records(r)) for r in store.runs()}
    assert len(runs) == 2
    selection = next(rs for rs in runs.values() if len(rs) == 6)
    measured = next(rs for rs in runs.values() if rs is not selection)
    assert {r["item"] for r in measured} == {e["id"] for e in bank.items}
    assert not {r["key"] for r in measured} & {r["key"] for r in selection}
    assert {r["seed"] for r in selection} == {1} and {r["seed"] for r in measured} == {0}
    rate = sum(r["sampled"]["both"] for r in measured) / len(measured)
    assert abs(bank.measured["rate"] - rate) < 1e-3
    assert bank.measured["interval"][0] <= bank.measured["rate"] <= bank.measured["interval"][1]

    # more candidates resume the passes: the first six are not drawn again
    again = salience(*CALIBRATE, "--candidates", "8", "--db", str(db), "--out", str(out))
    assert again.returncode == 0, again.stderr
    with closing(sqlite3.connect(db)) as c:
        total = c.execute("select count(*) from samples").fetchone()[0]
    grown = load(out)
    assert total == 8 + len(grown.items)  # 8 selection records, one measurement per kept item
    assert [e["id"] for e in grown.items[: len(bank.items)]] == [e["id"] for e in bank.items]

    # eval run --bank runs the bank's first items, on its split
    run_db = tmp_path / "run.sqlite3"
    ran = salience("eval", "run", "--bank", str(out), "--items", "1", "--lengths", "0",
                   "--methods", "none", "--max-new-tokens", "4", "--db", str(run_db), "--quiet",
                   "--name", "b")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    with closing(Store(run_db)) as store:
        (record,) = list(store.records("b"))
    assert record["item"] == grown.items[0]["id"] and record["split"] == "train"
    assert record["bank"] == str(out)

    # a bank of another model is refused before anything runs; so are more items than it holds
    other = json.loads(out.read_text())
    other["model"] = "another-model.gguf:float32"
    (tmp_path / "other.json").write_text(json.dumps(other))
    refused = salience("eval", "run", "--bank", str(tmp_path / "other.json"), "--items", "1",
                       "--db", str(run_db), "--quiet")  # fmt: skip
    assert refused.returncode == 2 and "was calibrated on another-model.gguf" in refused.stderr
    many = salience("eval", "run", "--bank", str(out), "--items", "999", "--db", str(run_db))
    assert many.returncode == 2 and f"the bank holds {len(grown.items)} items" in many.stderr


def test_selection_and_measurement_must_use_different_draws(tmp_path: Path) -> None:
    out, db = str(tmp_path / "b.json"), str(tmp_path / "d.sqlite3")
    same = salience(*CALIBRATE, "--candidates", "2", "--seed", "0", "--measure-seed", "0",
                    "--out", out, "--db", db)  # fmt: skip
    assert same.returncode == 2 and "must differ" in same.stderr
    assert not (tmp_path / "b.json").exists()
