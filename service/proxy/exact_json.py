"""JSON for bodies the proxy passes on: fast (orjson), and exact where orjson would not be.

orjson reads an integer wider than 64 bits as a float and cannot write one back, so a request's
``"seed": 123456789012345678901234567890`` would reach the upstream as ``1.2345678901234568e+29``.
A body holding a run of 19 or more digits is read and written by the standard library instead,
which keeps every integer exact; every other body takes orjson's path. Both read strict JSON
only (no ``NaN``/``Infinity``), and both raise ``ValueError`` with the character offset (``pos``)
of the fault where they know it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_NUMBER = re.compile(rb"\d{19}")  # 2**63 has 19 digits: anything shorter fits in 64 bits


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(raw: bytes) -> Any:
    if not _LONG_NUMBER.search(raw):
        return orjson.loads(raw)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer wider than 64 bits (only the exact reader makes those)
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
