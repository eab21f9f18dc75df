"""Training data for the learned bias, from the evaluation's train split alone.

Each example is a prompt with a marked rule, a distractor (kind, length and rule position drawn
by seed) and a target answer that both obeys the rule (strict verifier) and still answers the
task (the quality check). The target is, in order of preference:

1. ``own``: the model's greedy answer to the length-0 prompt with the rule, when it already
   passes both checks (these examples also anchor the fit: steering should not change an answer
   that was right);
2. ``transformed``: the model's answer to the task alone, passed through the family's compliance
   transform, when the result passes both checks.

Items with neither are skipped and counted. Where the answer to the task alone breaks the rule,
it is kept as the example's ``rejected`` answer: the margin objective prefers the target to it.
An item whose answer to the task alone already obeys the rule gets its length-0 prompt only (an
anchor): the rule changes nothing there. Families, phrasings and tasks all come from the train
split, and ``similar`` distractors draw from train tasks only, so no test item leaks in (tested).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from salience.markup import Conversation, parse_messages

from . import distractors, prompts, split
from .tasks import quality

Answer = Callable[[Conversation], str]
TRAIN_KINDS = distractors.KINDS
TRAIN_LENGTHS = (0, 256, 512, 1024)
TRAIN_POSITIONS = ("system", "before", "after", "both")


@dataclass(frozen=True)
class Example:
    item: str
    family: str
    task: str
    kind: str
    length: int
    position: str
    target: str
    source: str  # "own" or "transformed"
    conversation: Conversation = field(compare=False, repr=False)
    rejected: str = ""  # the model's answer to the task alone, when it breaks the rule

    @property
    def anchor(self) -> bool:
        """A length-0 prompt whose target is the model's own answer: keep it unchanged."""
        return self.length == 0 and self.source == "own"


