"""IFEval's 25 instruction ids, verified as the IFEval paper defines them.

Zhou et al., 2023, "Instruction-Following Evaluation for Large Language Models" (arXiv
2311.07911) defines each instruction by a check on the response; this module implements those
definitions (written here, not taken from the reference code). Where the definition needs a
tool, a well-kept offline one stands in:

- language identification: ``langdetect`` (Google's language-detection profiles ship inside
  the package; seeded, so a verdict never changes between runs);
- sentences: ``pysbd``, a rule-based splitter that keeps abbreviations ("Dr.", "e.g."),
  decimals ("3.50") and times ("10 a.m.") inside one sentence;
- words: runs of word characters (``\\w+``), as IFEval counts them. Capital words are such runs
  written in capitals ("DON'T" is two, as with the paper's tokenizer).

Relations are ``less than`` (count < N) and ``at least`` (count >= N). Kwargs set to null (IFEval
pads every row's kwargs with nulls) are ignored.

**Loose** passes when the check passes on any of eight forms of the response: as written,
without its first line, without its last line, without both, and each of those with every
``*`` removed (a form that is empty after stripping does not count). It forgives a preamble
("Sure, here it is:"), a sign-off, and Markdown emphasis.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .families import loose_variants
from .text_measures import _WORD, count_sentences, count_words, detect_language

__all__ = [
    "INSTRUCTION_IDS",
    "Instruction",
    "UnknownInstruction",
    "UnsupportedInstruction",
    "instruction",
]

Check = Callable[[str], bool]


class UnsupportedInstruction(ValueError):
    """An instruction id this module does not know, or kwargs it cannot check."""


class UnknownInstruction(UnsupportedInstruction):
    """An instruction id outside IFEval's 25."""


@dataclass(frozen=True)
class Instruction:
    id: str
    kwargs: Mapping[str, Any]
    check: Check

    def strict(self, response: str) -> bool:
        return self.check(response)

    def loose(self, response: str) -> bool:
        return any(form.strip() and self.check(form) for form in loose_variants(response))


# --- the tools -------------------------------------------------------------------------------

_RELATIONS: dict[str, Callable[[int, int], bool]] = {
    "less than": operator.lt,
    "at least": operator.ge,
}


# --- the checks, one builder per id; each validates its kwargs ----------------------------------


def _int(kwargs: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    value = kwargs.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UnsupportedInstruction(f"{key} must be an integer >= {minimum}, not {value!r}")
    return value


def _str(kwargs: Mapping[str, Any], key: str) -> str:
    value = kwargs.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UnsupportedInstruction(f"{key} must be a non-empty string, not {value!r}")
    return value


def _relation(kwargs: Mapping[str, Any], key: str = "relation") -> Callable[[int, int], bool]:
    value = kwargs.get(key)
    if value not in _RELATIONS:
        raise UnsupportedInstruction(f"{key} must be 'less than' or 'at least', not {value!r}")
    return _RELATIONS[value]


def _words(kwargs: Mapping[str, Any], key: str) -> list[str]:
    value = kwargs.get(key)
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(w, str) and w.strip() for w in value)
    ):
        raise UnsupportedInstruction(f"{key} must be a list of non-empty strings, not {value!r}")
    return value


def _capital_word_frequency(kwargs: Mapping[str, Any]) -> Check:
    n, relation = _int(kwargs, "capital_frequency"), _relation(kwargs, "capital_relation")
    return lambda r: relation(sum(w.isupper() for w in _WORD.findall(r)), n)


def _english_capital(kwargs: Mapping[str, Any]) -> Check:
    # The paper: all capitals, and in English. Text with no detectable language passes the
    # language half (as in the paper's implementation), so "OK!" is judged on its case alone.
    # The language is detected on the lower-cased text: langdetect's profiles are of ordinary
    # text, and on capitals it calls French or Spanish English.
    return lambda r: r.isupper() and detect_language(r.lower()) in ("en", None)


def _english_lowercase(kwargs: Mapping[str, Any]) -> Check:
    return lambda r: r.islower() and detect_language(r) in ("en", None)


def _repeat_prompt(kwargs: Mapping[str, Any]) -> Check:
    prompt = _str(kwargs, "prompt_to_repeat").strip().lower()
    return lambda r: r.strip().lower().startswith(prompt)


def _two_responses(kwargs: Mapping[str, Any]) -> Check:
    def check(r: str) -> bool:
        parts = r.split("******")
        answers = []
        for i, part in enumerate(parts):
            if part.strip():
                answers.append(part.strip())
            elif 0 < i < len(parts) - 1:
                return False  # an empty answer between two separators
        return len(answers) == 2 and answers[0] != answers[1]

    return check


