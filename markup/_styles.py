"""Rich text as editors write it: inline CSS and presentational tags as importance.

People mark what matters with formatting. What an editor puts on the clipboard is rarely a bare
``<b>``: Google Docs writes ``<span style="font-weight:700">`` (and wraps the whole paste in a
``<b style="font-weight:normal">`` that is not bold at all), Word and LibreOffice write inline
CSS, ``<u>`` and ``<font color>``. This module reads an element's tag and its ``style``
attribute (with tinycss2, a real CSS tokenizer) into *signals*:

========== =================================================================================
bold       ``<b>``, ``<strong>``; ``font-weight`` bold, bolder or ≥ 600 (normal or < 600 undoes it)
underline  ``<u>``, ``<ins>``; ``text-decoration(-line)`` with underline (none undoes it)
color      ``color`` / ``<font color>`` that is a colour: not black, white or a grey
highlight  ``<mark>``; ``background(-color)`` that is neither transparent nor white
larger     ``font-size`` ≥ 1.3 × medium (16px, 12pt; keywords x-large, xx-large, larger…),
           ``<font size>`` ≥ 5 or +2
uppercase  ``text-transform: uppercase``
heading    ``<h1>`` … ``<h6>``
========== =================================================================================

Signals are inherited (a bold word inside an underlined sentence has both), and a
``StyleLevels`` map turns them into a level: by default any one signal is ``high`` and two or
more are ``hard`` (bold + underline, bold + red). ``display: none`` hides an element and its
content from the clean text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import tinycss2
import tinycss2.color3

from .document import Level

SIGNALS = ("bold", "underline", "color", "highlight", "larger", "uppercase", "heading")
_TAG_SIGNALS = {
    "b": "bold",
    "strong": "bold",
    "u": "underline",
    "ins": "underline",
    "mark": "highlight",
    **{f"h{i}": "heading" for i in range(1, 7)},
}
STYLE_TAGS = frozenset({*_TAG_SIGNALS, "font"})
MAX_STYLE_CHARS = 2048  # a style attribute is read up to this length (a tag is bounded too)


@dataclass(frozen=True)
class StyleLevels:
    """Which level each signal gives on its own (None: ignore it), and the level of two or
    more signals together. Configured as JSON, e.g. ``{"color": null, "combined": "high"}``:
    keys are signals or ``combined``, values a level name or null; what is not named keeps
    its default."""

    single: Mapping[str, Level | None] = field(
        default_factory=lambda: dict.fromkeys(SIGNALS, Level.HIGH)
    )
    combined: Level = Level.HARD

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | None) -> StyleLevels:
        if value is None or value == "":
            return cls()
        data = json.loads(value) if isinstance(value, str) else dict(value)
        if not isinstance(data, dict):
            raise ValueError("style levels must be a JSON object")
        single: dict[str, Level | None] = dict(cls().single)
        combined = Level.HARD
        for key, raw in data.items():
            if raw is not None and (not isinstance(raw, str) or Level.parse(raw) is None):
                raise ValueError(f"style level for {key!r} must be a level name or null")
            level = Level.parse(raw) if isinstance(raw, str) else None
            if key == "combined":
                if level is None:
                    raise ValueError("'combined' must be a level name")
                combined = level
            elif key in SIGNALS:
                single[key] = level
            else:
                raise ValueError(f"unknown style signal {key!r}; known: {', '.join(SIGNALS)}")
        return cls(single, combined)

    def level(self, signals: frozenset[str]) -> Level | None:
        counted = [s for s in signals if self.single.get(s) is not None]
        if not counted:
            return None
        if len(counted) >= 2:
            return self.combined
        return self.single[counted[0]]


DEFAULT_STYLE_LEVELS = StyleLevels()


@dataclass(frozen=True)
class Effect:
    add: frozenset[str] = frozenset()
    remove: frozenset[str] = frozenset()
    hidden: bool = False
    css: frozenset[str] = frozenset()  # the added signals that came from CSS
    via: str = ""  # what made the signals: "<u>", "font-weight:700; color:#c00"

    def apply(
        self, inherited: frozenset[str], inherited_css: frozenset[str]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The element's signals and which of them came from CSS, given its parent's."""
        signals = (inherited - self.remove) | self.add
        css = ((inherited_css - self.remove) - (self.add - self.css)) | self.css
        return signals, css


def effect(tag: str, attributes: Mapping[str, str]) -> Effect | None:
    """The signals an element adds and removes, or None when it has nothing to say."""
    return _effect(
        tag,
        attributes.get("style", "")[:MAX_STYLE_CHARS],
        attributes.get("color", "") if tag == "font" else "",
        attributes.get("size", "") if tag == "font" else "",
    )


