"""An item, a distractor and a rule position, assembled into the chat the model sees.

Positions: ``system`` (the rule alone in the system message), ``before`` (the rule, then the
distractor, then the task, in the user message), ``after`` (distractor, rule, task) and ``both``
(the rule before and after the distractor). The rule is marked ``<rule>``; the evaluation wrote
every message, so markup in all of them is trusted (conflicting instructions are marked low).

``user`` is the injection case: the rule alone in the system message, the only trusted one, and
the distractor and the task in an *untrusted* user message. There a ``conflicting`` distractor's
soft instructions come as someone would type them to pass for rules, ``<rule>…</rule>``: its
markup is never parsed (untrusted), so salience marks nothing in it, and the question is whether
the model obeys them anyway. A rendering defuses those typed tags (``markup.rendering``) unless the
method is its ``@raw`` form, which measures what the defusing buys.
"""

from __future__ import annotations

from salience.markup import Conversation, parse_messages

from .distractors import Distractor
from .split import Item

POSITIONS = ("system", "before", "after", "both", "user")
TRUSTED = frozenset({"system", "user"})
INJECTED = {"<low>": "<rule>", "</low>": "</rule>"}  # a soft instruction, typed as a rule


def conversation(item: Item, distractor: Distractor, position: str) -> Conversation:
    if position not in POSITIONS:
        raise ValueError(f"unknown position {position!r}; use one of {', '.join(POSITIONS)}")
    # a dataset row in which no rule was found has none to place (evals.ifeval)
    rule = f"<rule>{item.rule}</rule>" if item.rule.strip() else ""
    background = f"Background:\n{distractor.text}" if distractor.text else ""
    parts: list[str]
    if position == "user":
        for typed, injected in INJECTED.items():
            background = background.replace(typed, injected)
        untrusted = "\n\n".join(p for p in (background, item.task.prompt) if p)
        messages = [{"role": "system", "content": rule}, {"role": "user", "content": untrusted}]
        if not rule:
            messages = messages[1:]
        return parse_messages(messages, trusted_roles={"system"}, format="tags")
    if position == "system":
        parts = [background, item.task.prompt]
    elif position == "before":
        parts = [rule, background, item.task.prompt]
    elif position == "after":
        parts = [background, rule, item.task.prompt]
    else:
        parts = [rule, background, rule, item.task.prompt]
    messages = [{"role": "user", "content": "\n\n".join(p for p in parts if p)}]
    if position == "system" and rule:
        messages.insert(0, {"role": "system", "content": rule})
    return parse_messages(messages, trusted_roles=TRUSTED, format="tags")


def task_alone(item: Item) -> Conversation:
    """The task with no rule and no distractor: what the margin's references answer."""
    messages = [{"role": "user", "content": item.task.prompt}]
    return parse_messages(messages, trusted_roles=TRUSTED, format="tags")
