"""Text with ranges replaced, and offsets mapped between the text before and after.

The parser edits text twice: NFC normalisation replaces the pieces whose composed form differs,
and building a Document removes markup (tags, emphasis markers, callout prefixes) or replaces it
(character references, line breaks). Offsets cross both edits: marks found in the source move to
the clean text (``to_new``), and places found in the normalised text point back into the text
as the caller sent it (``to_old``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable


class Splice:
    """``text`` with each ``(start, end, replacement)`` of ``edits`` applied.

    Edits are taken in order of (start, end). Where two overlap (a nested callout's marker line
    inside the outer quote's prefix), their union goes: the later one keeps only what lies past
    the earlier, and one wholly inside it is dropped.
    """

    __slots__ = ("_lengths", "_new", "_old", "_old_ends", "text")

    def __init__(self, text: str, edits: Iterable[tuple[int, int, str]]) -> None:
        self._old: list[int] = []  # where each applied edit begins in the original text
        self._old_ends: list[int] = []  # and ends there
        self._new: list[int] = []  # where its replacement begins in the new text
        self._lengths: list[int] = []  # the replacement's length
        pieces: list[str] = []
        pos = new_pos = 0
        for a, b, replacement in sorted(edits, key=lambda e: (e[0], e[1])):
            if a < pos:
                if b <= pos:
                    continue
                a = pos
            pieces.append(text[pos:a])
            new_pos += a - pos
            self._old.append(a)
            self._old_ends.append(b)
            self._new.append(new_pos)
            self._lengths.append(len(replacement))
            pieces.append(replacement)
            new_pos += len(replacement)
            pos = b
        pieces.append(text[pos:])
        self.text = "".join(pieces)

    def to_new(self, offset: int) -> int:
        """An offset of the original text in the new one. The start of a replaced range goes to
        its replacement's start; any other offset inside it (its end too) to the replacement's
        end, so that a span never takes in markup that was removed at its edge."""
        i = bisect_right(self._old, offset) - 1
        if i < 0:
            return offset
        if offset == self._old[i]:
            return self._new[i]
        if offset <= self._old_ends[i]:
            return self._new[i] + self._lengths[i]
        return self._new[i] + self._lengths[i] + (offset - self._old_ends[i])

    def to_old(self, offset: int) -> int:
        """An offset of the new text in the original one. Inside a replacement as long as what
        it replaced, the same position; inside one of another length, the replaced range's
        start (no character of it corresponds to one of the original)."""
        i = bisect_right(self._new, offset) - 1
        if i < 0:
            return offset
        inside = offset - self._new[i]
        length = self._lengths[i]
        if inside < length:
            same_length = length == self._old_ends[i] - self._old[i]
            return self._old[i] + (inside if same_length else 0)
        return self._old_ends[i] + (inside - length)
