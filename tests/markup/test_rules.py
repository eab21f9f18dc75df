"""Rule detection: plain sentences that state a rule become hard spans with source detected,
only where asked, only where nothing is marked, never in untrusted messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salience.markup import Level, Source, parse, parse_messages
from salience.markup._rules import FEATURE_NAMES, load_detector, sentences_with_cues

SYSTEM = (
    "You are the support assistant of a small bookshop. The shop opened in 1998. "
    "Answer in at most 50 words. Never share a customer's address.\n"
    "- Always reply in English.\n"
    "Our customers are mostly students."
)


def detected(text: str) -> list[str]:
    doc = parse(text, detect_rules=True)
    return [doc.text[s.start : s.end] for s in doc.spans if s.source is Source.DETECTED]


def test_rule_sentences_are_detected_and_background_is_not() -> None:
    assert detected(SYSTEM) == [
        "Answer in at most 50 words.",
        "Never share a customer's address.",
        "Always reply in English.",
    ]
    doc = parse(SYSTEM, detect_rules=True)
    assert {s.level for s in doc.spans} == {Level.HARD}
    assert parse(SYSTEM).spans == ()  # off unless asked


def test_explicit_marks_win_and_low_marks_keep_detection_out() -> None:
    text = "Answer in at most **fifty** words. <low>Never use commas.</low> Always be brief."
    doc = parse(text, "markdown", detect_rules=True)
    spans = [(doc.text[s.start : s.end], s.level.value, s.source.value) for s in doc.spans]
    assert spans == [
        ("Answer in at most ", "hard", "detected"),
        ("fifty", "high", "markdown"),
        (" words.", "hard", "detected"),
        ("Never use commas.", "low", "tag"),
        ("Always be brief.", "hard", "detected"),
    ]


def test_untrusted_messages_never_get_detected_rules() -> None:
    messages = [
        {"role": "system", "content": "Never reveal the password."},
        {"role": "user", "content": "Never reveal the password. Always answer in French."},
    ]
    conversation = parse_messages(messages, detect_rules=True)
    system, user = conversation.messages
    assert [s.source for s in system.document.spans] == [Source.DETECTED]
    assert user.document.spans == ()


def test_the_shipped_detector_records_how_it_was_made() -> None:
    path = Path(__file__).resolve().parents[2] / "markup" / "data" / "rule-detector.json"
    data = json.loads(path.read_text())
    assert data["features"] == list(FEATURE_NAMES)
    assert "python -m salience.evals.detector fit" in data["meta"]["command"]
    assert data["meta"]["data_version"]
    assert len(data["weights"]) == len(FEATURE_NAMES) and data["threshold"] == 0.5


def test_a_detector_fitted_on_other_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps({"features": ["must"], "weights": [1.0], "bias": 0, "threshold": 0.5})
    )
    with pytest.raises(ValueError, match="refit"):
        load_detector(str(path))


@pytest.mark.parametrize(
    "text",
    [
        "must " * 400,  # one long sentence: longer than a rule can be, not scored
        "Never do x. " * 300,
        "e.g. must. " * 300,
        "\n\n- \n* must\n" * 100,
    ],
)
def test_hostile_cue_runs_give_in_bounds_ordered_sentences(text: str) -> None:
    previous = 0
    for a, b in sentences_with_cues(text):
        assert previous <= a < b <= len(text)
        previous = b


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["Never do x.", "Answer in JSON.", " ", "\n", "- ", "must", "e.g.", "Dr. ", "A",
             "<low>", "</low>", "**", "Please use tables.", "? ", "! ", ": ", "3.5"]
        )
        | st.text(max_size=6),
        max_size=25,
    ).map("".join)
)  # fmt: skip
def test_detected_spans_are_sorted_disjoint_and_never_cover_explicit_marks(text: str) -> None:
    plain = parse(text)
    doc = parse(text, detect_rules=True)
    assert doc.text == plain.text
    explicit = [s for s in doc.spans if s.source is not Source.DETECTED]
    assert tuple(explicit) == plain.spans  # detection only adds
    previous = 0
    for span in doc.spans:
        assert previous <= span.start < span.end <= len(doc.text)
        previous = span.end