@lru_cache(maxsize=4096)
def _effect(tag: str, style: str, font_color: str, font_size: str) -> Effect | None:
    # Editors repeat a handful of style strings thousands of times: each is read once.
    add: set[str] = set()
    remove: set[str] = set()
    via: list[str] = []
    signal = _TAG_SIGNALS.get(tag)
    if signal is not None:
        add.add(signal)
        via.append(f"<{tag}>")
    if tag == "font":
        if _salient_colour(font_color):
            add.add("color")
            via.append(f'<font color="{font_color}">')
        if _font_size_larger(font_size):
            add.add("larger")
            via.append(f'<font size="{font_size}">')
    css: set[str] = set()
    hidden = False
    if style.strip():
        for name, value in _declarations(style):
            found = _css_signal(name, value)
            if found is None:
                continue
            kind, on = found
            if kind == "hidden":
                hidden = hidden or on
                continue
            if on:
                add.add(kind)
                css.add(kind)
                remove.discard(kind)
                via.append(f"{name}:{value}")
            else:
                add.discard(kind)
                css.discard(kind)
                remove.add(kind)
    if not add and not remove and not hidden:
        return None
    return Effect(frozenset(add), frozenset(remove), hidden, frozenset(css), "; ".join(via))


def _declarations(style: str) -> list[tuple[str, str]]:
    out = []
    for item in tinycss2.parse_blocks_contents(style, skip_whitespace=True, skip_comments=True):
        if item.type == "declaration":
            value = tinycss2.serialize(item.value).strip().lower()
            out.append((item.lower_name, value.removesuffix("!important").strip()))
    return out


_NUMBER = re.compile(r"^([0-9]*\.?[0-9]+)\s*(px|pt|em|rem|%)?$")
_SIZE_KEYWORDS = {"x-large": 1.5, "xx-large": 2.0, "xxx-large": 3.0, "larger": 1.3, "large": 1.2}
_UNIT_TO_MEDIUM = {"px": 1 / 16, "pt": 1 / 12, "em": 1.0, "rem": 1.0, "%": 1 / 100}
LARGER = 1.3  # a font at least this many times medium reads as emphasis


def _css_signal(name: str, value: str) -> tuple[str, bool] | None:
    """``(signal, on)`` for one declaration, or None when it says nothing about importance."""
    if name == "font-weight":
        if value in ("bold", "bolder"):
            return "bold", True
        if value in ("normal", "lighter"):
            return "bold", False
        if value.isdigit():
            return "bold", int(value) >= 600
        return None
    if name in ("text-decoration", "text-decoration-line"):
        if "underline" in value.split():
            return "underline", True
        if value.split()[:1] == ["none"]:
            return "underline", False
        return None
    if name == "color":
        salient = _salient_colour(value)
        return None if salient is None else ("color", salient)
    if name in ("background", "background-color"):
        for token in value.split():
            colour = tinycss2.color3.parse_color(token)
            if isinstance(colour, tinycss2.color3.RGBA):
                white = min(colour.red, colour.green, colour.blue) > 0.94
                return "highlight", bool(colour.alpha > 0.1 and not white)
        return None
    if name == "font-size":
        ratio = _size_ratio(value)
        return None if ratio is None else ("larger", ratio >= LARGER)
    if name == "text-transform":
        return "uppercase", value == "uppercase"
    if name == "display":
        return "hidden", value == "none"
    return None


def _salient_colour(value: str) -> bool | None:
    """True for a colour that stands out from text (not black, white or grey); None when the
    value is no colour (inherit, currentColor, a typo)."""
    colour = tinycss2.color3.parse_color(value.strip()) if value.strip() else None
    if not isinstance(colour, tinycss2.color3.RGBA):
        return None
    channels = (float(colour.red), float(colour.green), float(colour.blue))
    return bool(colour.alpha > 0.1 and max(channels) - min(channels) > 0.25)


def _size_ratio(value: str) -> float | None:
    if value in _SIZE_KEYWORDS:
        return _SIZE_KEYWORDS[value]
    m = _NUMBER.match(value)
    if m is None:
        return None
    number, unit = float(m.group(1)), m.group(2) or "px"
    return number * _UNIT_TO_MEDIUM[unit]


def _font_size_larger(value: str) -> bool:
    value = value.strip()
    try:
        if value.startswith("+"):
            return int(value[1:]) >= 2
        return int(value) >= 5
    except ValueError:
        return False
