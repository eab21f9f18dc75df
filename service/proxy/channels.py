"""Every channel of a chat body that can carry a typed rule marker to a model, defused without
parsing anything.

The renderings defuse the text they render (``markup.rendering``). A chat body carries more text
than that, and a body that cannot be annotated is not rendered at all, so this module defuses
the rest lexically, on every path (rewritten, passed on with the method off, failed open):

- in an untrusted message (a role outside the trusted ones): every string in it, whatever field
  or part type holds it (``content``, ``text``/``input_text``/``output_text`` parts, ``refusal``,
  ``name``, ``tool_calls[].function.arguments``, fields no shape lists yet), the role excepted;
- in a trusted message: every string except the author's own text (a string ``content`` and the
  ``text`` of its text parts), which the rendering handles, or which fail-open sends as written;
- after a rendering (``rendered=True``), the text it wrote is left alone in every message: it
  defused that text itself, and added salience's own markers to it (echo's rule list);
- across the text parts of an untrusted message: a marker split over two parts (``<ru`` +
  ``le>``, ``IMPORT`` + ``ANT:``) that an upstream joining the parts would see whole.

Nothing here parses, recurses or fails: a body nested arbitrarily deep, or of any shape, is
walked with an explicit stack, and anything that is not a list of message objects is left alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from salience.markup.rendering import RESERVED, defuse, has_marker

# how far a split marker can reach into each of two parts, beyond the blanks at the seam: the
# longest marker ("Remember, these rules must be followed:") is 40 characters
_SEAM = 64
# what an upstream may put between two text parts when it joins them
_JOINERS = ("", " ", "\n")


def defuse_channels(
    body: dict[str, Any], trusted_roles: Iterable[str], rendered: bool = False
) -> tuple[dict[str, Any], int]:
    """``body`` with every untrusted channel of its messages defused (see the module), and how
    many strings changed; ``rendered``: the messages' text is a rendering's output. The body is
    not modified; changed containers are copies."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body, 0
    trusted = {r.lower() for r in trusted_roles}
    changed = 0
    out: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        role = message.get("role")
        is_trusted = isinstance(role, str) and role.lower() in trusted
        new, n = _message(message, is_trusted, rendered)
        out.append(new)
        changed += n
    if not changed:
        return body, 0
    return {**body, "messages": out}, changed


def _message(message: dict[str, Any], trusted: bool, rendered: bool) -> tuple[dict[str, Any], int]:
    changed = 0
    new: dict[str, Any] | None = None
    for key, value in message.items():
        if key == "role":
            continue
        if key == "content" and (trusted or rendered):
            replaced, n = _besides_text(value)
        else:
            replaced, n = _tree(value)
        if key == "content" and not trusted and isinstance(replaced, list):
            replaced, seams = _seams(replaced)
            n += seams
        if n:
            if new is None:
                new = dict(message)
            new[key] = replaced
            changed += n
    return (new if new is not None else message), changed


def _besides_text(content: Any) -> tuple[Any, int]:
    """A content whose text (a string, or the ``text`` of its text parts) is left as it is:
    everything else in its parts is defused."""
    if not isinstance(content, list):
        return content, 0
    changed = 0
    parts = list(content)
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            parts[i], n = _tree(part)
        else:
            keep = part.get("type") == "text" and isinstance(part.get("text"), str)
            rest = {k: v for k, v in part.items() if not (keep and k == "text")}
            new_rest, n = _tree(rest)
            if n:
                parts[i] = {**new_rest, "text": part["text"]} if keep else new_rest
        changed += n
    return (parts if changed else content), changed


def _tree(value: Any) -> tuple[Any, int]:
    """``value`` with every string in it defused (an explicit stack: any depth), and how many
    strings changed. Containers are copied only where something in them changed."""
    if isinstance(value, str):
        new = defuse(value) if has_marker(value) else value
        return new, int(new is not value)
    if not isinstance(value, dict | list):
        return value, 0
    # first pass: find the strings that need defusing, with their path
    hits: list[tuple[tuple[Any, ...], str]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if has_marker(item):
                hits.append((path, defuse(item)))
        elif isinstance(item, dict):
            stack.extend(((*path, k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in enumerate(item))
    if not hits:
        return value, 0
    # second pass: copy the containers on each hit's path, then write the defused string
    root: list[Any] = [value]
    copied: set[tuple[Any, ...]] = set()
    for path, new in hits:
        holder: Any = root
        key: Any = 0
        for depth, step in enumerate(path):
            prefix = path[:depth]
            if prefix not in copied:
                inner = holder[key]
                holder[key] = dict(inner) if isinstance(inner, dict) else list(inner)
                copied.add(prefix)
            holder, key = holder[key], step
        holder[key] = new
    return root[0], len(hits)


def _seams(parts: list[Any]) -> tuple[list[Any], int]:
    """Markers that form only when consecutive text parts are joined, defused at the seam: a
    tag's ``<`` in the first part becomes ``&lt;``, a reserved word gets its quotation marks on
    both sides of the seam."""
    texts = [
        i for i, p in enumerate(parts) if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]
    changed = 0
    out = parts
    for left, right in itertools.pairwise(texts):
        a, b = out[left]["text"], out[right]["text"]
        new_a, new_b = _fix_seam(a, b)
        if (new_a, new_b) != (a, b):
            if out is parts:
                out = list(parts)
            out[left] = {**out[left], "text": new_a}
            out[right] = {**out[right], "text": new_b}
            changed += 1
    return out, changed


def _fix_seam(a: str, b: str) -> tuple[str, str]:
    for _ in range(8):  # each fix removes one crossing marker; a seam holds very few
        crossing = _crossing(a, b)
        if crossing is None:
            return a, b
        start, end = crossing  # in a's and b's own offsets: start into a, end into b
        if a[start] == "<":
            a = a[:start] + "&lt;" + a[start + 1 :]
        else:
            a, b = a[:start] + "“" + a[start:], b[:end] + "”" + b[end:]
    return a, b


def _crossing(a: str, b: str) -> tuple[int, int] | None:
    """The first marker that exists only across the seam of ``a`` and ``b`` (each already
    defused on its own) under some joiner, as (its start in ``a``, its end in ``b``), or None."""
    blanks_a = len(a) - len(a.rstrip())
    blanks_b = len(b) - len(b.lstrip())
    tail_from = max(0, len(a) - blanks_a - _SEAM)
    tail, head = a[tail_from:], b[: blanks_b + _SEAM]
    seam = len(tail)
    for joiner in _JOINERS:
        joined = tail + joiner + head
        for m in RESERVED.finditer(joined):
            if m.start() >= seam:
                break  # the rest lies in b alone, which is defused
            if m.start() == 0 and tail_from > 0:
                continue  # cut out of its context (a word boundary, a quotation mark)
            if m.group(0) == "<":  # a tag: its name (the lookahead) reaches past the seam
                return tail_from + m.start(), 0
            if m.end() > seam + len(joiner):  # a word that ends in b
                return tail_from + m.start(), m.end() - seam - len(joiner)
    return None
