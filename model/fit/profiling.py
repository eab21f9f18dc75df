"""A small built-in profiling set: rule-following prompts whose compliant answers are known.

Until the evaluation's train split exists, PASTA's head profiling needs items of its own: a rule
the model should obey, a distracting background, a question, and an answer that obeys the rule
and is correct. The background is text from the standard library's docstrings, chosen by seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from salience.markup import Conversation, parse_messages

from ..corpus import docstring_sentences

QUESTIONS = [
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("How many days are in a week?", "There are seven days in a week."),
    ("What colour is the sky on a clear day?", "The sky is blue on a clear day."),
    ("What is two plus three?", "Two plus three is five."),
]
RULES: list[tuple[str, object]] = [
    ("Answer in all capital letters.", str.upper),
    ("Answer in all lowercase letters.", str.lower),
    ("Start your answer with the word 'Yes,'.", lambda a: "Yes, " + a[0].lower() + a[1:]),
    ("End your answer with the words 'That is all.'", lambda a: a + " That is all."),
    ("Wrap your whole answer in double quotation marks.", lambda a: f'"{a}"'),
    ("Do not use any commas in your answer.", lambda a: a.replace(",", "")),
]


class Scored(Protocol):
    """What profiling needs of an item: a prompt and an answer that obeys its rule."""

    @property
    def conversation(self) -> Conversation: ...

    @property
    def target(self) -> str: ...


@dataclass(frozen=True)
class ProfileItem:
    conversation: Conversation
    target: str
    rule: str


def _sentences() -> list[str]:
    return [sentence for sentence, _ in docstring_sentences() if len(sentence) < 200]


def profiling_items(
    n: int = 12, distractor_sentences: int = 12, seed: int = 0
) -> list[ProfileItem]:
    rng = random.Random(seed)
    sentences = _sentences()
    items = []
    for i in range(n):
        rule, transform = RULES[i % len(RULES)]
        question, answer = QUESTIONS[(i // len(RULES)) % len(QUESTIONS)]
        background = " ".join(rng.sample(sentences, distractor_sentences))
        content = f"<rule>{rule}</rule>\n\nBackground notes:\n{background}\n\n{question}"
        conversation = parse_messages(
            [{"role": "user", "content": content}], trusted_roles={"user"}
        )
        target = transform(answer)  # type: ignore[operator]
        items.append(ProfileItem(conversation, str(target), rule))
    return items
