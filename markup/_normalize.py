"""NFC normalisation that remembers where every character came from.

Errors and warnings must point at the text as the caller sent it, but parsing runs on the NFC
form. Nothing composes with, or reorders across, an ASCII character, so the text is cut before
every ASCII character and only the pieces that hold non-ASCII characters are normalised; offsets
inside a piece that changed length map to the piece's start. Lone surrogates become U+FFFD first.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable

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
    out: list[str] = []
    # (normalised start, original start, normalised length, original length) of changed pieces
    norm_starts: list[int] = []
    pieces: list[tuple[int, int, int]] = []
    pos = 0
    shift = 0  # normalised offset minus original offset, before the current piece
    for m in _NON_ASCII_PIECE.finditer(text):
        a, b = m.span()
        piece = text[a:b]
        normal = unicodedata.normalize("NFC", piece)
        if normal == piece:
            continue
        out.append(text[pos:a])
        out.append(normal)
        norm_starts.append(a + shift)
        pieces.append((a, len(normal), b - a))
        shift += len(normal) - (b - a)
        pos = b
    out.append(text[pos:])

    def to_original(offset: int) -> int:
        i = bisect_right(norm_starts, offset) - 1
        if i < 0:
            return offset
        orig_start, norm_len, orig_len = pieces[i]
        inside = offset - norm_starts[i]
        if inside < norm_len:
            return orig_start + (inside if norm_len == orig_len else 0)
        return orig_start + orig_len + (inside - norm_len)

    return "".join(out), to_original


def _identity(offset: int) -> int:
    return offset
