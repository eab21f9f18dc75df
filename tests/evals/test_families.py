"""Every verifier on hand-written responses: at least three passing and three failing, strict
and loose; and every transform yields a response its verifier accepts."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salience.evals.families import BY_ID, FAMILIES

# family -> (params, strictly passing, failing even loosely, failing strictly but passing loosely)
CASES: dict[str, tuple[dict[str, Any], list[str], list[str], list[str]]] = {
    "lowercase": (
        {},
        ["rome is the capital.", "all small, 42 times!", "ok\nfine"],
        ["Rome is the capital.", "ALL CAPS", "12345"],
        ["Answer:\nrome is the capital."],
    ),
    "uppercase": (
        {},
        ["ROME IS THE CAPITAL.", "YES, 42!", "OK\nFINE"],
        ["Rome", "rome is nice", "!!!"],
        ["ROME IS THE CAPITAL.\nHope this helps."],
    ),
    "no_commas": (
        {},
        ["Rome is the capital.", "No commas here\nat all", "Just words"],
        ["Rome, Italy", "a, b, c", ""],
        ["Here it is, friend:\nRome is the capital."],
    ),
    "max_words": (
        {"n": 5},
        ["Rome is the capital.", "Yes.", "It is Rome, Italy."],
        ["Rome is the capital of Italy today.", "", "one two three four five six"],
        ["Sure, here is my short answer to it:\nRome."],
    ),
    "min_words": (
        {"n": 5},
        ["Rome is the capital of Italy.", "one two three four five", "A b c d e f g."],
        ["Rome.", "Rome is the capital.", ""],
        [],
    ),
    "max_sentences": (
        {"n": 2},
        ["Rome. It is old.", "Rome is the capital of Italy.", "Yes! Indeed."],
        ["One. Two. Three.", "", "A. B. C. D."],
        ["Hello there. This is long.\nRome. Old."],
    ),
    "include_keyword": (
        {"keyword": "orbit"},
        ["The moon is in orbit.", "ORBIT matters", "an orbit, then"],
        ["The moon circles us.", "orbital mechanics", ""],
        [],
    ),
    "forbidden_word": (
        {"word": "very"},
        ["It is old.", "Everything is fine.", "every day"],
        ["It is very old.", "Very good", ""],
        ["Very well, here it is:\nIt is old."],
    ),
    "json_keys": (
        {"keys": ["answer", "reason"]},
        [
            '{"answer": "Rome", "reason": "capital"}',
            '```json\n{"answer": 1, "reason": 2}\n```',
            '{"reason": "", "answer": null, "x": 3}',
        ],
        ['{"answer": "Rome"}', "answer: Rome", '["answer", "reason"]'],
        ['Here is the JSON:\n{"answer": "Rome", "reason": "capital"}'],
    ),
    "bullet_count": (
        {"n": 3},
        ["* a\n* b\n* c", "- one\n- two\n- three", "Intro\n* a\n* b\n* c"],
        ["* a\n* b", "a, b, c", "* a\n* b\n* c\n* d\n* e\n* f"],
        ["* a\n* b\n* c\n* d"],
    ),
    "title": (
        {},
        ["<<Rome>>\nIt is the capital.", "Text <<A title>> text", "<<x>>"],
        ["<Rome>", "<<>>", "Title: Rome"],
        [],
    ),
    "end_phrase": (
        {"phrase": "That is all."},
        ["Rome. That is all.", "That is all.", "Rome.\nThat is all.  "],
        ["That is all. Rome.", "That is all", "Rome."],
        ["Rome. That is all.\n---"],
    ),
    "start_word": (
        {"word": "Indeed"},
        ["Indeed, Rome.", "Indeed it is.", "  Indeed."],
        ["Rome, indeed.", "Indeedly", "indeed, Rome"],
        ["Answer:\nIndeed, Rome."],
    ),
    "quoted": (
        {},
        ['"Rome."', '"Rome is old." ', '"a"'],
        ["Rome.", '"Rome.', "'Rome.'"],
        ['Sure:\n"Rome."'],
    ),
    "postscript": (
        {},
        ["Rome.\n\nP.S. It is old.", "P.S. first", "Text\n  P.S. later"],
        ["Rome. PS it is old.", "Rome.", "p.s. lower"],
        [],
    ),
    "paragraph_count": (
        {"n": 2},
        ["One.\n\nTwo.", "A b c.\n\nD e f.\n", "x\n  \ny"],
        ["One paragraph.", "A.\n\nB.\n\nC.\n\nD.\n\nE.", ""],
        ["A.\n\nB.\n\nC."],
    ),
    "placeholders": (
        {"n": 2},
        ["Dear [name], at [address].", "[a] [b] [c]", "Meet on [date]\nat [place]."],
        ["Dear [name].", "Dear name.", "[] []"],
        [],
    ),
}


def test_every_family_has_cases() -> None:
    assert set(CASES) == set(BY_ID)


@pytest.mark.parametrize("family_id", sorted(CASES))
def test_verifiers_on_hand_written_responses(family_id: str) -> None:
    family = BY_ID[family_id]
    params, passing, failing, loose_only = CASES[family_id]
    assert len(passing) >= 3 and len(failing) >= 3
    for response in passing:
        assert family.strict(response, params), response
        assert family.loose(response, params), response
    for response in failing:
        assert not family.strict(response, params), response
        assert not family.loose(response, params), response
    for response in loose_only:
        assert not family.strict(response, params), response
        assert family.loose(response, params), response


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.id)
def test_every_phrasing_renders_with_drawn_params(family: Any) -> None:
    rng = random.Random(0)
    for _ in range(5):
        params = family.draw(rng)
        for i in range(len(family.phrasings)):
            rule = family.rule(params, i)
            assert "{" not in rule.replace("{}", "") or family.id == "json_keys", rule
    assert len(family.phrasings) >= 3


@settings(max_examples=150, deadline=None)
@given(response=st.text(min_size=1, max_size=200), seed=st.integers(0, 1000))
def test_transforms_always_produce_compliant_responses(response: str, seed: int) -> None:
    rng = random.Random(seed)
    for family in FAMILIES:
        params = family.draw(rng)
        compliant = family.comply(response, params)
        if compliant is not None:
            assert family.strict(compliant, params), (family.id, response, compliant)


def test_transforms_exist_for_all_but_min_words() -> None:
    response = "Rome is the capital of Italy. It is very old. People, it seems, love it."
    rng = random.Random(1)
    missing = [f.id for f in FAMILIES if f.comply(response, f.draw(rng)) is None]
    assert missing == ["min_words"]