@dataclass
class Dataset:
    examples: list[Example]
    skipped: list[str]  # item ids without a usable target
    settings: dict[str, Any]

    @property
    def version(self) -> str:
        """A hash of what the fit sees: prompts' factors and targets."""
        rows = [
            [e.item, e.kind, e.length, e.position, e.target, e.source]
            + ([e.rejected] if e.rejected else [])  # (so data without rejected keeps its version)
            for e in self.examples
        ]
        return hashlib.sha256(json.dumps([rows, self.settings]).encode()).hexdigest()[:12]

    def save(self, path: str | Path) -> None:
        rows = [{k: v for k, v in asdict(e).items() if k != "conversation"} for e in self.examples]
        data = {"settings": self.settings, "skipped": self.skipped, "examples": rows}
        Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, count: Callable[[str], int]) -> Dataset:
        """Rebuild the prompts of a saved dataset (targets are not regenerated)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        settings = data["settings"]
        by_id = {i.id: i for i in split.items("train", settings["items"], settings["seed"])}
        examples = [
            Example(
                **row,
                conversation=_conversation(
                    by_id[row["item"]], row["kind"], row["length"], row["position"], count, settings
                ),
            )
            for row in data["examples"]
        ]
        return cls(examples, data["skipped"], settings)


def _conversation(
    item: split.Item,
    kind: str,
    length: int,
    position: str,
    count: Callable[[str], int],
    settings: dict[str, Any],
) -> Conversation:
    d = distractors.make(
        kind,
        length,
        count,
        settings["seed"],
        item.family.id,
        item.task.id,
        tasks=split.tasks("train"),
    )
    return prompts.conversation(item, d, position)


def build(
    answer: Answer,
    count: Callable[[str], int],
    items: int = 40,
    variants: int = 4,
    seed: int = 0,
    kinds: Sequence[str] = TRAIN_KINDS,
    lengths: Sequence[int] = TRAIN_LENGTHS,
    positions: Sequence[str] = TRAIN_POSITIONS,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """``variants`` prompts per usable train item: one at length 0 (position drawn), the rest
    with (kind, length, position) drawn from the given choices."""
    settings = {
        "items": items,
        "variants": variants,
        "seed": seed,
        "kinds": list(kinds),
        "lengths": list(lengths),
        "positions": list(positions),
    }
    rng = random.Random(f"fit:{seed}")
    examples: list[Example] = []
    skipped: list[str] = []
    chosen = split.items("train", items, seed)
    for n, item in enumerate(chosen):
        target, source, rejected = _target(item, answer, count, settings)
        informative = bool(rejected)
        if progress is not None:
            progress(n + 1, len(chosen))
        if target is None:
            skipped.append(item.id)
            continue
        nonzero = [length for length in lengths if length > 0] or [0]
        draws = [(rng.choice(list(kinds)), 0, rng.choice(list(positions)))]
        # an item whose unruled answer already obeys teaches nothing about the rule under
        # distraction: it only anchors (its length-0 prompt)
        draws += [
            (rng.choice(list(kinds)), rng.choice(nonzero), rng.choice(list(positions)))
            for _ in range(variants - 1 if informative else 0)
        ]
        for kind, length, position in draws:
            conv = _conversation(item, kind, length, position, count, settings)
            examples.append(
                Example(
                    item.id,
                    item.family.id,
                    item.task.id,
                    kind,
                    length,
                    position,
                    target,
                    source,
                    conv,
                    rejected,
                )
            )
    return Dataset(examples, skipped, settings)


def _target(
    item: split.Item, answer: Answer, count: Callable[[str], int], settings: dict[str, Any]
) -> tuple[str | None, str, str]:
    """(target, source, rejected): ``rejected`` is the answer to the task alone when it breaks
    the rule (the item is informative: the rule is what makes the target differ), else ""."""
    rule = item.rule
    plain = parse_messages([{"role": "user", "content": item.task.prompt}], format="plain")
    unruled = answer(plain).strip()
    rejected = "" if item.family.strict(unruled, item.params) else unruled
    own = answer(_conversation(item, "prose", 0, "before", count, settings)).strip()
    if item.family.strict(own, item.params) and quality(item.task, own, rule).ok:
        return own, "own", rejected
    made = item.family.comply(unruled, item.params)
    if made is not None and quality(item.task, made, rule).ok:
        return made, "transformed", rejected
    return None, "", rejected


VALIDATION_SEED_OFFSET = 1000  # the validation items' seed: other train-split items


@dataclass
class FitData:
    """What a fit runs on: the dataset, the examples fitted (within ``max_length``) and the
    validation examples (other train-split items, never fitted on)."""

    dataset: Dataset
    train: list[Example]
    validation: list[Example]

    @property
    def sources(self) -> dict[str, int]:
        return {
            s: sum(e.source == s for e in self.dataset.examples) for s in ("own", "transformed")
        }

    def summary(self, max_length: int | None) -> str:
        data = self.dataset
        items = data.settings["items"] - len(data.skipped)
        line = (
            f"{len(data.examples)} examples from {items} items ({self.sources}; "
            f"{len(data.skipped)} items without a target), {len(self.validation)} validation, "
            f"data version {data.version}"
        )
        if max_length is not None:
            line += f"; fitting on {len(self.train)} with ≤ {max_length} distractor tokens"
        return line


def fit_data(
    path: str | Path,
    answer: Answer,
    count: Callable[[str], int],
    *,
    items: int,
    validation: int,
    seed: int,
    max_length: int | None = None,
    log: Callable[[str], None] = print,
    **build_options: Any,
) -> FitData:
    """The fit's data: built (targets generated by ``answer``) and saved at ``path``, or loaded
    from it; the validation set likewise, next to it (``…-validation.json``), from
    ``validation`` items drawn with another seed. Examples longer than ``max_length`` distractor
    tokens are left out of both; a validation item that is also fitted is dropped."""
    path = Path(path)

    def make(n: int, seed: int, at: Path) -> Dataset:
        if at.is_file():
            data = Dataset.load(at, count)
            log(f"{at}: {len(data.examples)} examples (cached)")
            return data
        data = build(answer, count, items=n, seed=seed, **build_options)
        data.save(at)
        return data

    dataset = make(items, seed, path)
    val_path = path.with_name(f"{path.stem}-validation{path.suffix}")
    held = make(validation, seed + VALIDATION_SEED_OFFSET, val_path) if validation else None

    def short(e: Example) -> bool:
        return max_length is None or e.length <= max_length

    train = [e for e in dataset.examples if short(e)]
    fitted = {e.item for e in train}
    val = [] if held is None else [e for e in held.examples if short(e)][:validation]
    return FitData(dataset, train, [e for e in val if e.item not in fitted])