_PLACEHOLDER = re.compile(r"\[.*?\]")


def _number_placeholders(kwargs: Mapping[str, Any]) -> Check:
    n = _int(kwargs, "num_placeholders")
    return lambda r: len(_PLACEHOLDER.findall(r)) >= n


def _postscript(kwargs: Mapping[str, Any]) -> Check:
    marker = kwargs.get("postscript_marker", "P.S.")
    if not isinstance(marker, str) or not marker.strip():
        raise UnsupportedInstruction(f"postscript_marker must be a string, not {marker!r}")
    # The paper's markers are "P.S." and "P.P.S"; their spacing may vary ("P. S."), case not.
    if marker == "P.P.S":
        pattern = re.compile(r"\s*p\.\s?p\.\s?s.*$", re.M)
    elif marker == "P.S.":
        pattern = re.compile(r"\s*p\.\s?s\..*$", re.M)
    else:
        pattern = re.compile(r"\s*" + re.escape(marker.lower()) + r".*$", re.M)
    return lambda r: pattern.search(r.lower()) is not None


_CHOICES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


def _constrained_response(kwargs: Mapping[str, Any]) -> Check:
    return lambda r: any(choice in r.strip() for choice in _CHOICES)


def _json_format(kwargs: Mapping[str, Any]) -> Check:
    def check(r: str) -> bool:
        text = r.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            if text.startswith(fence):
                text = text[len(fence) :]
                break
        text = text.removesuffix("```").strip()
        try:
            json.loads(text)
        except ValueError:
            return False
        return True

    return check


def _multiple_sections(kwargs: Mapping[str, Any]) -> Check:
    n, splitter = _int(kwargs, "num_sections"), _str(kwargs, "section_spliter").strip()
    pattern = re.compile(r"\s?" + re.escape(splitter) + r"\s?\d+\s?")
    return lambda r: len(pattern.split(r)) - 1 >= n


_STAR_BULLET = re.compile(r"^\s*\*[^*].*$", re.M)
_DASH_BULLET = re.compile(r"^\s*-.*$", re.M)


def _number_bullet_lists(kwargs: Mapping[str, Any]) -> Check:
    n = _int(kwargs, "num_bullets")
    return lambda r: len(_STAR_BULLET.findall(r)) + len(_DASH_BULLET.findall(r)) == n


_ONE_STAR = re.compile(r"\*[^\n*]*\*")
_TWO_STARS = re.compile(r"\*\*[^\n*]*\*\*")


def _number_highlighted_sections(kwargs: Mapping[str, Any]) -> Check:
    n = _int(kwargs, "num_highlights")

    def check(r: str) -> bool:
        single = sum(1 for m in _ONE_STAR.findall(r) if m.strip("*").strip())
        double = sum(1 for m in _TWO_STARS.findall(r) if m[2:-2].strip())
        return single + double >= n

    return check


_TITLE = re.compile(r"<<[^\n]+>>")


def _title(kwargs: Mapping[str, Any]) -> Check:
    return lambda r: any(t.lstrip("<").rstrip(">").strip() for t in _TITLE.findall(r))


def _existence(kwargs: Mapping[str, Any]) -> Check:
    patterns = [re.compile(re.escape(w), re.I) for w in _words(kwargs, "keywords")]
    return lambda r: all(p.search(r) for p in patterns)


def _forbidden_words(kwargs: Mapping[str, Any]) -> Check:
    patterns = [
        re.compile(r"\b" + re.escape(w) + r"\b", re.I) for w in _words(kwargs, "forbidden_words")
    ]
    return lambda r: not any(p.search(r) for p in patterns)


def _frequency(kwargs: Mapping[str, Any]) -> Check:
    keyword, n, relation = _str(kwargs, "keyword"), _int(kwargs, "frequency"), _relation(kwargs)
    pattern = re.compile(re.escape(keyword), re.I)
    return lambda r: relation(len(pattern.findall(r)), n)


def _letter_frequency(kwargs: Mapping[str, Any]) -> Check:
    letter = _str(kwargs, "letter")
    if len(letter) != 1:  # any one character, as the official checker counts it ("#", "!")
        raise UnsupportedInstruction(f"letter must be one character, not {letter!r}")
    n, relation = _int(kwargs, "let_frequency"), _relation(kwargs, "let_relation")
    lower = letter.lower()
    return lambda r: relation(r.lower().count(lower), n)


