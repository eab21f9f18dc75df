"""A grid's work spread over Ray actors (``salience eval run --ray``).

Only the computing moves. The driver plans the grid, keys the samples and writes every record
itself, as in one process (evals.runner.run with this module's executor): resume, sample keys
and reports are exactly as they are without Ray. Each actor builds the backend once from its
``BackendSpec`` (a local model loads once per actor) and computes whole groups, cut as the
single-process runner cuts them, so a batched group is the same batch on either path.

Faults: an actor that dies (its process killed, its node gone, out of memory) is replaced and
every group it held is sent again, up to ``retries`` times per group; an exception raised by
the backend itself is not a lost worker and stops the run (what was recorded stays recorded).

Without an address Ray starts inside this process (``address="local"``: never a cluster found
in the environment) with one CPU per actor thread; with one it joins a running cluster, whose
nodes need salience installed (``pip install 'salience[ray]'``) and the model file at the same
path.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .backends import BackendSpec, Outcome, Unit


class WorkerLost(RuntimeError):
    """A group's actor died more often than the retries allow."""


class EvalWorker:
    """One actor: a backend built once, computing the groups it is sent."""

    def __init__(self, spec: BackendSpec, batch: int) -> None:
        self.backend = spec.build()
        self.batch = batch

    def evaluate(self, units: Sequence[Unit]) -> list[tuple[str, Outcome]]:
        return list(self.backend.evaluate(units, self.batch))

    def pid(self) -> int:
        return os.getpid()


@dataclass
class RayExecutor:
    """Computes the runner's work on ``workers`` actors (evals.runner.Executor)."""

    spec: BackendSpec
    workers: int = 2
    address: str | None = None  # None: a Ray started here; else a cluster's address
    batch: int = 16
    in_flight: int = 2  # groups queued per actor (one computing, one waiting)
    retries: int = 3  # times a group is sent again after its actor died
    replaced: int = field(default=0, init=False)  # actors replaced during the last run

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        if self.in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, not {self.in_flight}")

    def __call__(self, work: Sequence[Sequence[Unit]]) -> Iterator[tuple[str, Outcome]]:
        ray = _import_ray()
        threads = self.spec.threads or 1
        started = False
        if not ray.is_initialized():
            if self.address is None:
                ray.init(address="local", num_cpus=self.workers * threads, **QUIET)
            else:
                ray.init(address=self.address, **QUIET)
            started = True
        # a local model computes one group at a time; a remote backend's actor keeps in_flight
        # requests going on threads
        calls = 1 if self.spec.kind == "local" else self.in_flight
        actor_class = ray.remote(num_cpus=threads, max_restarts=0, max_concurrency=calls)(
            EvalWorker
        )
        actors = [actor_class.remote(self.spec, self.batch) for _ in range(self.workers)]
        self.replaced = 0
        queue = deque(range(len(work)))
        lost: Counter[int] = Counter()
        pending: dict[Any, tuple[int, int]] = {}  # object ref → (actor slot, group index)
        try:
            while queue or pending:
                for slot in range(len(actors)):
                    held = sum(1 for a, _ in pending.values() if a == slot)
                    while queue and held < self.in_flight:
                        group = queue.popleft()
                        pending[actors[slot].evaluate.remote(work[group])] = (slot, group)
                        held += 1
                ready, _ = ray.wait(list(pending), num_returns=1)
                slot, group = pending.pop(ready[0])
                try:
                    results = ray.get(ready[0])
                except ray.exceptions.RayActorError:
                    # the actor is gone: a new one takes its slot and every group it held
                    again = [group] + [g for r, (a, g) in list(pending.items()) if a == slot]
                    for ref in [r for r, (a, _) in pending.items() if a == slot]:
                        del pending[ref]
                    for g in again:
                        lost[g] += 1
                        if lost[g] > self.retries:
                            raise WorkerLost(
                                f"group {g} ({len(work[g])} samples) lost its actor "
                                f"{lost[g]} times; giving up"
                            ) from None
                    queue.extendleft(reversed(sorted(again)))
                    _kill(ray, actors[slot])
                    actors[slot] = actor_class.remote(self.spec, self.batch)
                    self.replaced += 1
                    continue
                yield from results
        finally:
            for actor in actors:
                _kill(ray, actor)
            if started:
                ray.shutdown()


QUIET: dict[str, Any] = {
    "include_dashboard": False,
    "log_to_driver": False,
    "logging_level": "ERROR",
    "configure_logging": True,
}


def _kill(ray: Any, actor: Any) -> None:
    with contextlib.suppress(Exception):  # already gone
        ray.kill(actor, no_restart=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "--ray needs Ray: pip install 'salience[ray]' (or pip install 'ray>=2.40')"
        ) from None
    return ray
