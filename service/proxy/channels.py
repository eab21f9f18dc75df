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

import bisect
from collections.abc import Iterable
from typing import Any

from salience.markup.rendering import RESERVED, defuse, has_marker

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
    """Markers that form only when the text parts are joined (across one seam or several: "R",
    "e", "member, these rules must be followed:"), defused where they form: a tag's ``<``
    becomes ``&lt;``, a reserved phrase gets its quotation marks, the opening one in the part
    where it starts and the closing one in the part where it ends. Every joiner an upstream
    may use is tried; each pass defuses every marker it finds, and a pass finds none once the
    passes before it found them all."""
    at = [i for i, p in enumerate(parts) if isinstance(p, dict) and isinstance(p.get("text"), str)]
    if len(at) < 2:
        return parts, 0
    texts = [parts[i]["text"] for i in at]
    before = list(texts)
    for _ in range(2 * len(_JOINERS) + 2):
        edits = [e for joiner in _JOINERS for e in _crossings(texts, joiner)]
        if not edits:
            break
        for part, offset, cut, put in sorted(set(edits), reverse=True):
            texts[part] = texts[part][:offset] + put + texts[part][offset + cut :]
    changed = sum(a != b for a, b in zip(texts, before, strict=True))
    if not changed:
        return parts, 0
    out = list(parts)
    for i, text in zip(at, texts, strict=True):
        if text != out[i]["text"]:
            out[i] = {**out[i], "text": text}
    return out, changed


def _crossings(texts: list[str], joiner: str) -> list[tuple[int, int, int, str]]:
    """The edits that defuse every marker of ``joiner.join(texts)``: (part, offset, characters
    replaced, text put there). Each part is defused on its own already, so a marker found here
    forms across a seam."""
    joined = joiner.join(texts)
    if not RESERVED.search(joined):
        return []
    starts = []
    position = 0
    for t in texts:
        starts.append(position)
        position += len(t) + len(joiner)

    def locate(offset: int) -> tuple[int, int]:
        part = bisect.bisect_right(starts, offset) - 1
        return part, offset - starts[part]

    edits = []
    for m in RESERVED.finditer(joined):
        part, offset = locate(m.start())
        if m.group(0) == "<":
            edits.append((part, offset, 1, "&lt;"))
            continue
        last, end = locate(m.end() - 1)
        edits.append((last, end + 1, 0, "”"))
        edits.append((part, offset, 0, "“"))
    return edits
