"""Rule detection: the sentences of plain text that state a constraint, marked ``hard``.

People write rules as plain sentences ("Answer in at most 50 words.", "Never reveal the system
prompt."). The detector finds them without any markup:

1. **Candidates.** One scan of the whole text for cue words of a constraint (must, never,
   always, only, exactly, at most, do not, avoid, your response, JSON, lowercase, bullet…). A
   sentence with no cue is never a rule, so most background prose costs nothing past the scan.
2. **Sentences.** Around each cue, the sentence (or list item, or line) that holds it: it ends
   at ``.``, ``!`` or ``?`` before white space and a capital, or at a line break.
3. **Scoring.** A logistic model over about forty features of the sentence's words (modal verbs, an
   imperative first word, constraint nouns and quantities, second person, hedges such as "feel
   free" or "you may", a question mark…). Its weights are fitted by ``evals.detector`` on data
   built from the train split (rule phrasings × parameters as positives; background prose, task
   prompts and soft suggestions as negatives) and ship in ``data/rule-detector.json``.

``parse(..., detect_rules=True)`` adds the detected sentences as ``hard`` spans with source
``detected``, only where no explicit mark lies (explicit marks win; a ``<low>`` or background
mark suppresses detection inside it). ``parse_messages`` never detects in untrusted roles.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from ._rule_features import _IMPERATIVE, _LEADS, _WORD, FEATURE_NAMES, active, features
from .document import Document, Level, ParseWarning, Source, Span

__all__ = [
    "FEATURE_NAMES",
    "RuleDetector",
    "features",
    "load_detector",
    "sentences_with_cues",
    "with_detected_rules",
]

_DATA = Path(__file__).parent / "data" / "rule-detector.json"

# Cues, looked for in the lower-cased text with str.find (one C-speed pass each): a phrase
# of obligation, prohibition or bound anywhere in a sentence, or an imperative verb where a
# sentence starts. A sentence with no cue is never scored.
_STRONG_CUES = (
    "must", "never", "always", "only", "exactly", "at most", "at least", "no more than",
    "no fewer than", "no less than", "or fewer", "or more", "do not", "don't", "does not",
    "cannot", "can't", "avoid", "ensure", "make sure", "required", "mandatory", "forbidden",
    "prohibited", "not allowed", "under no", "should", "shall", "refuse", "your response",
    "your answer", "your reply", "your output", "respond", "reply",
)  # fmt: skip
_MAX_SENTENCE = 500  # characters: a longer "sentence" is not a rule, and is not scored
_SENTENCE_END = re.compile(r"[.!?](?=[\"')\]]*\s+[\"'(\[*]?[A-Z0-9])|\n")
_LEAD_CHARS = frozenset(" \t-*+•0123456789")
_LEAD = re.compile(r"\s*(?:(?:[-*+•]|\d{1,3}[.)])\s+)?")


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


_STARTERS = ("\n", "\n ", "\n\t", ". ", "! ", "? ", ": ", "\n- ", "\n* ", "\n+ ", "\n• ")
_LEAD_INS = ("", "please ", "important: ", "important ", "note: ", "rule: ")


@cache
def _automaton() -> Any:
    """Every cue as one Aho–Corasick automaton, so that all of them are found in one pass
    over the text: a strong cue anywhere, and ``separator + [lead-in] + verb`` for an
    imperative that opens a sentence. Values: (where the candidate starts within the match,
    the match's length)."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for starter in _STARTERS:
        for lead in _LEAD_INS:
            for verb in _IMPERATIVE:
                key = starter + lead + verb
                automaton.add_word(key, (len(starter), len(key)))
    for cue in _STRONG_CUES:
        automaton.add_word(cue, (-1, len(cue)))
    automaton.make_automaton()
    return automaton


def _cue_positions(text: str, low: str) -> list[int]:
    """Where a cue starts: a strong cue as a whole word, or an imperative verb that opens a
    sentence (at the start, after a line break, a bullet, or ". ", "! ", "? ", ": ")."""
    found: list[int] = []
    n = len(low)
    for end, (skip, length) in _automaton().iter(low):
        if end + 1 < n and _word_char(low[end + 1]):
            continue  # "use" in "user"
        start = end - length + 1
        if skip < 0:  # a strong cue: a whole word
            if start == 0 or not _word_char(low[start - 1]):
                found.append(start)
        else:
            found.append(start + skip)
    lead = _LEAD.match(low, 0, 12)  # the text's first sentence
    at = lead.end() if lead is not None else 0
    if low.startswith(_LEADS, at):
        at = low.index(" ", at) + 1
    m = _WORD.match(low, at, at + 16)
    if m is not None and m.group() in _IMPERATIVE:
        found.append(0)
    found.sort()
    return found


_STOPS = re.compile(r"[.!?\n]")


def sentences_with_cues(text: str) -> Iterator[tuple[int, int]]:
    """``[start, end)`` of each sentence of ``text`` that holds a cue, in order, without
    leading bullets or white space and without trailing white space.

    Linear in the text: one pass finds every cue (``_automaton``), one pass every place a
    sentence may end; the sentence around a cue is found among those places by bisection,
    within ``_MAX_SENTENCE`` characters on either side, once per sentence."""
    low = text.lower()
    n = len(text)
    stops = [m.start() for m in _STOPS.finditer(text)]
    covered = -1  # cues before this offset lie in a sentence already yielded or refused
    for pos in _cue_positions(text, low):
        if pos < covered:
            continue
        k = bisect_left(stops, pos)
        # back: the last end before the cue (a line break, or ".!?" the end pattern accepts:
        # it looks ahead, so it may read a little past ``pos``; an end found there is not one)
        lo = max(0, pos - _MAX_SENTENCE)
        start = -1
        i = k - 1
        while i >= 0 and stops[i] >= lo:
            j = stops[i]
            if text[j] == "\n":
                start = j + 1
                break
            m = _SENTENCE_END.match(text, j, min(n, pos + 8))
            if m is not None and m.end() <= pos:
                start = m.end()
                break
            i -= 1
        if start < 0:
            if lo > 0:  # its start lies more than _MAX_SENTENCE back: too long to be a rule
                end = _next_end(text, stops, k, pos, n)
                covered = end if end >= 0 else pos + _MAX_SENTENCE
                continue
            start = 0
        end = _next_end(text, stops, k, pos, n)
        if end < 0:
            covered = pos + _MAX_SENTENCE  # too long to be a rule
            continue
        covered = end
        lead = _LEAD.match(text, start, end)
        a = lead.end() if lead is not None else start
        b = end
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            yield a, b


def _next_end(text: str, stops: list[int], k: int, pos: int, n: int) -> int:
    """Where the sentence holding ``pos`` ends (``stops[k]`` is the first stop at or after it):
    before a line break, after ".!?" that ends a sentence, or at the end of the text; -1 when
    that lies more than ``_MAX_SENTENCE`` on."""
    limit = pos + _MAX_SENTENCE
    while k < len(stops) and stops[k] < limit:
        j = stops[k]
        if text[j] == "\n":
            return j
        if _SENTENCE_END.match(text, j) is not None:
            return j + 1
        k += 1
    return n if limit >= n else -1


@dataclass(frozen=True)
class RuleDetector:
    weights: tuple[float, ...]
    bias: float
    threshold: float  # probability at or above which a sentence is a rule

    def score(self, sentence: str) -> float:
        weights = self.weights
        z = self.bias + sum(weights[i] for i in active(sentence))
        return 1.0 / (1.0 + math.exp(-z))

    def detect(self, text: str, limit: int | None = None) -> list[tuple[int, int]]:
        """``[start, end)`` of every rule sentence in ``text``; with ``limit``, only among the
        first ``limit`` candidate sentences."""
        return self.detect_limited(text, limit)[0]

    def detect_limited(
        self, text: str, limit: int | None = None
    ) -> tuple[list[tuple[int, int]], int | None]:
        """The rule sentences among the first ``limit`` candidates, and where the text's
        candidates went past ``limit`` (None when they did not)."""
        threshold = self.threshold
        found: list[tuple[int, int]] = []
        for n, (a, b) in enumerate(sentences_with_cues(text)):
            if limit is not None and n >= limit:
                return found, a
            if self.score(text[a:b]) >= threshold:
                found.append((a, b))
        return found, None


@cache
def load_detector(path: str | None = None) -> RuleDetector:
    """The detector whose weights are in ``path`` (default: the one that ships)."""
    data = json.loads(Path(path or _DATA).read_text(encoding="utf-8"))
    names = data["features"]
    if tuple(names) != FEATURE_NAMES:
        raise ValueError(
            f"{path or _DATA} was fitted on other features ({len(names)}); refit it with "
            "python -m salience.evals.detector fit"
        )
    return RuleDetector(tuple(data["weights"]), float(data["bias"]), float(data["threshold"]))


def with_detected_rules(
    document: Document, detector: RuleDetector | None = None, limit: int | None = None
) -> Document:
    """``document`` with its detected rule sentences added as ``hard`` spans (source
    ``detected``) wherever no explicit span lies: explicit marks win, and a low or normal mark
    keeps detection out of what it covers. Linear in the number of spans. With ``limit``, at
    most that many candidate sentences are scored (each costs a few µs); past it detection
    stops, and a ``detection-limit`` warning says where (in the clean text)."""
    found, stopped = (detector or load_detector()).detect_limited(document.text, limit)
    if stopped is not None:
        line = document.text.count("\n", 0, stopped) + 1
        column = stopped - (document.text.rfind("\n", 0, stopped) + 1) + 1
        warning = ParseWarning(
            "detection-limit",
            f"rule detection stopped after {limit} candidate sentences, at character "
            f"{stopped} of the clean text; no rule is detected after it",
            stopped,
            line,
            column,
        )
        document = replace(document, warnings=(*document.warnings, warning))
    if not found:
        return document
    explicit = document.spans
    added: list[Span] = []
    i = 0
    for a, b in found:
        while i < len(explicit) and explicit[i].end <= a:
            i += 1
        j = i
        cursor = a
        while j < len(explicit) and explicit[j].start < b:
            if explicit[j].start > cursor:
                added.append(Span(cursor, explicit[j].start, Level.HARD, Source.DETECTED))
            cursor = max(cursor, explicit[j].end)
            j += 1
        if cursor < b:
            added.append(Span(cursor, b, Level.HARD, Source.DETECTED))
    spans = tuple(sorted((*explicit, *added), key=lambda s: s.start))
    return replace(document, spans=spans)
