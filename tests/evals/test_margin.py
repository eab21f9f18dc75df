"""The continuous metric: log p(compliant) − log p(violating) of the reference answer."""

from __future__ import annotations

from evals.families import BY_ID
from evals.runner import margin, reference_answer
from evals.split import Item
from evals.tasks import BY_ID as TASKS
from markup import Conversation


class LengthScorer:
    """Scores a continuation by minus its length: a real number to check the arithmetic on."""

    name = "fake"
    model = "fake"

    def count(self, text: str) -> int:
        return len(text)

    def generate(
        self, conversation: Conversation, method: str, max_new_tokens: int, seed: int
    ) -> str:
        return ""

    def score(self, conversation: Conversation, continuation: str, method: str) -> float:
        return -float(len(continuation))


def item(family: str, params: dict[str, object]) -> Item:
    return Item("x", "test", TASKS["capital-italy"], BY_ID[family], params, 0)


def test_margin_compares_the_compliant_with_the_violating_reference() -> None:
    it = item("end_phrase", {"phrase": "That is all."})
    assert reference_answer(it) == "Rome."
    # "Rome. That is all." is 13 characters longer than "Rome."
    assert margin(LengthScorer(), Conversation(), "none", it) == -13.0


def test_no_margin_when_the_reference_already_complies_or_nothing_transforms() -> None:
    assert margin(LengthScorer(), Conversation(), "none", item("max_words", {"n": 5})) is None
    assert margin(LengthScorer(), Conversation(), "none", item("min_words", {"n": 50})) is None


def test_lengths_are_capped_by_the_context_window_minus_the_output_budget() -> None:
    from evals.runner import PROMPT_ROOM, Grid, capped_lengths

    backend = LengthScorer()
    grid = Grid(lengths=(0, 256, 1024, 4096, 8192), max_new_tokens=64)
    assert capped_lengths(grid, backend) == [0, 256, 1024, 4096, 8192]  # no window known
    backend.context_window = 2048  # type: ignore[attr-defined]
    cap = 2048 - 64 - PROMPT_ROOM
    assert capped_lengths(grid, backend) == [0, 256, 1024, cap]
