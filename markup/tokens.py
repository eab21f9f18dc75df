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

import itertools
import threading
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
    windows = getattr(enc.encoding, "_pat_str", None) in WINDOW_PATTERNS
    text_ids, counts = encode_pieces(
        text,
        piece_end[:-1],
        encode,
        enc.token_byte_lengths,
        windows=windows,
        singles=single_characters(enc.name, encode) if windows else None,
    )
    n_text = len(text_ids)
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


def encode_pieces(
    text: str,
    cuts: list[int],
    encode: Callable[[str], npt.NDArray[np.integer[Any]]],
    byte_lengths: npt.NDArray[np.int64],
    *,
    windows: bool = True,
    singles: list[Any] | None = None,
) -> tuple[IntArray, IntArray]:
    """Token ids of ``text`` cut at the character offsets ``cuts`` (sorted, inside the text),
    exactly as if each piece were encoded on its own, and the number of tokens of each piece.

    Encoding piece by piece costs one call into tiktoken per piece (a fixed ~4 µs each, which is
    most of the cost of a prompt dense with spans). Instead the whole text is encoded once, and
    only a window around each cut is encoded again, piece by piece. A window runs between two
    *hard boundaries*: positions where every pre-token of tiktoken's pattern must end, whatever
    came before (``_hard``). Outside the windows both encodings split the text the same way, so
    their tokens are the same; inside, the window's pieces are encoded on their own. A cut that
    is itself a hard boundary needs no window.
    """
    n = len(text)
    if not cuts:
        ids = encode(text).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
        return ids, np.array([len(ids)], dtype=np.int64)
    per_piece = None if windows else True
    byte_at: npt.NDArray[np.int64] | None = None
    if windows and not text.isascii():
        try:
            code_points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        except UnicodeEncodeError:  # lone surrogates: encode piece by piece
            per_piece = True
        else:
            sizes = 1 + (code_points >= 0x80) + (code_points >= 0x800) + (code_points >= 0x10000)
            byte_at = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
    if per_piece is None:
        result = _encode_by_windows(text, cuts, encode, byte_lengths, byte_at, singles)
        if result is not None:
            return result
    bounds = [0, *cuts, n]
    encoded = [encode(text[a:b]) for a, b in itertools.pairwise(bounds)]
    counts = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return np.concatenate(encoded).astype(np.int64), counts


def _encode_by_windows(
    text: str,
    cuts: list[int],
    encode: Callable[[str], npt.NDArray[np.integer[Any]]],
    byte_lengths: npt.NDArray[np.int64],
    byte_at: npt.NDArray[np.int64] | None,
    singles: list[Any] | None,
) -> tuple[IntArray, IntArray] | None:
    n = len(text)
    # 1. The windows, from the characters alone: (left, cuts inside, right); a hard cut is a
    #    window with nothing to re-encode.
    windows: list[tuple[int, list[int], int]] = []
    done = 0
    i = 0
    while i < len(cuts):
        b = cuts[i]
        if _hard(text, b):
            windows.append((b, [], b))
            done = b
            i += 1
            continue
        left = b - 1
        while left > done and not _hard(text, left):
            left -= 1
        right = b + 1
        inside = [b]
        while True:
            while right < n and not _hard(text, right):
                right += 1
            # a cut before the window's end joins the window, which may then grow
            if i + len(inside) < len(cuts) and cuts[i + len(inside)] < right:
                inside.append(cuts[i + len(inside)])
                continue
            break
        windows.append((left, inside, right))
        done = right
        i += len(inside)
    # 2. Where the windows' edges fall among the whole text's tokens, all at once.
    whole = encode(text)
    token_ends = np.cumsum(byte_lengths[whole])
    edges = np.array([e for left, _, right in windows for e in (left, right)], dtype=np.int64)
    byte_edges = edges if byte_at is None else byte_at[edges]
    at = np.searchsorted(token_ends, byte_edges, side="right")
    before = np.where(at > 0, token_ends[np.maximum(at - 1, 0)], 0)
    if not np.array_equal(before, byte_edges):  # an edge inside a token: cannot happen, but
        return None  # if it did, the caller encodes piece by piece
    token_at = at.tolist()
    # 3. Whole-text tokens between windows, each window's pieces encoded on their own.
    parts: list[npt.NDArray[np.integer[Any]]] = []
    cut_tokens: list[int] = []  # the token index of each cut in the result
    done_tokens = 0
    produced = 0
    for w, (left, inside, right) in enumerate(windows):
        k_left, k_right = token_at[2 * w], token_at[2 * w + 1]
        parts.append(whole[done_tokens:k_left])
        produced += k_left - done_tokens
        if not inside:  # a hard cut
            cut_tokens.append(produced)
            done_tokens = k_left
            continue
        bounds = [left, *inside, right]
        for j in range(len(bounds) - 1):
            piece = _encode_short(text[bounds[j] : bounds[j + 1]], encode, singles)
            parts.append(piece)
            produced += len(piece)
            if j < len(inside):
                cut_tokens.append(produced)
        done_tokens = k_right
    parts.append(whole[done_tokens:])
    produced += len(whole) - done_tokens
    ids = np.concatenate(parts).astype(np.int64)
    bounds_at: IntArray = np.array([0, *cut_tokens, produced], dtype=np.int64)
    counts: IntArray = bounds_at[1:] - bounds_at[:-1]
    return ids, counts


def _encode_short(
    piece: str, encode: Callable[[str], npt.NDArray[np.integer[Any]]], table: list[Any] | None
) -> Any:
    """``encode(piece)``, with one-character ASCII pieces (a space before a span, say) taken
    from ``table``: a call into tiktoken costs far more than the lookup."""
    if table is not None and len(piece) == 1 and piece.isascii():
        return table[ord(piece)]
    return encode(piece)


# One-character ASCII encodings per encoding name, built on first use (128 entries each).
_SINGLE: dict[str, list[Any]] = {}
_SINGLE_LOCK = threading.Lock()


def single_characters(
    name: str, encode: Callable[[str], npt.NDArray[np.integer[Any]]]
) -> list[Any]:
    table = _SINGLE.get(name)
    if table is None:
        with _SINGLE_LOCK:
            table = _SINGLE.get(name)
            if table is None:
                table = _SINGLE[name] = [encode(chr(c)) for c in range(128)]
    return table


# Pre-tokenizer patterns whose hard boundaries ``_hard`` knows: cl100k_base's. (o200k_base lets
# a contraction follow letters, so "letter, then non-letter" is no boundary there.)
WINDOW_PATTERNS = frozenset(
    {
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"""
        r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    }
)

# ASCII characters that tiktoken's patterns treat as \s (Python's isspace also counts
# \x1c-\x1f, which the pattern does not).
_SPACE = frozenset(" \t\n\r\x0b\x0c")


def _hard(text: str, x: int) -> bool:
    """Whether every pre-token of the cl100k/o200k-style patterns ends at ``x``, from any start.

    Three cases, ASCII only (elsewhere: no): after a letter run, when a non-letter follows
    (no alternative continues letters with anything else); after a digit run, when a non-digit
    follows (digits only ever group with digits); after punctuation, when a space or tab follows
    (punctuation groups only with following letters or line breaks).
    """
    if x <= 0 or x >= len(text):
        return True
    a = text[x - 1]
    c = text[x]
    if not (a.isascii() and c.isascii()):
        return False
    if a.isalpha():
        return not c.isalpha()
    if a.isdigit():
        return not c.isdigit()
    if c == " " or c == "\t":
        return a not in _SPACE and a not in "\x1c\x1d\x1e\x1f"
    return False


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
