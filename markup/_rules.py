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
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from .document import Document, Level, Source, Span

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
_LEAD = re.compile(r"\s*(?:(?:[-*+•]|\d{1,3}[.)])\s+)?")


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Word lists of the features (lower case). A sentence is read once into its words; every
# feature is then a set lookup or a phrase lookup on the words joined by single spaces, so
# scoring costs a few microseconds per sentence.
_IMPERATIVE = _set(
    "answer respond reply write use include keep limit avoid begin start end finish format wrap "
    "put give make ensure add cite refuse return output provide mention list separate follow "
    "stay speak translate stick do don't never always only restrict reference mark state sign "
    "close open address phrase spell capitalise capitalize number label prefix append respect "
    "obey decline ignore omit exclude express present structure organise organize"
)
_LEAD_WORDS = _set("please important note rule")
_QUESTION = _set("what why how who whom which where when is are can could would does did")
_DESCRIPTIVE = _set(
    "the a an this that these those it its in on at by for as when while if each every some "
    "many most there here we our they he she i"
)
_TASK = _set(
    "explain describe summarise summarize tell discuss compare name define calculate compute "
    "solve translate draft compose"
)
_CONDITIONAL = _set("if when whenever unless")
_MODALS = _set("must should shall")
_OUTPUT = _set("response answer reply output message text responses answers replies messages")
_UNITS = _set(
    "word words sentence sentences paragraph paragraphs character characters line lines "
    "bullet bullets item items"
)
_NUMBERS = _set("one two three four five six seven eight nine ten twenty")
_FORMAT = _set(
    "json markdown yaml xml html csv table bullet bullets list heading headings title brackets "
    "bracket commas comma punctuation emoji emojis postscript placeholder placeholders quotes"
)
_CASE = _set("lowercase uppercase capital capitals")
_LANGUAGE = _set(
    "english spanish french german italian portuguese chinese japanese korean russian arabic "
    "hindi dutch language"
)
_REQUIRED = _set("require required mandatory forbidden prohibited allowed")
_AVOID = _set("avoid refuse decline omit exclude ignore")
_SAFETY = _set(
    "reveal disclose share instructions confidential secret password medical legal financial"
)
_HEDGE_WORDS = _set("optionally perhaps maybe consider ideally tend tends")
_PAST = _set("was were had did became")
_EDGES = _set("begin begins beginning start starts starting end ends ending finish close open")


def _has(text: str, *phrases: str) -> bool:
    return any(f" {p} " in text for p in phrases)


def _feature_values(sentence: str) -> dict[str, bool]:
    s = sentence.strip()
    words = _WORD.findall(s.lower())
    w = set(words)
    t = " " + " ".join(words) + " "  # phrases match whole words only
    lead = words[1:] if words and words[0] in _LEAD_WORDS else words
    first = lead[0] if lead else ""
    you = bool(w & {"you", "your", "yours", "yourself"})
    return {
        "must": "must" in w,
        "must_not": _has(t, "must not") or "mustn't" in w,
        "never": "never" in w,
        "always": "always" in w,
        "do_not": _has(t, "do not", "does not", "cannot")
        or bool(w & {"don't", "doesn't", "can't"}),
        "should": bool(w & {"should", "shall"}),
        "only": "only" in w,
        "exactly": "exactly" in w,
        "bound": _has(
            t,
            "at most",
            "at least",
            "no more than",
            "no fewer than",
            "no less than",
            "or fewer",
            "or less",
            "or more",
        ),
        "comparative": _has(t, "fewer than", "less than", "more than"),
        "under_no": _has(
            t, "under no circumstances", "under no circumstance", "in no case", "no matter what"
        ),
        "required": bool(w & _REQUIRED),
        "ensure": "ensure" in w or _has(t, "make sure", "be sure"),
        "avoid": bool(w & _AVOID),
        "your_output": "your" in w and bool(w & _OUTPUT),
        "you": you,
        "unit": bool(w & _UNITS),
        "number": bool(w & _NUMBERS) or any(x.isdigit() for x in words),
        "format_noun": bool(w & _FORMAT)
        or _has(t, "code block", "quotation marks", "quotation mark", "bullet points", "p s"),
        "case_noun": bool(w & _CASE) or _has(t, "lower case", "upper case"),
        "language": bool(w & _LANGUAGE),
        "start_end": bool(w & _EDGES) and bool(w & {"with", "by", "your"}),
        "phrase": bool(w & {"keyword", "keywords"})
        or _has(t, "the word", "the words", "the phrase", "the exact"),
        "quoted": _QUOTED.search(s) is not None,
        "colon": ":" in s,
        "imperative": first in _IMPERATIVE,
        "please": bool(words) and words[0] == "please",
        "you_will": _has(
            t,
            "you will",
            "you are to",
            "you need to",
            "you have to",
            "you are required to",
            "you may not",
        ),
        "you_must": _has(
            t, "you must", "you should", "you shall", "you always must", "you never should"
        ),
        "modal_subject": bool(set(words[1:5]) & _MODALS),
        "not_allowed": _has(t, "not allowed", "not permitted"),
        "conditional": first in _CONDITIONAL
        and "," in s
        and bool(set(_WORD.findall(s.split(",", 1)[1].lower())[:1]) & _IMPERATIVE),
        "safety": bool(w & _SAFETY) or _has(t, "system prompt", "personal data"),
        "hedge": bool(w & _HEDGE_WORDS)
        or _has(
            t,
            "feel free",
            "you may",
            "you might",
            "you could",
            "you can",
            "if you like",
            "if you want",
            "if you wish",
            "if you prefer",
            "it can help",
            "it may help",
            "it might help",
            "try to",
            "where possible",
            "if possible",
        ),
        "question": s.endswith("?"),
        "question_start": bool(words) and (words[0] in _QUESTION or _has(t[:9], "do you")),
        "descriptive": bool(words) and words[0] in _DESCRIPTIVE,
        "past": bool(w & _PAST) or _has(t, "used to"),
        "task_verb": first in _TASK,
        "code_like": _CODE_LIKE.search(s) is not None,
        "short": len(words) <= _SHORT,
        "long": len(words) >= _LONG,
    }


