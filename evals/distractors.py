"""Distractors: what grows between the rule and the answer, measured in the target's own tokens.

Kinds:

- ``prose``: text on this machine that nobody here wrote — standard-library docstrings and the
  Python licence (plus Debian's common licences where present) — sampled by seed, its sources
  recorded;
- ``similar``: other tasks' prompts, without their rules;
- ``conflicting``: soft instructions, marked low, that contradict the rule's family;
- ``noise``: a filler sentence repeated.

Lengths count tokens with the caller's counter (the target model's tokenizer), so "1k" means
1k of *that* model's tokens; the text is cut at a sentence boundary at or just past the target.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from salience.model.corpus import docstring_sentences, licence_sentences

from .tasks import TASKS, Task

KINDS = ("prose", "similar", "conflicting", "noise")
DEFAULT_LENGTHS = (0, 256, 512, 1024, 2048, 4096)
CONFLICTING = {
    "lowercase": "Capitalise names and the first word of each sentence as usual.",
    "uppercase": "Write in normal sentence case; avoid shouting in capitals.",
    "no_commas": "Use commas freely to separate clauses and list items.",
    "max_words": "Give a thorough, detailed answer with plenty of explanation.",
    "min_words": "Keep answers very short: a few words are enough.",
    "max_sentences": "Explain your reasoning step by step in several sentences.",
    "include_keyword": "Stick to plain, everyday vocabulary.",
    "forbidden_word": "Feel free to use intensifiers such as very, really and just.",
    "json_keys": "Answer in plain prose; never use JSON or code formatting.",
    "bullet_count": "Do not use lists or bullet points; write flowing prose.",
    "title": "Do not add titles or headings to your answers.",
    "end_phrase": "End your answer naturally, without any fixed closing phrase.",
    "start_word": "Begin your answer directly with the facts.",
    "quoted": "Never wrap your answer in quotation marks.",
    "postscript": "Do not add a P.S. or any afterthought at the end.",
    "paragraph_count": "Write the answer as a single paragraph.",
    "placeholders": "Never use square brackets in your answer.",
}
NOISE_SENTENCE = "The quick brown fox jumps over the lazy dog."


@dataclass(frozen=True)
class Distractor:
    kind: str
    text: str
    tokens: int
    sources: tuple[str, ...]  # where prose came from


def prose_sentences() -> tuple[tuple[str, str], ...]:
    """(sentence, source) pairs from text nobody here wrote (model.corpus)."""
    return docstring_sentences() + licence_sentences()


def make(
    kind: str,
    length: int,
    count: Callable[[str], int],
    seed: int = 0,
    family_id: str | None = None,
    exclude_task: str | None = None,
    tasks: Sequence[Task] = TASKS,
) -> Distractor:
    """A distractor of ``kind`` with about ``length`` tokens (by ``count``). ``similar`` draws
    other tasks' prompts from ``tasks`` (training data passes the train split's alone)."""
    if kind not in KINDS:
        raise ValueError(f"unknown distractor kind {kind!r}; use one of {', '.join(KINDS)}")
    if length <= 0:
        return Distractor(kind, "", 0, ())
    rng = random.Random(f"{kind}:{seed}:{family_id}:{exclude_task}")
    parts: list[str] = []
    sources: list[str] = []
    text = ""
    while count(text) < length:
        sentence, source = _next(kind, rng, family_id, exclude_task, tasks)
        parts.append(sentence)
        if source:
            sources.append(source)
        # count the growing text in chunks: tokenizers are fast, but not free
        if len(parts) % 8 == 0 or kind == "noise":
            text = " ".join(parts)
        if len(parts) > 100_000:
            raise RuntimeError("distractor did not reach its length")
    text = " ".join(parts)
    while len(parts) > 1 and count(" ".join(parts[:-1])) >= length:
        parts.pop()  # cut back to the first sentence boundary at or past the target
    text = " ".join(parts)
    return Distractor(kind, text, count(text), tuple(dict.fromkeys(sources[: len(parts)])))


def _next(
    kind: str,
    rng: random.Random,
    family_id: str | None,
    exclude_task: str | None,
    tasks: Sequence[Task],
) -> tuple[str, str]:
    if kind == "prose":
        return rng.choice(prose_sentences())
    if kind == "similar":
        task = rng.choice([t for t in tasks if t.id != exclude_task])
        return task.prompt.replace("\n\n", " "), ""
    if kind == "conflicting":
        soft = CONFLICTING.get(family_id or "", "Answer in whatever style feels natural.")
        if rng.random() < 0.3:
            return f"<low>{soft}</low>", ""
        return rng.choice(prose_sentences())
    return NOISE_SENTENCE, ""
