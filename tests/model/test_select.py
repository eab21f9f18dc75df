"""Choosing strengths on the train split (model/fit/select.py, `salience model score`,
`salience model profile-pasta --data`) on the shipped model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from salience.evals import training
from salience.markup import Conversation
from salience.model.fit.select import MethodScore, pick, score_methods
from salience.model.local import LocalModel

from .test_fit import EXAMPLES, Ex

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [  # (target that obeys the rule, the answer that breaks it)
    Ex(EXAMPLES[0].conversation, "ROME.", rejected="Rome."),
    Ex(EXAMPLES[1].conversation, "4. Done", rejected="4."),
]


def test_scores_are_zero_for_no_bias_and_match_the_log_probabilities(lm: LocalModel) -> None:
    scores = score_methods(lm, PAIRS, ["uniform@0", "uniform@2"])
    zero, strong = scores
    assert zero.margin_gain == pytest.approx(0, abs=1e-4)
    assert zero.nll_change == pytest.approx(0, abs=1e-5)
    assert zero.examples == 2 and zero.items == 2

    # the gain is the change of log p(target) − log p(rejected), recomputed here by hand
    by_hand = []
    for e in PAIRS:
        steered = lm.score(e.conversation, e.target, "uniform@2") - lm.score(
            e.conversation, e.rejected, "uniform@2"
        )
        plain = lm.score(e.conversation, e.target) - lm.score(e.conversation, e.rejected)
        by_hand.append(steered - plain)
    assert strong.margin_gain == pytest.approx(sum(by_hand) / 2, abs=1e-3)
    assert abs(strong.margin_gain) > 0.01
    lo, hi = strong.margin_ci
    assert lo <= strong.margin_gain <= hi
    with pytest.raises(ValueError, match="rejected"):
        score_methods(lm, [Ex(PAIRS[0].conversation, "ROME.")], ["uniform"])


def test_pick_takes_the_largest_gain_within_the_nll_budget() -> None:
    def s(name: str, gain: float, nll: float) -> MethodScore:
        return MethodScore(name, 10, 5, gain, (gain - 1, gain + 1), nll, (nll - 0.1, nll + 0.1))

    scores = [s("a", 0.5, 0.01), s("b", 2.0, 0.30), s("c", 1.0, 0.04), s("d", -0.2, 0.0)]
    best = pick(scores, 0.05)
    assert best is not None and best.method == "c"
    chosen = pick(scores, 1.0)
    assert chosen is not None and chosen.method == "b"
    assert pick([s("d", -0.2, 0.0)], 1.0) is None  # a loss of margin is never picked


@pytest.fixture(scope="module")
def dataset(lm: LocalModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    def answer(conversation: Conversation) -> str:
        return lm.generate(conversation, "none", max_new_tokens=24).text

    def count(text: str) -> int:
        return len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    data = training.build(answer, count, items=8, variants=2, seed=0, lengths=(0, 64))
    assert any(e.rejected for e in data.examples), "no train item's own answer broke its rule"
    path = tmp_path_factory.mktemp("select") / "data.json"
    data.save(path)
    return path


def salience(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salience", "model", *args, "--threads", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_the_score_command_tables_methods_and_picks_one(dataset: Path) -> None:
    shipped = ROOT / "model/data/learned-smollm2-135m.json"
    done = salience("score", "--data", str(dataset), "--methods",
                    f"uniform@0,uniform@1,candidate={shipped}", "--limit", "3",
                    "--pick-within", "10")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\| candidate \| [1-3] \(", done.stdout, re.M), done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| uniform@")]
    assert len(rows) == 2 and re.match(r"\| uniform@0 \| [1-3] \(\d\) \| \+0\.000 \[", rows[0])
    assert "picked: " in done.stdout


def test_pasta_profiles_on_a_train_dataset(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "pasta.json"
    done = subprocess.run(
        [sys.executable, "-m", "salience", "model", "profile-pasta", "--data", str(dataset),
         "--items", "2", "--layers", "3", "--k", "2", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = json.loads(out.read_text())["meta"]
    assert str(dataset) in meta["profiling_set"] and len(meta["heads"]) == 2
    assert all(layer == 3 for layer, _, _ in meta["heads"])
    assert sum(s is not None for row in meta["scores"] for s in row) == 9  # one layer's heads
