"""``tokenize``: a Document to token ids with importance markers, levels and exact offsets.

The clean text is cut at span boundaries; each piece is encoded on its own with
``encode_ordinary`` (so a literal ``<|imp:hard|>`` or ``<|endoftext|>`` in the text is ordinary
text, always), and the open/close marker ids of a span's level are put around its tokens.

Offsets are ``[start, end)`` in characters of the clean text. A token whose bytes are whole
characters decodes to exactly ``text[start:end]``. A token that begins or ends inside a multi-byte
character covers that whole character, so two neighbouring tokens may share one character; the
token's bytes are then a slice of ``text[start:end].encode()``. Markers are zero-width.

The result holds numpy arrays (the model side turns them into tensors without a copy);
``to_dict`` gives JSON-ready lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .document import LEVELS, Document, Level
from .encoding import ImportanceEncoding, load_encoding

# Level codes in the arrays: the index into LEVELS (hard=0, high=1, normal=2, low=3).
LEVEL_CODE = {level: code for code, level in enumerate(LEVELS)}
_NORMAL = LEVEL_CODE[Level.NORMAL]
_LEVEL_NAMES = np.array([level.value for level in LEVELS], dtype=object)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class TokenizedDocument:
    """Parallel arrays, one entry per token, markers included."""

    encoding: str
    ids: IntArray
    level_codes: npt.NDArray[np.uint8]  # index into markup.LEVELS
    starts: IntArray
    ends: IntArray
    markers: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def levels(self) -> list[Level]:
        return [LEVELS[c] for c in self.level_codes.tolist()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoding": self.encoding,
            "count": len(self.ids),
            "ids": self.ids.tolist(),
            "levels": _LEVEL_NAMES[self.level_codes].tolist(),
            "offsets": np.stack([self.starts, self.ends], axis=1).tolist(),
            "markers": self.markers.tolist(),
        }


def tokenize(
    document: Document, encoding: ImportanceEncoding | str = "cl100k_base"
) -> TokenizedDocument:
    enc = load_encoding(encoding) if isinstance(encoding, str) else encoding
    text = document.text
    # Pieces covering the text in order: (char start, char end, level code, marked?)
    piece_start: list[int] = []
    piece_end: list[int] = []
    piece_code: list[int] = []
    pos = 0
    for span in document.spans:
        if span.start > pos:
            piece_start.append(pos)
            piece_end.append(span.start)
            piece_code.append(-1)
        piece_start.append(span.start)
        piece_end.append(span.end)
        piece_code.append(LEVEL_CODE[span.level])
        pos = span.end
    if pos < len(text):
        piece_start.append(pos)
        piece_end.append(len(text))
        piece_code.append(-1)

    encode = _array_encoder(enc)
    encoded = [encode(text[a:b]) for a, b in zip(piece_start, piece_end, strict=True)]
    counts = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    n_text = int(counts.sum())
    text_ids = np.concatenate(encoded).astype(np.int64) if encoded else np.zeros(0, dtype=np.int64)
    text_starts, text_ends = _char_offsets(text, text_ids, enc)

    codes = np.asarray(piece_code, dtype=np.int64)
    marked = codes >= 0
    n_marked = int(marked.sum())
    if n_marked == 0:
        return TokenizedDocument(
            enc.name,
            text_ids,
            np.full(n_text, _NORMAL, dtype=np.uint8),
            text_starts,
            text_ends,
            np.zeros(n_text, dtype=np.bool_),
        )

    # Every marked piece adds an open marker before its tokens and a close marker after.
    marked_int = marked.astype(np.int64)
    markers_before = 2 * (np.cumsum(marked_int) - marked_int)  # markers ahead of each piece
    first_token = np.cumsum(counts) - counts  # index of each piece's first text token
    shift = np.repeat(markers_before + marked_int, counts)
    total = n_text + 2 * n_marked
    ids = np.empty(total, dtype=np.int64)
    level_codes = np.empty(total, dtype=np.uint8)
    starts = np.empty(total, dtype=np.int64)
    ends = np.empty(total, dtype=np.int64)
    markers = np.zeros(total, dtype=np.bool_)

    where = np.arange(n_text, dtype=np.int64) + shift
    ids[where] = text_ids
    level_codes[where] = np.repeat(np.where(marked, codes, _NORMAL), counts)
    starts[where] = text_starts
    ends[where] = text_ends

    k = np.flatnonzero(marked)
    open_at = first_token[k] + markers_before[k]
    close_at = open_at + counts[k] + 1
    open_ids = np.array([enc.open_ids[level] for level in LEVELS], dtype=np.int64)
    close_ids = np.array([enc.close_ids[level] for level in LEVELS], dtype=np.int64)
    span_start = np.asarray(piece_start, dtype=np.int64)[k]
    span_end = np.asarray(piece_end, dtype=np.int64)[k]
    for at, id_table, offset in ((open_at, open_ids, span_start), (close_at, close_ids, span_end)):
        ids[at] = id_table[codes[k]]
        level_codes[at] = codes[k]
        starts[at] = offset
        ends[at] = offset
        markers[at] = True
    return TokenizedDocument(enc.name, ids, level_codes, starts, ends, markers)


_NO_SPECIALS: frozenset[str] = frozenset()


def _array_encoder(enc: ImportanceEncoding) -> Callable[[str], npt.NDArray[np.integer[Any]]]:
    """``encode_ordinary`` straight into a numpy array, skipping the Python list.

    tiktoken's buffer encoder with no special token allowed encodes special-token strings as
    ordinary text, exactly as ``encode_ordinary`` does (the tests check both agree). If this
    tiktoken lacks it, fall back to the list-returning call.
    """
    core = getattr(enc.encoding, "_core_bpe", None)
    to_buffer = getattr(core, "encode_to_tiktoken_buffer", None)
    if to_buffer is None:
        fallback = enc.encoding.encode_ordinary
        return lambda piece: np.asarray(fallback(piece), dtype=np.int64)
    ordinary = enc.encoding.encode_ordinary

    def encode(piece: str) -> npt.NDArray[np.integer[Any]]:
        try:
            return np.frombuffer(to_buffer(piece, _NO_SPECIALS), dtype=np.uint32)
        except UnicodeEncodeError:  # lone surrogates: tiktoken's own call replaces them
            return np.asarray(ordinary(piece), dtype=np.int64)

    return encode


def _char_offsets(text: str, ids: IntArray, enc: ImportanceEncoding) -> tuple[IntArray, IntArray]:
    if len(ids) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    lengths = enc.token_byte_lengths[ids]
    byte_ends = np.cumsum(lengths)
    byte_starts = byte_ends - lengths
    if text.isascii():
        return byte_starts, byte_ends
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    char_of_byte = np.cumsum((data & 0xC0) != 0x80) - 1
    return char_of_byte[byte_starts], char_of_byte[byte_ends - 1] + 1
