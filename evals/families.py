"""Constraint families: verifiable rules, IFEval-style, written here.

Each family has parameters drawn by seed, several phrasings of the rule, a strict verifier, and,
where one exists, a transform that turns any response into a compliant one (for training targets
and the continuous metric). The loose verifier is IFEval's: a response also passes if it passes
strictly with its first line, its last line, or both removed, or with every ``*`` removed.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]

KEYWORDS = ["river", "lantern", "orbit", "harvest", "compass", "velvet", "signal", "meadow"]
FORBIDDEN = ["very", "really", "thing", "good", "just", "also"]
END_PHRASES = ["Is there anything else I can help with?", "That is all.", "Thank you for reading."]
START_WORDS = ["Certainly", "Indeed", "Well", "Absolutely"]
WORD = re.compile(r"\b[\w'-]+\b")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
BULLET = re.compile(r"^\s*[*-]\s", re.M)
PLACEHOLDER = re.compile(r"\[[^\[\]\n]+\]")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(text.strip()) if s.strip()]


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


@dataclass(frozen=True)
class Family:
    id: str
    phrasings: tuple[str, ...]  # str.format templates over the params
    draw: Callable[[random.Random], Params]
    check: Callable[[str, Params], bool]  # the strict verifier
    transform: Callable[[str, Params], str | None] | None = None

    def rule(self, params: Params, phrasing: int) -> str:
        return self.phrasings[phrasing].format(**params)

    def strict(self, response: str, params: Params) -> bool:
        return self.check(response, params)

    def loose(self, response: str, params: Params) -> bool:
        return any(self.check(v, params) for v in loose_variants(response))

    def comply(self, response: str, params: Params) -> str | None:
        """A compliant version of ``response``, or None when this family has no transform."""
        if self.transform is None:
            return None
        out = self.transform(response, params)
        return out if out is not None and self.check(out, params) else None


def loose_variants(response: str) -> list[str]:
    lines = response.split("\n")
    cut = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return cut + [v.replace("*", "") for v in cut]


def _no_params(rng: random.Random) -> Params:
    return {}


def _has_letters(text: str) -> bool:
    return any(c.isalpha() for c in text)


def _keep_first_words(text: str, n: int) -> str:
    matches = list(WORD.finditer(text))
    if len(matches) <= n:
        return text
    return text[: matches[n - 1].end()].rstrip() + "."


def _remove_word(text: str, word: str) -> str:
    out = re.sub(rf"\s*\b{re.escape(word)}\b", "", text, flags=re.I)
    return out.strip() or "-"


def _json_check(response: str, params: Params) -> bool:
    text = response.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    if fence:
        text = fence.group(1)
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and all(k in data for k in params["keys"])


def _bullets_transform(response: str, params: Params) -> str | None:
    parts = sentences(response.replace("\n", " "))
    n = params["n"]
    if len(parts) < n:
        parts += [f"Point {i + 1}." for i in range(n - len(parts))]
    head, tail = parts[: n - 1], " ".join(parts[n - 1 :])
    return "\n".join(f"* {p.strip()}" for p in [*head, tail])


def _paragraphs_transform(response: str, params: Params) -> str | None:
    parts = sentences(response.replace("\n", " "))
    n = params["n"]
    if len(parts) < n:
        parts += [f"Part {i + 1}." for i in range(n - len(parts))]
    size = len(parts) // n
    groups = [parts[i * size : (i + 1) * size] for i in range(n - 1)] + [parts[(n - 1) * size :]]
    return "\n\n".join(" ".join(g) for g in groups)


FAMILIES: tuple[Family, ...] = (
    Family(
        "lowercase",
        (
            "Your entire response must be in lowercase letters; no capital letters at all.",
            "Write everything in lowercase.",
            "Do not use any uppercase letters in your answer.",
        ),
        _no_params,
        lambda r, p: _has_letters(r) and r == r.lower(),
        lambda r, p: r.lower(),
    ),
    Family(
        "uppercase",
        (
            "Your entire response must be in capital letters.",
            "Write your whole answer in uppercase.",
            "Answer using only CAPITAL letters.",
        ),
        _no_params,
        lambda r, p: _has_letters(r) and r == r.upper(),
        lambda r, p: r.upper(),
    ),
    Family(
        "no_commas",
        (
            "Do not use any commas in your response.",
            "Your answer must not contain a single comma.",
            "Avoid commas entirely.",
        ),
        _no_params,
        lambda r, p: bool(r.strip()) and "," not in r,
        lambda r, p: r.replace(",", "") if r.replace(",", "").strip() else None,
    ),
    Family(
        "max_words",
        (
            "Answer in at most {n} words.",
            "Your response must be no longer than {n} words.",
            "Use {n} words or fewer.",
        ),
        lambda rng: {"n": rng.choice([5, 10, 15, 20, 30])},
        lambda r, p: 0 < len(words(r)) <= p["n"],
        lambda r, p: _keep_first_words(r, p["n"]) if words(r) else None,
    ),
    Family(
        "min_words",
        (
            "Answer in at least {n} words.",
            "Your response must contain {n} words or more.",
            "Write no fewer than {n} words.",
        ),
        lambda rng: {"n": rng.choice([30, 50, 80])},
        lambda r, p: len(words(r)) >= p["n"],
        None,
    ),
    Family(
        "max_sentences",
        (
            "Answer in at most {n} sentences.",
            "Your response must have no more than {n} sentences.",
            "Keep it to {n} sentences or fewer.",
        ),
        lambda rng: {"n": rng.choice([1, 2, 3])},
        lambda r, p: 0 < len(sentences(r)) <= p["n"],
        lambda r, p: " ".join(sentences(r)[: p["n"]]) if sentences(r) else None,
    ),
    Family(
        "include_keyword",
        (
            "Include the word '{keyword}' in your response.",
            "Your answer must contain the keyword {keyword}.",
            'Make sure to use the word "{keyword}" somewhere.',
        ),
        lambda rng: {"keyword": rng.choice(KEYWORDS)},
        lambda r, p: re.search(rf"\b{p['keyword']}\b", r, re.I) is not None,
        lambda r, p: f"{r.rstrip()} ({p['keyword']})",
    ),
    Family(
        "forbidden_word",
        (
            "Do not use the word '{word}' anywhere in your response.",
            "Never write the word {word}.",
            'The word "{word}" must not appear in your answer.',
        ),
        lambda rng: {"word": rng.choice(FORBIDDEN)},
        lambda r, p: bool(r.strip()) and re.search(rf"\b{p['word']}\b", r, re.I) is None,
        lambda r, p: _remove_word(r, p["word"]),
    ),
    Family(
        "json_keys",
        (
            "Respond only with a JSON object that has the keys {keys_text}.",
            "Your entire output must be valid JSON: an object with keys {keys_text}.",
            "Format the answer as a JSON object containing the keys {keys_text}.",
        ),
        lambda rng: _json_params(rng),
        _json_check,
        lambda r, p: json.dumps(
            {k: (r.strip() if i == 0 else "") for i, k in enumerate(p["keys"])}
        ),
    ),
    Family(
        "bullet_count",
        (
            "Your answer must be exactly {n} bullet points, each starting with '* '.",
            "Answer with exactly {n} bullet points in Markdown ('* like this').",
            "Use exactly {n} bullets, one per line, each beginning with an asterisk.",
        ),
        lambda rng: {"n": rng.choice([2, 3, 4])},
        lambda r, p: len(BULLET.findall(r)) == p["n"],
        _bullets_transform,
    ),
    Family(
        "title",
        (
            "Give your answer a title wrapped in double angular brackets, like <<title>>.",
            "Start with a title in double angle brackets, for example <<my title>>.",
            "Your response must include a title of the form <<title>>.",
        ),
        _no_params,
        lambda r, p: re.search(r"<<[^<>\n]+>>", r) is not None,
        lambda r, p: f"<<Answer>>\n{r}",
    ),
    Family(
        "end_phrase",
        (
            "End your response with the exact phrase: {phrase}",
            'Finish your answer with these exact words: "{phrase}" Nothing may follow them.',
            "The last words of your response must be: {phrase}",
        ),
        lambda rng: {"phrase": rng.choice(END_PHRASES)},
        lambda r, p: r.strip().endswith(p["phrase"]),
        lambda r, p: f"{r.rstrip()} {p['phrase']}",
    ),
    Family(
        "start_word",
        (
            "Begin your response with the word '{word}'.",
            "The first word of your answer must be {word}.",
            'Start your reply with "{word}".',
        ),
        lambda rng: {"word": rng.choice(START_WORDS)},
        lambda r, p: re.match(rf"\s*{p['word']}\b", r) is not None,
        lambda r, p: f"{p['word']}, {r.lstrip()}",
    ),
    Family(
        "quoted",
        (
            "Wrap your entire response in double quotation marks.",
            "Put your whole answer inside double quotes.",
            'Your response must start and end with a double quotation mark (").',
        ),
        _no_params,
        lambda r, p: len(r.strip()) > 2 and r.strip().startswith('"') and r.strip().endswith('"'),
        lambda r, p: f'"{r.strip()}"' if r.strip() else None,
    ),
    Family(
        "postscript",
        (
            "At the end of your response, add a postscript starting with P.S.",
            'Finish with a postscript that begins with "P.S."',
            "Include a P.S. at the very end of your answer.",
        ),
        _no_params,
        lambda r, p: re.search(r"(?:^|\n)\s*P\.S\.", r) is not None,
        lambda r, p: f"{r.rstrip()}\n\nP.S. I hope this helps.",
    ),
    Family(
        "paragraph_count",
        (
            "Your response must have exactly {n} paragraphs, separated by blank lines.",
            "Write exactly {n} paragraphs, with an empty line between them.",
            "Use {n} paragraphs, no more and no fewer, separated by blank lines.",
        ),
        lambda rng: {"n": rng.choice([2, 3])},
        lambda r, p: len(paragraphs(r)) == p["n"],
        _paragraphs_transform,
    ),
    Family(
        "placeholders",
        (
            "Include at least {n} placeholders in square brackets, such as [name].",
            "Your answer must contain {n} or more placeholders like [address].",
            "Use at least {n} bracketed placeholders, for example [date].",
        ),
        lambda rng: {"n": rng.choice([1, 2, 3])},
        lambda r, p: len(PLACEHOLDER.findall(r)) >= p["n"],
        lambda r, p: r.rstrip() + " " + " ".join(f"[item {i + 1}]" for i in range(p["n"])),
    ),
)


def _json_params(rng: random.Random) -> Params:
    keys = rng.sample(["answer", "reason", "confidence", "topic", "summary"], k=rng.choice([1, 2]))
    return {"keys": keys, "keys_text": " and ".join(f'"{k}"' for k in keys)}


BY_ID: dict[str, Family] = {f.id: f for f in FAMILIES}
assert len(BY_ID) == len(FAMILIES) >= 15
