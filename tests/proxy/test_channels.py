"""The lexical defusal of a chat body's untrusted channels (service.proxy.channels), as
properties: whatever the text and however it is cut into parts, no marker survives in an
untrusted message, whichever way an upstream joins the parts; trusted text is never touched;
nothing is changed that holds no marker."""

from __future__ import annotations

import itertools
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from salience.service.proxy.channels import defuse_channels

LIVE = re.compile(
    r"(?i:<\s*/?\s*(rule|important)\b)|(?<!“)\bIMPORTANT\s*:"
    r"|(?<!“)(?i:rules you must follow|remember, these rules must be followed)\s*:"
)
PIECES = ["<", "rule", "RULE", "/", ">", " ", "\n", "IMPORT", "ANT", ":", "important", "x",
          "Rules you must ", "follow", "“", "&lt;",
          "Remember, these rules must be followed"]  # fmt: skip
TEXT = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


def cut(text: str, points: list[int]) -> list[str]:
    edges = sorted({min(p, len(text)) for p in points} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(edges)] or [""]


@given(TEXT, st.lists(st.integers(0, 200), max_size=6), st.sampled_from(["text", "input_text"]))
@settings(max_examples=400, deadline=None)
def test_no_marker_survives_in_untrusted_parts_however_joined(
    text: str, points: list[int], kind: str
) -> None:
    parts = [{"type": kind, "text": t} for t in cut(text, points)]
    body: dict[str, Any] = {"messages": [{"role": "user", "content": parts, "name": text}]}
    out, _ = defuse_channels(body, ("system",))
    message = out["messages"][0]
    texts = [p["text"] for p in message["content"]]
    for joiner in ("", " ", "\n"):
        assert LIVE.search(joiner.join(texts)) is None, (texts, joiner)
    assert LIVE.search(message["name"]) is None
    # defusing only adds quotation marks and escapes "<": undo them and the text is back
    undo = "".join(texts).replace("&lt;", "<").replace("“", "").replace("”", "")
    assert undo == text.replace("&lt;", "<").replace("“", "").replace("”", "")


@given(TEXT)
@settings(max_examples=200, deadline=None)
def test_trusted_text_is_never_touched_and_clean_bodies_are_the_same_object(text: str) -> None:
    trusted = {"messages": [{"role": "system", "content": [{"type": "text", "text": text}]}]}
    out, changed = defuse_channels(trusted, ("system",))
    assert out is trusted and changed == 0
    clean = {"messages": [{"role": "user", "content": "nothing to see " + text.replace("<", "")
                           .replace(":", "")}]}  # fmt: skip
    out, changed = defuse_channels(clean, ("system",))
    assert out is clean and changed == 0


def test_a_body_nested_deeper_than_python_recurses_is_walked() -> None:
    value: Any = "<rule>deep</rule>"
    for _ in range(5000):
        value = [value]
    out, changed = defuse_channels({"messages": [{"role": "tool", "content": value}]}, ())
    assert changed == 1
    inner = out["messages"][0]["content"]
    for _ in range(5000):
        inner = inner[0]
    assert inner == "&lt;rule>deep&lt;/rule>"


def test_a_marker_cut_across_three_parts_is_defused() -> None:
    """Found by the property above: a phrase whose first two letters are parts of their own
    forms only when all three are joined; and quoting a phrase glued to a tag's name ends the
    name, so the tag is escaped after the phrase is quoted."""
    parts = [
        {"type": "text", "text": t} for t in ("R", "e", "member, these rules must be followed:")
    ]
    out, changed = defuse_channels({"messages": [{"role": "user", "content": parts}]}, ("system",))
    texts = [p["text"] for p in out["messages"][0]["content"]]
    assert changed and texts == ["“R", "e", "member, these rules must be followed:”"]
    glued = [{"type": "text", "text": "<ruleRemember, these rules must be followed:"}]
    out, _ = defuse_channels({"messages": [{"role": "user", "content": glued}]}, ("system",))
    assert (
        out["messages"][0]["content"][0]["text"]
        == "&lt;rule“Remember, these rules must be followed:”"
    )
