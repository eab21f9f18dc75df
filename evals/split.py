"""The train/test split: families, phrasings and tasks, each by a hash of its id.

Anything fitted on the train split (the learned bias, PASTA's heads) is judged on test items
whose family, phrasing and task it never saw. The split is a pure function of the ids, so it
does not move when items are added: about 30 % of each kind goes to train.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import GridError
from .families import FAMILIES, Family, Params
from .tasks import TASKS, Task

Split = Literal["train", "test"]
TRAIN_PERCENT = 30


def split_of(kind: str, id: str) -> Split:
    digest = hashlib.sha256(f"{kind}:{id}".encode()).digest()
    return "train" if int.from_bytes(digest[:4], "big") % 100 < TRAIN_PERCENT else "test"


def families(split: Split) -> list[Family]:
    return [f for f in FAMILIES if split_of("family", f.id) == split]


def tasks(split: Split) -> list[Task]:
    return [t for t in TASKS if split_of("task", t.id) == split]


def phrasings(family: Family, split: Split) -> list[int]:
    """Indexes of the family's phrasings in ``split``; never empty (a family whose phrasings
    all hash to the other side lends its first (train) or last (test) one)."""
    chosen = [
        i for i in range(len(family.phrasings)) if split_of("phrasing", f"{family.id}#{i}") == split
    ]
    if chosen:
        return chosen
    return [0] if split == "train" else [len(family.phrasings) - 1]


@dataclass(frozen=True)
class Item:
    """One task with one rule: the unit the evaluation scores."""

    id: str
    split: Split | Literal["dataset"]  # "dataset": a row of an imported file (evals.ifeval)
    task: Task
    family: Family
    params: Params
    phrasing: int

    @property
    def rule(self) -> str:
        return self.family.rule(self.params, self.phrasing)


def items(split: Split, n: int, seed: int = 0, only: Sequence[str] | None = None) -> list[Item]:
    """``n`` items of ``split``, deterministic for a seed: tasks cycled, families and phrasings
    drawn from the same split. ``only``: these families alone; on the train split they may be
    any family (with train tasks, and train phrasings where the family has any)."""
    rng = random.Random(f"{split}:{seed}")
    pool_tasks = tasks(split)
    pool_families = families(split)
    if only is not None:
        wanted = set(only)
        unknown = sorted(wanted - {f.id for f in FAMILIES})
        if unknown:
            raise GridError(
                f"unknown famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                f"known: {', '.join(f.id for f in FAMILIES)}",
                code="bad-family",
            )
        # train tasks and phrasings may be paired with any family (the floors that pick the
        # headline families are measured there, before any test number is seen); a test item
        # never takes a train family
        pool = FAMILIES if split == "train" else pool_families
        pool_families = [f for f in pool if f.id in wanted]
        if not pool_families:
            raise GridError(
                f"none of {', '.join(sorted(wanted))} is in the {split} split; its families: "
                f"{', '.join(f.id for f in families(split))}"
            )
    rng.shuffle(pool_tasks)
    out = []
    for i in range(n):
        task = pool_tasks[i % len(pool_tasks)]
        family = pool_families[i % len(pool_families)]
        params = family.draw(rng)
        phrasing = rng.choice(phrasings(family, split))
        key = f"{task.id}|{family.id}|{phrasing}|{sorted(params.items())}"
        out.append(
            Item(
                hashlib.sha256(key.encode()).hexdigest()[:12], split, task, family, params, phrasing
            )
        )
    return out
