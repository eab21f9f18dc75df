"""Measure (c), the compliance margin: log p(compliant) − log p(violating), where violating is
the model's own answer to the task alone when it breaks the rule, and compliant is that answer
through the family's transform."""

from __future__ import annotations

from salience.evals.backends import Backend, Decoding, Outcome, References, Unit, evaluate_one
from salience.evals.families import BY_ID
from salience.evals.grid import Grid, _Planned
from salience.evals.records import reference_pair, result_of
from salience.evals.split import Item
from salience.evals.tasks import BY_ID as TASKS
from salience.markup import Conversation


class LengthScorer(Backend):
    """Scores a continuation by minus its length: a real number to check the arithmetic on."""

    name = "fake"
    model = "fake"
    scores = True

    def count(self, text: str) -> int:
        return len(text)

    def generate(self, conversation: Conversation, method: str, decoding: Decoding) -> str:
        return "Rome is the capital"

    def score(
        self, conversation: Conversation, continuation: str, method: str
    ) -> tuple[float, int]:
        return -float(len(continuation)), len(continuation.split())


def item(family: str, params: dict[str, object]) -> Item:
    return Item("x", "test", TASKS["capital-italy"], BY_ID[family], params, 0)


def test_the_references_are_the_models_own_answer_and_its_compliant_transform() -> None:
    it = item("end_phrase", {"phrase": "That is all."})
    refs = reference_pair(it, "Rome is the capital of Italy.")
    assert refs == References(
        violating="Rome is the capital of Italy.",
        compliant="Rome is the capital of Italy. That is all.",
    )
    assert it.family.strict(refs.compliant, it.params)
    assert not it.family.strict(refs.violating, it.params)


def test_no_references_when_the_answer_already_complies_or_nothing_transforms() -> None:
    already = item("end_phrase", {"phrase": "That is all."})
    assert reference_pair(already, "Rome. That is all.") is None
    assert reference_pair(already, "   ") is None
    assert reference_pair(item("min_words", {"n": 50}), "Rome.") is None  # no transform


def test_the_margin_is_compliant_minus_violating_in_total_and_per_token() -> None:
    it = item("end_phrase", {"phrase": "That is all."})
    refs = References(violating="Rome.", compliant="Rome. That is all.")
    conv = Conversation()
    u = Unit("k", conv, "none", 8, 0, references=refs)
    outcome = evaluate_one(LengthScorer(), u)
    assert outcome.margin == (-18.0, 4, -5.0, 1)
    p = _Planned("k", it, conv, {"method": "none"})
    result = result_of(Grid(margin=True), p, outcome)
    assert result["margin"] == -13.0
    assert result["margin_per_token"] == -18 / 4 - -5 / 1
    swapped = evaluate_one(LengthScorer(), Unit("k", conv, "none", 8, 0, references=References(
        violating=refs.compliant, compliant=refs.violating)))  # fmt: skip
    assert result_of(Grid(margin=True), p, swapped)["margin"] == 13.0


def test_a_sample_without_references_records_no_margin() -> None:
    it = item("end_phrase", {"phrase": "That is all."})
    p = _Planned("k", it, Conversation(), {"method": "none"})
    result = result_of(Grid(margin=True), p, Outcome("Rome.", [], None, 0.1))
    assert result["margin"] is None and result["margin_per_token"] is None


def test_lengths_are_capped_by_the_context_window_minus_the_output_budget() -> None:
    from salience.evals.grid import Grid
    from salience.evals.runner import PROMPT_ROOM, capped_lengths

    backend = LengthScorer()
    grid = Grid(lengths=(0, 256, 1024, 4096, 8192), max_new_tokens=64)
    assert capped_lengths(grid, backend) == [0, 256, 1024, 4096, 8192]  # no window known
    backend.context_window = 2048
    cap = 2048 - 64 - PROMPT_ROOM
    assert capped_lengths(grid, backend) == [0, 256, 1024, cap]
