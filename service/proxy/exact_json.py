"""JSON for bodies the proxy passes on: fast (orjson), and exact where orjson would not be.

orjson reads an integer wider than 64 bits as a float and cannot write one back, so a request's
``"seed": 123456789012345678901234567890`` would reach the upstream as ``1.2345678901234568e+29``.
A body holding a run of 19 or more digits is read and written by the standard library instead,
which keeps every integer exact; so is one with a lone surrogate escape (``"\\ud800"``: JSON,
which orjson refuses). Every other body takes orjson's path. Both read strict JSON
only (no ``NaN``/``Infinity``), and both raise ``ValueError`` with the character offset (``pos``)
of the fault where they know it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# 2**63 has 19 digits: anything shorter fits in 64 bits. A run of 19 digits is found by mapping
# every digit to "9" and everything else to "." and looking for nineteen "9"s: 1 ms a MiB, where
# the regex \d{19} takes 9 ms (in one call, which holds the GIL).
_DIGIT_MAP = bytes(0x39 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))
_NINETEEN = b"9" * 19


def _long_number(raw: bytes) -> bool:
    return _NINETEEN in raw.translate(_DIGIT_MAP)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes) -> Any:
    if not _long_number(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            if "surrogate" not in str(error):
                raise
            # a lone surrogate escape ("\ud800") is JSON, which orjson refuses to read
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        # an integer wider than 64 bits, a lone surrogate (only the exact reader makes those),
        # or a nesting deeper than orjson writes: escaped to ASCII, every string survives
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        return text.encode()
