"""Sample records in SQLite: one row per (run, key), written as each sample finishes.

WAL mode and a commit per record: a run killed at any moment loses at most the sample in
flight, and ``INSERT OR IGNORE`` on (run, key) means nothing is ever recorded twice in a run.
Two runs of the same grid (two eval jobs, say) keep a record each: the key alone used to be
the primary key, so the second run's inserts were silently ignored and it reported nothing. A
store with the old table is migrated when opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """
create table if not exists samples (
    key text not null,
    run text not null,
    factors text not null,
    result text not null,
    created real not null,
    primary key (run, key)
);
create index if not exists samples_run on samples(run);
create table if not exists runs (
    run text primary key,
    settings text not null,
    cells text not null,
    created real not null,
    updated real not null
);
create table if not exists references_ (
    model text not null,
    item text not null,
    max_new integer not null,
    data text not null,
    primary key (model, item, max_new)
);
"""

# The table from before runs had their own records (``key`` alone was the primary key): renamed,
# the new one created from SCHEMA, the records copied.
MIGRATE_KEY_ONLY = f"""
alter table samples rename to samples_key_only;
drop index if exists samples_run;
{SCHEMA}
insert into samples select key, run, factors, result, created from samples_key_only;
drop table samples_key_only;
"""


class RunConflict(ValueError):
    """A run name already holds records made with other settings."""


class RecordStore(Protocol):
    """What the runner writes through: ``Store``, or the service's locked view of one."""

    def done(self, run: str) -> set[str]: ...

    def claim(self, run: str, settings: dict[str, Any], cells: dict[str, Any]) -> None: ...

    def add(self, key: str, run: str, factors: dict[str, Any], result: dict[str, Any]) -> bool: ...

    def reference(self, model: str, item: str, max_new: int) -> dict[str, Any] | None: ...

    def add_reference(self, model: str, item: str, max_new: int, data: dict[str, Any]) -> None: ...


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.db.execute("pragma journal_mode=wal")
        self.db.execute("pragma synchronous=normal")
        primary = [row[1] for row in self.db.execute("pragma table_info(samples)") if row[5]]
        if primary == ["key"]:
            self.db.executescript(f"begin;{MIGRATE_KEY_ONLY}commit;")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def done(self, run: str) -> set[str]:
        return {row[0] for row in self.db.execute("select key from samples where run = ?", (run,))}

    def add(self, key: str, run: str, factors: dict[str, Any], result: dict[str, Any]) -> bool:
        cursor = self.db.execute(
            "insert or ignore into samples (key, run, factors, result, created)"
            " values (?, ?, ?, ?, ?)",
            (
                key,
                run,
                json.dumps(factors, sort_keys=True),
                json.dumps(result, sort_keys=True),
                time.time(),
            ),
        )
        self.db.commit()
        return cursor.rowcount == 1

    def reference(self, model: str, item: str, max_new: int) -> dict[str, Any] | None:
        """The margin's references for an item (built once per model and output budget)."""
        row = self.db.execute(
            "select data from references_ where model = ? and item = ? and max_new = ?",
            (model, item, max_new),
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def add_reference(self, model: str, item: str, max_new: int, data: dict[str, Any]) -> None:
        self.db.execute(
            "insert or replace into references_ (model, item, max_new, data) values (?, ?, ?, ?)",
            (model, item, max_new, json.dumps(data, sort_keys=True)),
        )
        self.db.commit()

    def records(self, run: str) -> Iterator[dict[str, Any]]:
        for key, factors, result in self.db.execute(
            "select key, factors, result from samples where run = ? order by key", (run,)
        ):
            yield {"key": key, **json.loads(factors), **json.loads(result)}

    def outcomes(self, run: str) -> list[tuple[str, dict[str, Any]]]:
        """``(key, result)`` per record of ``run``, by key, without the seconds it took: what two
        runs of one grid must agree on (the same keys, answers, verdicts and margins), wherever
        and however they ran."""
        out = []
        for key, result in self.db.execute(
            "select key, result from samples where run = ? order by key", (run,)
        ):
            data = json.loads(result)
            data.pop("seconds", None)
            out.append((key, data))
        return out

    def runs(self) -> list[str]:
        return [r[0] for r in self.db.execute("select distinct run from samples order by run")]

    def claim(self, run: str, settings: dict[str, Any], cells: dict[str, Any]) -> None:
        """Record that ``run`` is computed with ``settings`` (what every one of its records
        shares: model, budget, measures, seed…) over ``cells`` (items, lengths, methods…).
        A run may grow new cells; a run recorded with other settings raises ``RunConflict``
        (its records would be pooled with records that differ in a setting)."""
        now = time.time()
        row = self.db.execute("select settings from runs where run = ?", (run,)).fetchone()
        wanted = json.dumps(settings, sort_keys=True)
        if row is None:
            if self.done(run):
                raise RunConflict(
                    f"run {run!r} holds records from before runs kept their settings; "
                    "name this one differently"
                )
            self.db.execute(
                "insert into runs (run, settings, cells, created, updated) values (?, ?, ?, ?, ?)",
                (run, wanted, json.dumps(cells, sort_keys=True), now, now),
            )
        else:
            stored = json.loads(row[0])
            differ = sorted(
                k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k)
            )
            if differ:
                said = "; ".join(
                    f"{k} was {stored.get(k)!r}, now {settings.get(k)!r}" for k in differ
                )
                raise RunConflict(f"run {run!r} was recorded with other settings ({said})")
            self.db.execute(
                "update runs set cells = ?, updated = ? where run = ?",
                (json.dumps(cells, sort_keys=True), now, run),
            )
        self.db.commit()

    def listing(self) -> list[dict[str, Any]]:
        """Every run: its settings and cells (where recorded), sample count, first and last
        record times."""
        known = {
            r[0]: (json.loads(r[1]), json.loads(r[2]))
            for r in self.db.execute("select run, settings, cells from runs")
        }
        out = []
        for run, n, first, last in self.db.execute(
            "select run, count(*), min(created), max(created) from samples group by run"
        ):
            settings, cells = known.pop(run, (None, None))
            out.append({"run": run, "samples": n, "first": first, "last": last,
                        "settings": settings, "cells": cells})  # fmt: skip
        for run, (settings, cells) in known.items():  # claimed, nothing recorded yet
            out.append({"run": run, "samples": 0, "first": None, "last": None,
                        "settings": settings, "cells": cells})  # fmt: skip
        return sorted(out, key=lambda r: r["run"])

    def export_jsonl(self, run: str, path: str | Path) -> int:
        """Every record of ``run``, one JSON object per line (gzip-compressed when ``path``
        ends in .gz, deterministically: no timestamp in the header), in key order; the file
        is replaced whole (a reader never sees half of it)."""
        return write_jsonl(self.records(run), path)

    def import_records(
        self,
        run: str,
        settings: dict[str, Any],
        cells: dict[str, Any],
        records: list[tuple[str, dict[str, Any], dict[str, Any]]],
    ) -> int:
        """``records`` ((key, factors, result) each) into ``run``, claimed with ``settings`` and
        ``cells`` as ``salience eval run`` claims a run, so that the same command resumes it;
        all or nothing (one transaction). Returns how many were new."""
        self.claim(run, settings, cells)  # RunConflict: the name holds another run
        now = time.time()
        with self.db:
            before = self.db.total_changes
            self.db.executemany(
                "insert or ignore into samples (key, run, factors, result, created)"
                " values (?, ?, ?, ?, ?)",
                [
                    (key, run, json.dumps(f, sort_keys=True), json.dumps(r, sort_keys=True), now)
                    for key, f, r in records
                ],
            )
            return self.db.total_changes - before


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """``records`` as ``export_jsonl`` writes them (in the order given), through a temporary
    file renamed over ``path``."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp{target.suffix}")
    n = 0
    try:
        with _open_text(temporary, "w", name=target) as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records written by ``Store.export_jsonl`` (or ``--jsonl``), plain or .gz."""
    with _open_text(Path(path), "r") as f:
        return [json.loads(line) for line in f if line.strip()]


def _open_text(path: Path, mode: str, name: Path | None = None) -> Any:
    """``path`` as text, through gzip where it ends in .gz; writing, the gzip header names
    ``name`` (the file a temporary one becomes) and no time, so the same records give the
    same bytes."""
    import gzip
    import io

    if path.suffix == ".gz":
        if mode == "w":
            raw = open(path, "wb", buffering=0)  # noqa: SIM115 (the GzipFile closes it)
            packed = gzip.GzipFile(str(name or path), "wb", fileobj=raw, mtime=0)
            packed.myfileobj = raw  # closed when the GzipFile is
            return io.TextIOWrapper(packed, encoding="utf-8")
        return io.TextIOWrapper(gzip.GzipFile(str(path), "rb"), encoding="utf-8")
    return open(path, mode, encoding="utf-8")
