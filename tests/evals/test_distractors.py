"""Distractors reach their length in the target's tokens, by kind, deterministically; prompts put
the rule where the position says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from salience.evals.distractors import KINDS, make, prose_sentences
from salience.evals.prompts import POSITIONS, conversation
from salience.evals.split import items
from salience.markup import Level, load_encoding

ROOT = Path(__file__).resolve().parents[2]
ENC = load_encoding("cl100k_base").encoding


def count(text: str) -> int:
    return len(ENC.encode_ordinary(text))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("length", [64, 512])
def test_each_kind_reaches_its_length_at_a_sentence_boundary(kind: str, length: int) -> None:
    d = make(kind, length, count, seed=1, family_id="lowercase", exclude_task="fact-00")
    assert d.tokens == count(d.text)
    assert length <= d.tokens <= length + 100  # one sentence past the target at most
    assert (
        d.text
        == make(kind, length, count, seed=1, family_id="lowercase", exclude_task="fact-00").text
    )
    assert (
        d.text != make(kind, length, count, seed=2, family_id="lowercase").text or kind == "noise"
    )


def test_prose_records_its_sources_and_is_text_nobody_here_wrote() -> None:
    d = make("prose", 300, count, seed=0)
    assert d.sources and all(s.startswith(("python:", "file:")) for s in d.sources)
    assert len(prose_sentences()) > 500


def test_prose_does_not_depend_on_what_else_the_process_imported() -> None:
    """Importing a package's submodules adds them to its namespace (Ray, uvicorn and the
    service import email.*, logging.*, asyncio.*): the corpus, and so every prose distractor
    and every sample key built on one, must not change with them."""
    probe = (
        "import sys; {imports}from evals.distractors import prose_sentences; "
        "print(len(prose_sentences()), hash(prose_sentences()))"
    )
    extra = "import email.mime.text, logging.handlers, json.tool, asyncio.subprocess; "
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    outputs = [
        subprocess.run(
            [sys.executable, "-c", probe.format(imports=imports)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        ).stdout
        for imports in ("", extra)
    ]
    assert outputs[0] and outputs[0] == outputs[1]


def test_similar_excludes_the_items_own_task_and_conflicting_is_marked_low() -> None:
    d = make("similar", 2000, count, seed=0, exclude_task="capital-italy")
    assert "capital of Italy" not in d.text
    c = make("conflicting", 400, count, seed=0, family_id="no_commas")
    assert "<low>Use commas freely" in c.text


def test_zero_length_is_empty() -> None:
    assert make("prose", 0, count).text == ""


@pytest.mark.parametrize("position", POSITIONS)
def test_positions_place_the_rule(position: str) -> None:
    item = items("test", 1, seed=0)[0]
    d = make("conflicting", 200, count, seed=0, family_id=item.family.id)
    conv = conversation(item, d, position)
    hard = [
        m.document.span_text(s)
        for m in conv.messages
        for s in m.document.spans
        if s.level is Level.HARD
    ]
    assert hard == [item.rule] * (2 if position == "both" else 1)
    user = conv.messages[-1].document
    assert user.text.endswith(item.task.prompt)
    if position == "user":  # untrusted: the counter-instructions are typed as rules, not parsed
        assert conv.messages[0].role == "system" and conv.messages[0].trusted
        assert not conv.messages[-1].trusted and user.spans == ()
        assert "<rule>" in user.text and "<low>" not in user.text
        return
    assert any(s.level is Level.LOW for s in user.spans)  # the conflicting instructions
    if position == "system":
        assert conv.messages[0].role == "system"
    if position == "after":
        assert user.text.index(item.rule) > user.text.index("Background")
    if position == "before":
        assert user.text.index(item.rule) < user.text.index("Background")
