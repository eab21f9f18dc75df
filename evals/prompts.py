"""An item, a distractor and a rule position, assembled into the chat the model sees.

Positions: ``system`` (the rule alone in the system message), ``before`` (the rule, then the
distractor, then the task, in the user message), ``after`` (distractor, rule, task) and ``both``
(the rule before and after the distractor). The rule is marked ``<rule>``; the evaluation wrote
every message, so markup in all of them is trusted (conflicting instructions are marked low).
"""

from __future__ import annotations

from markup import Conversation, parse_messages

from .distractors import Distractor
from .split import Item

POSITIONS = ("system", "before", "after", "both")
TRUSTED = frozenset({"system", "user"})


def conversation(item: Item, distractor: Distractor, position: str) -> Conversation:
    if position not in POSITIONS:
        raise ValueError(f"unknown position {position!r}; use one of {', '.join(POSITIONS)}")
    rule = f"<rule>{item.rule}</rule>"
    background = f"Background:\n{distractor.text}" if distractor.text else ""
    parts: list[str]
    if position == "system":
        parts = [background, item.task.prompt]
    elif position == "before":
        parts = [rule, background, item.task.prompt]
    elif position == "after":
        parts = [background, rule, item.task.prompt]
    else:
        parts = [rule, background, rule, item.task.prompt]
    messages = [{"role": "user", "content": "\n\n".join(p for p in parts if p)}]
    if position == "system":
        messages.insert(0, {"role": "system", "content": rule})
    return parse_messages(messages, trusted_roles=TRUSTED, format="tags")


def task_alone(item: Item) -> Conversation:
    """The task with no rule and no distractor: what the margin's references answer."""
    messages = [{"role": "user", "content": item.task.prompt}]
    return parse_messages(messages, trusted_roles=TRUSTED, format="tags")
