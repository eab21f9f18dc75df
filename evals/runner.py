"""The runner: items × distractor kinds × lengths × positions × methods, one record per sample.

Two designs: ``crossed`` gives every item every (kind, position); ``rotated`` gives item i the
i-th (kind, position) pair in turn, so a fixed budget of samples spreads over more items (the
unit the intervals are clustered on) while every kind and position is still covered.

Each sample's key hashes what makes it what it is (the prompt's text and marks, the seed, the
method, the backend, the model and what is measured); a rerun skips keys already stored, so a
killed run resumes with nothing lost and nothing repeated.

Three measures per sample (one prompt under one method):

(a) the greedy answer, pass/fail (strict, loose, quality, both);
(b) with ``samples`` = k: k answers sampled at ``temperature``, each row seeded from the sample's
    key and its index alone (a row's answer does not depend on what it was batched with), and
    the fraction of them that pass;
(c) with ``margin``: log p(compliant) − log p(violating), teacher-forced, in total and per
    token, where violating is the model's own answer to the task alone (no rule, no distractor)
    when that answer breaks the rule, and compliant is it through the family's compliance
    transform. The references are built once per item and model, and kept in the store.

A backend that can (the local model) computes a group of samples together: each prompt is
prefilled once for its greedy row, its sampled rows and its references; prompts share the
prefix no method changes; rows of one method decode in one batch (model/batch.py). Any other
backend computes sample by sample. Both give the same records (up to float rounding).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from salience.markup import Conversation

from . import distractors, prompts, split
from .backends import Backend, Outcome, References, Unit, evaluate_one
from .bank import load as load_bank
from .grid import Grid, _Planned
from .ifeval import DatasetFamily
from .ifeval import items as dataset_items
from .ifeval import load as load_dataset
from .records import references, result_of, row_seed
from .store import RecordStore


@dataclass
class RunStats:
    total: int = 0
    skipped: int = 0
    done: int = 0
    model_seconds: float = 0.0
    wall_seconds: float = 0.0
    keys: list[str] = field(default_factory=list)
    activity: str = ""  # what the backend is doing between results (progress displays)
    phase: str = "planning"  # planning → references → running → done

    @property
    def per_minute(self) -> float:
        """New samples per minute so far."""
        return 60 * self.done / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def overhead(self) -> float:
        """The runner's own share of the time spent on new samples."""
        return (
            0.0 if self.wall_seconds <= 0 else max(0.0, 1 - self.model_seconds / self.wall_seconds)
        )


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; every sample finished before it is in the store."""

    def __init__(self, stats: RunStats) -> None:
        super().__init__()
        self.stats = stats


ACTIVITY_EVERY = 0.25  # seconds between progress calls that report activity alone


def prompt_hash(conversation: Conversation) -> str:
    data = [
        [m.role, m.document.text, [(s.start, s.end, s.level.value) for s in m.document.spans]]
        for m in conversation.messages
    ]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def sample_key(
    phash: str, seed: int, method: str, backend: str, model: str, max_new: int, measures: str = ""
) -> str:
    """``method`` is the method's name, plus ``#`` and a fingerprint of its parameters where the
    backend gives one (a refitted bias file must not reuse the old file's samples); ``measures``
    says what is measured beyond the greedy answer (Grid.measures)."""
    return hashlib.sha256(
        f"{phash}|{seed}|{method}|{backend}|{model}|{max_new}{measures}".encode()
    ).hexdigest()[:24]


def method_id(backend: Backend, method: str) -> str:
    tag = backend.fingerprint(method)
    return f"{method}#{tag}" if tag else method


# What a record's factors are (what produced it; the rest of a record is its result): the keys
# ``plan`` writes, and the three an imported dataset row adds.
FACTORS = (
    "item", "task", "task_kind", "family", "params", "phrasing", "split", "kind", "length",
    "distractor_tokens", "position", "method", "method_id", "seed", "max_new_tokens", "backend",
    "model", "prompt_hash", "dataset", "instructions", "rules_source", "bank",
)  # fmt: skip


class RecordsError(ValueError):
    """Records that cannot be one run's (two models, two seeds…), or that are not records."""


def claimed_from(
    records: Sequence[dict[str, Any]], design: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings and cells a run holding ``records`` was claimed with, as ``run`` claims
    them (``Grid.settings()`` with the backend and model, ``Grid.cells()``), read back from the
    records themselves. ``design`` where the records cannot tell (one kind and one position per
    item is ``rotated`` when the run has more than one pair, unless it says ``crossed``)."""
    if not records:
        raise RecordsError("no records")

    def one(field: str, default: Any = None) -> Any:
        values = {json.dumps(r.get(field, default), sort_keys=True) for r in records}
        if len(values) != 1:
            raise RecordsError(
                f"the records are not one run's: {field} takes {len(values)} values "
                f"({', '.join(sorted(values)[:3])}…)"
            )
        return json.loads(values.pop())

    for r in records:
        missing = [f for f in ("key", "item", "method", "length", "kind", "position") if f not in r]
        if missing:
            raise RecordsError(f"record {r.get('key', '?')!r} lacks {', '.join(missing)}")
    sampled = [r["sampled"] for r in records if isinstance(r.get("sampled"), dict)]
    pairs = {(r["kind"], r["position"]) for r in records}
    per_item: dict[str, set[tuple[str, str]]] = {}
    for r in records:
        if r["length"]:  # at length 0 kinds and positions coincide (one prompt)
            per_item.setdefault(r["item"], set()).add((r["kind"], r["position"]))
    if design is None:
        single = all(len(v) == 1 for v in per_item.values())
        design = "rotated" if single and len(pairs) > 1 else "crossed"
    grid = Grid(
        split=one("split"),
        seed=one("seed"),
        max_new_tokens=one("max_new_tokens"),
        margin=any("margin" in r for r in records),
        design=design,
        samples=int(sampled[0]["k"]) if sampled else 0,
        temperature=float(sampled[0]["temperature"]) if sampled else 0.7,
        families=None,
        dataset=one("dataset"),
        bank=one("bank"),
        items=len({r["item"] for r in records}),
        kinds=sorted({r["kind"] for r in records}),
        lengths=sorted({r["length"] for r in records}),
        positions=sorted({r["position"] for r in records}),
        methods=sorted({r["method"] for r in records}),
    )
    settings = {**grid.settings(), "backend": one("backend"), "model": one("model")}
    return settings, grid.cells()


def split_record(record: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A record as the store keeps it: its key, its factors and its result."""
    factors = {k: v for k, v in record.items() if k in FACTORS}
    result = {k: v for k, v in record.items() if k not in FACTORS and k != "key"}
    return str(record["key"]), factors, result


def plan(grid: Grid, backend: Backend) -> list[_Planned]:
    """Every sample of the grid, in a fixed order, with its key and factors."""
    out: list[_Planned] = []
    lengths = capped_lengths(grid, backend)
    ids = {m: method_id(backend, m) for m in grid.methods}
    seen: set[str] = set()
    chosen = grid_items(grid)
    for index, item in enumerate(chosen):
        for kind, position in grid.conditions(index):
            for length in lengths:
                d = distractors.make(
                    kind, length, backend.count, grid.seed, item.family.id, item.task.id
                )
                conv = prompts.conversation(item, d, position)
                phash = prompt_hash(conv)
                for method in grid.methods:
                    key = sample_key(
                        phash,
                        grid.seed,
                        ids[method],
                        backend.name,
                        backend.model,
                        grid.max_new_tokens,
                        grid.measures(),
                    )
                    factors = {
                        "item": item.id,
                        "task": item.task.id,
                        "task_kind": item.task.kind,
                        "family": item.family.id,
                        "params": item.params,
                        "phrasing": item.phrasing,
                        "split": item.split,
                        "kind": kind,
                        "length": length,
                        "distractor_tokens": d.tokens,
                        "position": position,
                        "method": method,
                        "method_id": ids[method],
                        "seed": grid.seed,
                        "max_new_tokens": grid.max_new_tokens,
                        "backend": backend.name,
                        "model": backend.model,
                        "prompt_hash": phash,
                    }
                    if grid.bank is not None:
                        factors["bank"] = grid.bank
                    if isinstance(item.family, DatasetFamily):
                        factors["dataset"] = grid.dataset
                        factors["instructions"] = [c.id for c in item.family.checks]
                        factors["rules_source"] = item.family.rules_source
                    if key not in seen:  # at length 0, kinds and positions can coincide
                        seen.add(key)
                        out.append(_Planned(key, item, conv, factors))
    return out


def grid_items(grid: Grid) -> list[split.Item]:
    """The grid's items: drawn from its split, or the first ``items`` rows of its dataset."""
    if grid.dataset is not None:
        return dataset_items(load_dataset(grid.dataset), grid.items)
    if grid.bank is not None:
        return load_bank(grid.bank).as_items(grid.items)
    return split.items(grid.split, grid.items, grid.seed, grid.families)  # type: ignore[arg-type]


PROMPT_ROOM = 256  # tokens kept for the template, the rule and the task around a distractor


def capped_lengths(grid: Grid, backend: Backend) -> list[int]:
    """The grid's lengths, each capped by the context window minus the output budget; lengths
    that collapse onto the cap are kept once."""
    window = backend.context_window
    if not window:
        return list(grid.lengths)
    cap = max(0, int(window) - grid.max_new_tokens - PROMPT_ROOM)
    return list(dict.fromkeys(min(n, cap) for n in grid.lengths))


def unit(grid: Grid, p: _Planned, references: References | None) -> Unit:
    return Unit(
        key=p.key,
        conversation=p.conv,
        method=p.factors["method"],
        max_new_tokens=grid.max_new_tokens,
        seed=grid.seed,
        sample_seeds=tuple(row_seed(p.key, i) for i in range(grid.samples)),
        temperature=grid.temperature,
        references=references,
    )


Executor = Callable[[Sequence[Sequence[Unit]]], Iterable[tuple[str, Outcome]]]


def run(
    grid: Grid,
    backend: Backend,
    store: RecordStore,
    run_name: str,
    progress: Callable[[RunStats], None] | None = None,
    concurrency: int = 1,
    batch: int = 16,
    executor: Executor | None = None,
    activity: Callable[[RunStats], None] | None = None,
) -> RunStats:
    """Run every sample not yet stored. A batched backend (the local model) computes up to
    ``batch`` rows per forward pass (``batch`` ≤ 1: sample by sample, the plain path); any
    other with ``concurrency`` > 1 (a remote backend) computes samples on that many threads.
    ``executor`` computes the work elsewhere instead (evals.distributed: Ray actors); either
    way the work is cut the same and the records are written here alone, one by one, as each
    sample finishes. ``progress`` hears each sample recorded; ``activity`` (a progress
    display) also each phase (planning, references, running) and what the backend is doing
    between results, at most every ACTIVITY_EVERY seconds."""
    store.claim(
        run_name, {**grid.settings(), "backend": backend.name, "model": backend.model}, grid.cells()
    )  # fmt: skip  (refuses a name holding records of other settings)
    done = store.done(run_name)
    start = time.perf_counter()
    stats = RunStats()

    def show(phase: str | None = None) -> None:
        if phase is not None:
            stats.phase = phase
        if activity is not None:
            stats.wall_seconds = time.perf_counter() - start
            activity(stats)

    def recorded() -> None:
        if progress is not None:
            stats.wall_seconds = time.perf_counter() - start
            progress(stats)

    last = 0.0

    def hear(what: str) -> None:  # the backend's activity between results
        nonlocal last
        now = time.perf_counter()
        if now - last >= ACTIVITY_EVERY:
            last = now
            stats.activity = what
            show()

    backend.activity = hear if activity is not None else None
    try:
        show("planning")
        planned = plan(grid, backend)
        stats.total = len(planned)
        stats.keys = [p.key for p in planned]
        todo = {p.key: p for p in planned if p.key not in done}
        stats.skipped = len(planned) - len(todo)
        refs: dict[str, References | None] = {}
        if grid.margin and todo:
            show("references")
            chosen = list({p.item.id: p.item for p in planned}.values())
            refs = references(grid, backend, store, chosen)
        units = {p.key: unit(grid, p, refs.get(p.item.id)) for p in planned}
        work = _work(grid, backend, planned, todo, units, batch)
        if executor is None:
            executor = _in_process(backend, batch, concurrency)
        show("running")
        _record(grid, store, run_name, executor(work), todo, stats, recorded)
    except KeyboardInterrupt:
        stats.wall_seconds = time.perf_counter() - start
        raise RunInterrupted(stats) from None
    finally:
        backend.activity = None
    # work done in parallel overlaps: the runner's own share is what model time does not cover
    stats.wall_seconds = time.perf_counter() - start
    stats.model_seconds = min(stats.model_seconds, stats.wall_seconds)
    stats.phase = "done"
    return stats


def _record(
    grid: Grid,
    store: RecordStore,
    run_name: str,
    results: Iterable[tuple[str, Outcome]],
    todo: dict[str, _Planned],
    stats: RunStats,
    show: Callable[..., None],
) -> None:
    """Store each result as it comes (an interrupt loses only the samples in flight), telling
    ``show`` of each."""
    for key, outcome in results:
        p = todo.pop(key, None)
        if p is None:  # a sample a group recomputed alongside, or one already recorded
            continue
        store.add(p.key, run_name, p.factors, result_of(grid, p, outcome))
        stats.done += 1
        stats.model_seconds += outcome.seconds
        stats.activity = ""
        show()


def _work(
    grid: Grid,
    backend: Backend,
    planned: Sequence[_Planned],
    todo: dict[str, _Planned],
    units: dict[str, Unit],
    batch: int,
) -> list[list[Unit]]:
    """The work, cut into the groups computed together. For a batched backend, groups of whole
    prompts are cut from the whole plan, and a group with anything left is computed whole: a
    resumed run batches exactly as an uninterrupted one, so it records the same numbers. A
    group's rows (every method of its prompts, each greedy + k sampled) fill about one batch:
    all of a group's prompt caches are held at once. Otherwise each sample left is a group."""
    if not (backend.batched and batch > 1):
        return [[units[key]] for key in todo]
    per_group = max(1, batch // (len(grid.methods) * (1 + grid.samples)))
    return [
        [units[p.key] for p in group]
        for group in _groups(planned, per_group)
        if any(p.key in todo for p in group)
    ]


def _in_process(backend: Backend, batch: int, concurrency: int) -> Executor:
    def groups_in_turn(work: Sequence[Sequence[Unit]]) -> Iterator[tuple[str, Outcome]]:
        for group in work:
            yield from backend.evaluate(group, batch)

    def on_threads(work: Sequence[Sequence[Unit]]) -> Iterator[tuple[str, Outcome]]:
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="salience-eval")
        try:
            futures = {pool.submit(evaluate_one, backend, u): u.key for g in work for u in g}
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    return on_threads if concurrency > 1 and not backend.batched else groups_in_turn


def _groups(todo: Sequence[_Planned], prompts_per_group: int) -> list[list[_Planned]]:
    """Samples in groups of whole prompts (every method of a prompt in one group), in plan
    order: a group is computed together, then recorded."""
    by_prompt: dict[str, list[_Planned]] = {}
    for p in todo:
        by_prompt.setdefault(p.factors["prompt_hash"], []).append(p)
    chunks = list(by_prompt.values())
    return [
        [p for samples in chunks[i : i + prompts_per_group] for p in samples]
        for i in range(0, len(chunks), prompts_per_group)
    ]
