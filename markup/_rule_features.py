"""The rule detector's features: about forty word features of one sentence (modal verbs, an
imperative first word, constraint nouns and quantities, second person, hedges, a question…),
read with one dictionary lookup per word, pair and triple of words (markup._rules scores them).
"""

from __future__ import annotations

import re


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


FEATURE_NAMES: tuple[str, ...] = (
    "must", "must_not", "never", "always", "do_not", "should", "only", "exactly", "bound",
    "comparative", "under_no", "required", "ensure", "avoid", "your_output", "you", "unit",
    "number", "format_noun", "case_noun", "language", "start_end", "phrase", "quoted", "colon",
    "imperative", "please", "you_will", "you_must", "modal_subject", "not_allowed",
    "conditional", "safety", "hedge", "question", "question_start", "descriptive", "past",
    "task_verb", "code_like", "short", "long",
)  # fmt: skip
_F = {name: i for i, name in enumerate(FEATURE_NAMES)}

# Words and phrases (of two or three words) that switch a feature on: a sentence's features are
# read with one dictionary lookup per word, pair and triple of words.
_BY_WORD: dict[str, list[int]] = {}
_BY_PHRASE: dict[str, list[int]] = {}
for _name, _entries in {
    "must": "must",
    "must_not": "mustn't|must not",
    "never": "never",
    "always": "always",
    "do_not": "don't|doesn't|can't|cannot|do not|does not",
    "should": "should|shall",
    "only": "only",
    "exactly": "exactly",
    "bound": "at most|at least|or fewer|or less|or more|no more than|no fewer than|no less than",
    "comparative": "fewer than|less than|more than",
    "under_no": "under no circumstances|under no circumstance|in no case|no matter what",
    "required": "|".join(_REQUIRED),
    "ensure": "ensure|make sure|be sure",
    "avoid": "|".join(_AVOID),
    "you": "you|your|yours|yourself",
    "unit": "|".join(_UNITS),
    "number": "|".join(_NUMBERS),
    "format_noun": "|".join(_FORMAT)
    + "|code block|quotation marks|quotation mark|bullet points|p s",
    "case_noun": "|".join(_CASE) + "|lower case|upper case",
    "language": "|".join(_LANGUAGE),
    "phrase": "keyword|keywords|the word|the words|the phrase|the exact",
    "you_will": "you will|you are to|you need to|you have to|you may not|are required to",
    "you_must": "you must|you should|you shall",
    "not_allowed": "not allowed|not permitted",
    "safety": "|".join(_SAFETY) + "|system prompt|personal data",
    "hedge": "|".join(_HEDGE_WORDS) + "|feel free|you may|you might|you could|you can|if you like"
    "|if you want|if you wish|if you prefer|it can help|it may help|it might help|try to"
    "|where possible|if possible",
    "past": "|".join(_PAST) + "|used to",
}.items():
    for _entry in _entries.split("|"):
        (_BY_PHRASE if " " in _entry else _BY_WORD).setdefault(_entry, []).append(_F[_name])


_PHRASE_HEADS = frozenset(phrase.split(" ", 1)[0] for phrase in _BY_PHRASE)
_NUMBER_F = _F["number"]


def features(sentence: str) -> list[float]:
    """The feature vector of one sentence, in ``FEATURE_NAMES`` order."""
    on = active(sentence)
    return [1.0 if i in on else 0.0 for i in range(len(FEATURE_NAMES))]


def active(sentence: str) -> set[int]:
    """The indexes (into ``FEATURE_NAMES``) of the features a sentence has."""
    s = sentence.strip()
    words = _WORD.findall(s.lower())
    on: set[int] = set()
    by_word, by_phrase = _BY_WORD, _BY_PHRASE
    for w in words:
        found = by_word.get(w)
        if found:
            on.update(found)
        elif w.isdigit():
            on.add(_NUMBER_F)
    heads = _PHRASE_HEADS
    for k, w in enumerate(words):
        if w not in heads:  # most words start no phrase: no pair or triple is built for them
            continue
        pair = f"{w} {words[k + 1]}" if k + 1 < len(words) else ""
        found = by_phrase.get(pair)
        if found:
            on.update(found)
        if k + 2 < len(words):
            found = by_phrase.get(f"{pair} {words[k + 2]}")
            if found:
                on.update(found)
    present = set(words)
    if "your" in present and not present.isdisjoint(_OUTPUT):
        on.add(_F["your_output"])
    if not present.isdisjoint(_EDGES) and not present.isdisjoint(("with", "by", "your")):
        on.add(_F["start_end"])
    if not _MODALS.isdisjoint(words[1:5]):
        on.add(_F["modal_subject"])
    if words:
        head = words[1:] if words[0] in _LEAD_WORDS else words
        first = head[0] if head else ""
        if first in _IMPERATIVE:
            on.add(_F["imperative"])
        if first in _TASK:
            on.add(_F["task_verb"])
        if words[0] == "please":
            on.add(_F["please"])
        if words[0] in _QUESTION or (words[0] == "do" and words[1:2] == ["you"]):
            on.add(_F["question_start"])
        if words[0] in _DESCRIPTIVE:
            on.add(_F["descriptive"])
        if first in _CONDITIONAL and "," in s:
            after = _WORD.search(s.split(",", 1)[1].lower())
            if after is not None and after.group() in _IMPERATIVE:
                on.add(_F["conditional"])
    if ("'" in s or '"' in s or "“" in s or "‘" in s) and _QUOTED.search(s) is not None:
        on.add(_F["quoted"])
    if _code_like(s):
        on.add(_F["code_like"])
    if ":" in s:
        on.add(_F["colon"])
    if s.endswith("?"):
        on.add(_F["question"])
    if len(words) <= _SHORT:
        on.add(_F["short"])
    if len(words) >= _LONG:
        on.add(_F["long"])
    return on


_WORD = re.compile(r"[a-z0-9']+")
_QUOTED = re.compile(r"[\"'“‘][^\"'”’]{1,40}[\"'”’]")
_CODE_CHARS = frozenset("(){}[]=_")


def _code_like(s: str) -> bool:
    """Brackets, ``=``, ``_`` or a dot between word characters (``os.path``, ``3.5``)."""
    if not _CODE_CHARS.isdisjoint(s):
        return True
    i = s.find(".", 1)
    while 0 < i < len(s) - 1:
        if s[i - 1].isalnum() and s[i + 1].isalnum():
            return True
        i = s.find(".", i + 1)
    return False


_SHORT, _LONG = 4, 40  # words: features for very short and very long sentences
_LEADS = ("please ", "important: ", "important ", "note: ", "rule: ")
