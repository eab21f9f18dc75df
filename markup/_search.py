"""A regex search over a long text, a window at a time.

A pattern tried at every position of a long hostile text ("<!" × 1 MiB) makes one search one
long call of the regex engine (100-200 ms), and CPython holds the GIL for the whole call, so a
server's event loop waits on it however the work is threaded. Searched a window at a time, the
same work comes in calls of a few milliseconds, between which other threads get their turn.
"""

from __future__ import annotations

import re

WINDOW = 65_536


def found(pattern: re.Pattern[str], text: str, longest: int) -> bool:
    """``pattern.search(text) is not None``, searched window by window. Exact when no match of
    ``pattern`` (with what its lookahead reads) is longer than ``longest``: windows overlap by
    that much, and a match cut short by a window's end is confirmed against the whole text."""
    size = len(text)
    if size <= WINDOW + longest:
        return pattern.search(text) is not None
    for start in range(0, size, WINDOW):
        end = min(size, start + WINDOW + longest)
        hit = pattern.search(text, start, end)
        while hit is not None:
            if hit.end() < end or end == size or pattern.match(text, hit.start()):
                return True
            hit = pattern.search(text, hit.start() + 1, end)
    return False