_WORD = re.compile(r"[a-z0-9']+")
_QUOTED = re.compile(r"[\"'“‘][^\"'”’]{1,40}[\"'”’]")
_CODE_LIKE = re.compile(r"[(){}\[\]=_]|\w\.\w")
_SHORT, _LONG = 4, 40  # words: features for very short and very long sentences
FEATURE_NAMES: tuple[str, ...] = tuple(_feature_values("x"))


def features(sentence: str) -> list[float]:
    """The feature vector of one sentence, in ``FEATURE_NAMES`` order."""
    return [1.0 if v else 0.0 for v in _feature_values(sentence).values()]


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _cue_positions(text: str, low: str) -> list[int]:
    """Where a cue starts: a strong cue as a whole word, or an imperative verb that opens a
    sentence (at the start, after a line break, a bullet, or ". ", "! ", "? ")."""
    found: list[int] = []
    n = len(low)
    for cue in _STRONG_CUES:
        i = low.find(cue)
        while i >= 0:
            j = i + len(cue)
            if (i == 0 or not _word_char(low[i - 1])) and (j == n or not _word_char(low[j])):
                found.append(i)
            i = low.find(cue, j)
    for starter in _sentence_starts(low):
        m = _WORD.match(low, starter)
        if m is None:
            continue
        word = m.group()
        if word in _LEAD_WORDS:  # "Please use…", "Important: never…"
            nxt = _WORD.search(low, m.end(), m.end() + 40)
            if nxt is None or nxt.start() - m.end() > 2:
                continue
            word = nxt.group()
        if word in _IMPERATIVE:
            found.append(starter)
    found.sort()
    return found


def _sentence_starts(low: str) -> list[int]:
    starts = [0]
    for sep in ("\n", ". ", "! ", "? ", ": "):
        i = low.find(sep)
        while i >= 0:
            starts.append(i + len(sep))
            i = low.find(sep, i + 1)
    out = []
    for i in starts:  # past white space and a list marker
        m = _LEAD.match(low, i, i + 12)
        out.append(m.end() if m is not None else i)
    return out


def sentences_with_cues(text: str) -> Iterator[tuple[int, int]]:
    """``[start, end)`` of each sentence of ``text`` that holds a cue, in order, without
    leading bullets or white space and without trailing white space.

    Linear in the text: each cue is found by a C-speed scan, and the sentence around it is
    looked for within ``_MAX_SENTENCE`` characters on either side, once per sentence."""
    low = text.lower()
    n = len(text)
    covered = -1  # cues before this offset lie in a sentence already yielded or refused
    for pos in _cue_positions(text, low):
        if pos < covered:
            continue
        lo = max(0, pos - _MAX_SENTENCE)
        start = lo
        line = text.rfind("\n", lo, pos)
        if line >= 0:
            start = line + 1
        # (the end pattern looks ahead past a sentence's end, so the search may run a little
        # past ``pos``; ends found there are not before the cue)
        for m in _SENTENCE_END.finditer(text, start, min(n, pos + 8)):
            if m.end() <= pos:
                start = m.end()
        end_match = _SENTENCE_END.search(text, pos, min(n, pos + _MAX_SENTENCE))
        if end_match is None:
            if pos + _MAX_SENTENCE < n:
                covered = pos + _MAX_SENTENCE  # too long to be a rule
                continue
            end = n
        else:
            end = end_match.start() if text[end_match.start()] == "\n" else end_match.end()
        covered = end
        if start == lo and lo > 0 and line < 0:
            continue  # its start lies more than _MAX_SENTENCE back: too long to be a rule
        lead = _LEAD.match(text, start, end)
        a = lead.end() if lead is not None else start
        b = end
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            yield a, b


@dataclass(frozen=True)
class RuleDetector:
    weights: tuple[float, ...]
    bias: float
    threshold: float  # probability at or above which a sentence is a rule

    def score(self, sentence: str) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, features(sentence), strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def detect(self, text: str) -> list[tuple[int, int]]:
        """``[start, end)`` of every rule sentence in ``text``."""
        threshold = self.threshold
        return [(a, b) for a, b in sentences_with_cues(text) if self.score(text[a:b]) >= threshold]


@cache
def load_detector(path: str | None = None) -> RuleDetector:
    """The detector whose weights are in ``path`` (default: the one that ships)."""
    data = json.loads(Path(path or _DATA).read_text(encoding="utf-8"))
    names = data["features"]
    if tuple(names) != FEATURE_NAMES:
        raise ValueError(
            f"{path or _DATA} was fitted on other features ({len(names)}); refit it with "
            "python -m evals.detector fit"
        )
    return RuleDetector(tuple(data["weights"]), float(data["bias"]), float(data["threshold"]))


def with_detected_rules(document: Document, detector: RuleDetector | None = None) -> Document:
    """``document`` with its detected rule sentences added as ``hard`` spans (source
    ``detected``) wherever no explicit span lies: explicit marks win, and a low or normal mark
    keeps detection out of what it covers. Linear in the number of spans."""
    found = (detector or load_detector()).detect(document.text)
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
