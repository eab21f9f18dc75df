"""NFC normalisation that remembers where every character came from.

Errors and warnings must point at the text as the caller sent it, but parsing runs on the NFC
form. Nothing composes with, or reorders across, an ASCII character, so the text is cut before
every ASCII character and only the pieces that hold non-ASCII characters are normalised; offsets
inside a piece that changed length map to the piece's start. Lone surrogates become U+FFFD first.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from ._splice import Splice

_NON_ASCII_PIECE = re.compile(r"[\x00-\x7f]?[^\x00-\x7f]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> str:
    """Lone surrogates (a JSON ``\\ud800`` escape, say) are no characters: U+FFFD each.

    One code point for one, so offsets do not move. Nothing downstream (UTF-8, tokenizers,
    JSON encoders) can take them.
    """
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def nfc_with_map(text: str) -> tuple[str, Callable[[int], int]]:
    """``(normalised, to_original)``: the NFC text and a map from its offsets to ``text``'s."""
    if text.isascii():
        return text, _identity
    text = replace_surrogates(text)
    if unicodedata.is_normalized("NFC", text):
        return text, _identity
    edits = []
    for m in _NON_ASCII_PIECE.finditer(text):
        normal = unicodedata.normalize("NFC", m.group())
        if normal != m.group():
            edits.append((m.start(), m.end(), normal))
    splice = Splice(text, edits)
    return splice.text, splice.to_old


def _identity(offset: int) -> int:
    return offset
