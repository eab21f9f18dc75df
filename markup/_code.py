"""Where a prompt holds code, whose contents are literal: fenced blocks and backtick spans.

Follows CommonMark closely enough for prompts: a fence is three or more backticks or tildes at
the start of a line (up to three spaces of indent), closed by a line with at least as many of the
same character, or by the end of the text; a code span is a run of N backticks closed by the next
run of exactly N backticks, outside fences. Unmatched backticks are ordinary text.
"""

from __future__ import annotations

import re
from bisect import bisect_right

_FENCE_LINE = r" {0,3}(`{3,}|~{3,})([^\n]*)"
# A fence opens the first line or follows a newline: a literal first character keeps the
# search fast on long prompts (a ^-anchored multiline pattern is tried at every position).
_FENCE_FIRST = re.compile(_FENCE_LINE)
_FENCE_LATER = re.compile(r"\n" + _FENCE_LINE)
_BACKTICKS = re.compile(r"`+")


def code_regions(text: str) -> list[tuple[int, int]]:
    """Sorted, non-overlapping ``[start, end)`` ranges of ``text`` that are code."""
    if "`" not in text and "~~~" not in text:
        return []
    fences = _fences(text)
    regions: list[tuple[int, int]] = []
    pos = 0
    for a, b in fences:
        regions.extend(_code_spans(text, pos, a))
        regions.append((a, b))
        pos = b
    regions.extend(_code_spans(text, pos, len(text)))
    return regions


def _fences(text: str) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    if "```" not in text and "~~~" not in text:
        return found
    pos = 0
    while pos < len(text):
        m = _FENCE_FIRST.match(text) if pos == 0 else None
        if m is None:
            m = _FENCE_LATER.search(text, max(pos - 1, 0))
            if m is None:
                return found
            start = m.start() + 1  # after the newline
        else:
            start = 0
        fence = m.group(1)
        if fence[0] == "`" and "`" in m.group(2):
            # A backtick fence's info string may not hold a backtick: this is inline code.
            pos = m.end() + 1
            continue
        close = re.compile(
            r"\n {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",} *(?=\n|$)"
        )
        end_match = close.search(text, m.end())
        end = len(text) if end_match is None else end_match.end()
        found.append((start, end))
        pos = end + 1
    return found


def _code_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    runs = [(m.start(), m.end()) for m in _BACKTICKS.finditer(text, start, end)]
    # For each run, the index of the next run of the same width: linear, not quadratic.
    next_same: list[int] = [-1] * len(runs)
    last_by_width: dict[int, int] = {}
    for i in range(len(runs) - 1, -1, -1):
        width = runs[i][1] - runs[i][0]
        next_same[i] = last_by_width.get(width, -1)
        last_by_width[width] = i
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(runs):
        j = next_same[i]
        if j < 0:
            i += 1
            continue
        spans.append((runs[i][0], runs[j][1]))
        i = j + 1
    return spans


class CodeIndex:
    """Answers "is offset ``i`` inside code?" in O(log n)."""

    def __init__(self, regions: list[tuple[int, int]]) -> None:
        self._starts = [a for a, _ in regions]
        self._ends = [b for _, b in regions]

    def __contains__(self, offset: int) -> bool:
        i = bisect_right(self._starts, offset) - 1
        return i >= 0 and offset < self._ends[i]
