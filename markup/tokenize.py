"""``tokenize``: a Document to token ids with importance markers, levels and exact offsets.

The clean text is cut at span boundaries; each piece is encoded on its own with
``encode_ordinary`` (so a literal ``<|imp:hard|>`` or ``<|endoftext|>`` in the text is ordinary
text, always), and the open/close marker ids of a span's level are put around its tokens.

Offsets are ``[start, end)`` in characters of the clean text. A token whose bytes are whole
characters decodes to exactly ``text[start:end]``. A token that begins or ends inside a multi-byte
character covers that whole character, so two neighbouring tokens may share one character; the
token's bytes are then a slice of ``text[start:end].encode()``. Markers are zero-width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .document import Document, Level
from .encoding import ImportanceEncoding, load_encoding


@dataclass(frozen=True, slots=True)
class TokenizedDocument:
    """Parallel lists: one entry per token, markers included."""

    encoding: str
    ids: list[int]
    levels: list[Level]
    starts: list[int]
    ends: list[int]
    markers: list[bool]

    def __len__(self) -> int:
        return len(self.ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoding": self.encoding,
            "count": len(self.ids),
            "ids": self.ids,
            "levels": [level.value for level in self.levels],
            "offsets": [[a, b] for a, b in zip(self.starts, self.ends, strict=True)],
            "markers": self.markers,
        }


def tokenize(
    document: Document, encoding: ImportanceEncoding | str = "cl100k_base"
) -> TokenizedDocument:
    enc = load_encoding(encoding) if isinstance(encoding, str) else encoding
    text = document.text
    # (start, end, level or None for unmarked) pieces covering the text in order
    pieces: list[tuple[int, int, Level | None]] = []
    pos = 0
    for span in document.spans:
        if span.start > pos:
            pieces.append((pos, span.start, None))
        pieces.append((span.start, span.end, span.level))
        pos = span.end
    if pos < len(text):
        pieces.append((pos, len(text), None))

    encode = enc.encoding.encode_ordinary
    encoded = [encode(text[a:b]) for a, b, _ in pieces]
    flat = [t for ids in encoded for t in ids] if len(encoded) != 1 else encoded[0]
    starts, ends = _char_offsets(text, flat, enc)

    ids: list[int] = []
    levels: list[Level] = []
    out_starts: list[int] = []
    out_ends: list[int] = []
    markers: list[bool] = []
    k = 0
    for (a, b, level), piece_ids in zip(pieces, encoded, strict=True):
        n = len(piece_ids)
        if level is not None:
            ids.append(enc.open_ids[level])
            levels.append(level)
            out_starts.append(a)
            out_ends.append(a)
            markers.append(True)
        ids.extend(piece_ids)
        levels.extend([level or Level.NORMAL] * n)
        out_starts.extend(starts[k : k + n])
        out_ends.extend(ends[k : k + n])
        markers.extend([False] * n)
        k += n
        if level is not None:
            ids.append(enc.close_ids[level])
            levels.append(level)
            out_starts.append(b)
            out_ends.append(b)
            markers.append(True)
    return TokenizedDocument(enc.name, ids, levels, out_starts, out_ends, markers)


def _char_offsets(
    text: str, ids: list[int], enc: ImportanceEncoding
) -> tuple[list[int], list[int]]:
    if not ids:
        return [], []
    lengths = enc.token_byte_lengths[np.asarray(ids, dtype=np.int64)]
    byte_ends = np.cumsum(lengths)
    byte_starts = byte_ends - lengths
    if text.isascii():
        return byte_starts.tolist(), byte_ends.tolist()
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    char_of_byte = np.cumsum((data & 0xC0) != 0x80) - 1
    starts = char_of_byte[byte_starts]
    ends = char_of_byte[byte_ends - 1] + 1
    return starts.tolist(), ends.tolist()