def _response_language(kwargs: Mapping[str, Any]) -> Check:
    language = _str(kwargs, "language")
    # Undetectable text (no letters) passes, as in the paper's implementation.
    return lambda r: detect_language(r) in (language, None)


_PUNCTUATION = set(".,?!'\"")


def _nth_paragraph_first_word(kwargs: Mapping[str, Any]) -> Check:
    count, nth = _int(kwargs, "num_paragraphs", 1), _int(kwargs, "nth_paragraph", 1)
    first_word = _str(kwargs, "first_word").lower()

    def check(r: str) -> bool:
        paragraphs = r.split("\n\n")
        if sum(1 for p in paragraphs if p.strip()) != count or nth > len(paragraphs):
            return False
        paragraph = paragraphs[nth - 1].strip()
        if not paragraph:
            return False
        word = paragraph.split()[0].lstrip("'\"")
        found = ""
        for char in word:
            if char in _PUNCTUATION:
                break
            found += char.lower()
        return found == first_word

    return check


_DIVIDER = re.compile(r"\s?\*\*\*\s?")


def _number_paragraphs(kwargs: Mapping[str, Any]) -> Check:
    n = _int(kwargs, "num_paragraphs", 1)

    def check(r: str) -> bool:
        paragraphs = _DIVIDER.split(r)
        found = 0
        for i, paragraph in enumerate(paragraphs):
            if paragraph.strip():
                found += 1
            elif 0 < i < len(paragraphs) - 1:
                return False  # two dividers with nothing between them
        return found == n

    return check


def _number_sentences(kwargs: Mapping[str, Any]) -> Check:
    n, relation = _int(kwargs, "num_sentences"), _relation(kwargs)
    return lambda r: relation(count_sentences(r), n)


def _number_words(kwargs: Mapping[str, Any]) -> Check:
    n, relation = _int(kwargs, "num_words"), _relation(kwargs)
    return lambda r: relation(count_words(r), n)


def _no_comma(kwargs: Mapping[str, Any]) -> Check:
    return lambda r: "," not in r


def _end_checker(kwargs: Mapping[str, Any]) -> Check:
    phrase = _str(kwargs, "end_phrase").strip().lower()
    return lambda r: r.strip().lower().endswith(phrase)


def _quotation(kwargs: Mapping[str, Any]) -> Check:
    def check(r: str) -> bool:
        text = r.strip()
        return len(text) > 1 and text[0] == '"' and text[-1] == '"'

    return check


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Check]] = {
    "change_case:capital_word_frequency": _capital_word_frequency,
    "change_case:english_capital": _english_capital,
    "change_case:english_lowercase": _english_lowercase,
    "combination:repeat_prompt": _repeat_prompt,
    "combination:two_responses": _two_responses,
    "detectable_content:number_placeholders": _number_placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:constrained_response": _constrained_response,
    "detectable_format:json_format": _json_format,
    "detectable_format:multiple_sections": _multiple_sections,
    "detectable_format:number_bullet_lists": _number_bullet_lists,
    "detectable_format:number_highlighted_sections": _number_highlighted_sections,
    "detectable_format:title": _title,
    "keywords:existence": _existence,
    "keywords:forbidden_words": _forbidden_words,
    "keywords:frequency": _frequency,
    "keywords:letter_frequency": _letter_frequency,
    "language:response_language": _response_language,
    "length_constraints:nth_paragraph_first_word": _nth_paragraph_first_word,
    "length_constraints:number_paragraphs": _number_paragraphs,
    "length_constraints:number_sentences": _number_sentences,
    "length_constraints:number_words": _number_words,
    "punctuation:no_comma": _no_comma,
    "startend:end_checker": _end_checker,
    "startend:quotation": _quotation,
}
INSTRUCTION_IDS: tuple[str, ...] = tuple(_BUILDERS)


def instruction(instruction_id: str, kwargs: Mapping[str, Any] | None = None) -> Instruction:
    """The instruction ``instruction_id`` with its kwargs (nulls dropped), ready to check.

    Raises ``UnsupportedInstruction`` for an unknown id or kwargs that do not fit it."""
    builder = _BUILDERS.get(instruction_id)
    if builder is None:
        raise UnknownInstruction(f"unknown instruction id {instruction_id!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise UnsupportedInstruction(f"kwargs must be an object, not {type(kwargs).__name__}")
    clean = {k: v for k, v in (kwargs or {}).items() if v is not None}
    return Instruction(instruction_id, clean, builder(clean))
