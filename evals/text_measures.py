"""How IFEval's checks measure text: words (``\\w+``), sentences (pysbd: abbreviations,
decimals and times do not end one) and language (langdetect, its profiles inside the package,
seeded so that every verdict repeats)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

_WORD = re.compile(r"\w+")


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


@cache
def _segmenter() -> Any:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False)


def count_sentences(text: str) -> int:
    return sum(1 for sentence in _segmenter().segment(text) if sentence.strip())


@cache
def _detector() -> Callable[[str], str]:
    from langdetect import DetectorFactory, detect

    DetectorFactory.seed = 0  # langdetect samples; a fixed seed makes every verdict repeatable
    return detect  # type: ignore[no-any-return]


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code langdetect finds, or None where it finds no language (no letters)."""
    from langdetect.lang_detect_exception import LangDetectException

    try:
        return _detector()(text)
    except LangDetectException:
        return None
