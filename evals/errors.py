"""The eval's errors about its input, in salience's tree (``markup.errors``)."""

from __future__ import annotations

from salience.markup.errors import SalienceError


class GridError(SalienceError, ValueError):
    """A grid that cannot run: a bad length, design, sample count or family."""

    code = "bad-grid"
    title = "Bad grid"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
