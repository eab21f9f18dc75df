"""A calibrated item bank: the items a model can follow with no distractor, chosen on draws
the study never measures.

``salience eval calibrate`` runs method ``none`` at length 0 with ``k`` sampled answers on
``candidates`` items of a split, drawn with a *selection seed*, and keeps each item whose
sampled ``both`` (rule kept and task answered) is at least ``threshold``. A study then names the
bank (``eval run --bank FILE``) and runs with its own seed: every sampled answer it measures is
seeded from a key that holds that seed, so none of them is a draw the selection saw. Selection
on the same draws would inflate ``none``'s length-0 rate (an item kept for a lucky 5 of 8 is
more often a 0.4 item than a 0.7 one); on fresh draws the measured rate regresses to what the
items really do, and the bank file records both rates so the gap is in plain view.

The bank names each item by what makes it (task, family, parameters, phrasing), so it rebuilds
the same items, with the same ids, on any machine; it holds the model's fingerprint, because an
item one model follows another may not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import families, tasks
from .errors import GridError
from .split import Item

BANK_VERSION = 1
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Bank:
    model: str
    split: str
    threshold: float
    samples: int
    selection_seed: int
    candidates: int
    items: tuple[dict[str, Any], ...]  # each: id, task, family, params, phrasing, selection
    command: str = ""
    measured: dict[str, Any] = field(default_factory=dict)  # filled by `eval calibrate --check`

    def as_items(self, n: int | None = None) -> list[Item]:
        """The first ``n`` items of the bank (all when None), rebuilt."""
        chosen = self.items if n is None else self.items[:n]
        if n is not None and n > len(self.items):
            raise GridError(
                f"the bank holds {len(self.items)} items; --items {n} asks for more (calibrate "
                "more candidates, or ask for fewer)",
                code="bank-too-small",
            )
        return [_rebuild(entry, self.split) for entry in chosen]

    def selection_rate(self) -> float:
        return float(sum(e["selection"] for e in self.items)) / max(1, len(self.items))

    def data(self) -> dict[str, Any]:
        return {
            "version": BANK_VERSION,
            "model": self.model,
            "split": self.split,
            "threshold": self.threshold,
            "samples": self.samples,
            "selection_seed": self.selection_seed,
            "candidates": self.candidates,
            "kept": len(self.items),
            "selection_rate": round(self.selection_rate(), 4),
            "command": self.command,
            "measured": self.measured,
            "items": list(self.items),
        }


def item_id(task: str, family: str, phrasing: int, params: dict[str, Any]) -> str:
    """An item's id: the same hash ``split.items`` gives it."""
    key = f"{task}|{family}|{phrasing}|{sorted(params.items())}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _rebuild(entry: dict[str, Any], where: str) -> Item:
    try:
        task = tasks.BY_ID[entry["task"]]
        family = families.BY_ID[entry["family"]]
        params = dict(entry["params"])
        phrasing = int(entry["phrasing"])
    except (KeyError, TypeError, ValueError) as error:
        raise GridError(f"bank entry {entry!r} names no known item ({error})") from None
    if not 0 <= phrasing < len(family.phrasings):
        raise GridError(f"bank entry {entry.get('id')}: {family.id} has no phrasing {phrasing}")
    built = Item(
        item_id(task.id, family.id, phrasing, params),
        where,  # type: ignore[arg-type]
        task,
        family,
        params,
        phrasing,
    )
    if entry.get("id") not in (None, built.id):
        raise GridError(f"bank entry {entry['id']} rebuilds as {built.id}: the item changed")
    return built


def select(
    records: Iterable[dict[str, Any]], threshold: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The calibration's records split into (kept, every candidate), each as a bank entry in
    the order the items were drawn. A record counts when it is ``none`` at length 0 with
    sampled answers."""
    out = []
    for r in records:
        if r.get("method") != "none" or r.get("length") != 0 or not r.get("sampled"):
            continue
        out.append(
            {
                "id": r["item"],
                "task": r["task"],
                "family": r["family"],
                "params": r["params"],
                "phrasing": r["phrasing"],
                "selection": float(r["sampled"]["both"]),
            }
        )
    return [e for e in out if e["selection"] >= threshold], out


def load(path: str | Path) -> Bank:
    target = Path(path)
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GridError(
            f"bank {path}: no such file (`salience eval calibrate` writes one)"
        ) from None
    except (OSError, ValueError) as error:
        raise GridError(f"bank {path}: not a bank file ({error})") from None
    if not isinstance(data, dict) or data.get("version") != BANK_VERSION:
        raise GridError(f"bank {path}: not a version-{BANK_VERSION} bank file")
    try:
        return Bank(
            model=str(data["model"]),
            split=str(data["split"]),
            threshold=float(data["threshold"]),
            samples=int(data["samples"]),
            selection_seed=int(data["selection_seed"]),
            candidates=int(data["candidates"]),
            items=tuple(data["items"]),
            command=str(data.get("command", "")),
            measured=dict(data.get("measured") or {}),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise GridError(f"bank {path}: missing or bad field ({error})") from None


def write(bank: Bank, path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(bank.data(), indent=1) + "\n", encoding="utf-8")


def by_family(entries: Sequence[dict[str, Any]]) -> dict[str, tuple[int, float]]:
    """Per family: (items, mean selection rate)."""
    out: dict[str, list[float]] = {}
    for e in entries:
        out.setdefault(e["family"], []).append(e["selection"])
    return {f: (len(v), sum(v) / len(v)) for f, v in sorted(out.items())}
