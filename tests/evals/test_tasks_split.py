"""Tasks and their quality check; the train/test split."""

from __future__ import annotations

import pytest

from salience.evals.families import FAMILIES
from salience.evals.split import families, items, phrasings, split_of, tasks
from salience.evals.tasks import BY_ID, TASKS, quality


def test_there_are_at_least_100_varied_tasks_with_unique_ids() -> None:
    assert len(TASKS) >= 100 and len(BY_ID) == len(TASKS)
    kinds = {t.kind for t in TASKS}
    assert kinds == {"fact", "explain", "email", "list", "summary"}
    assert all(t.expect for t in TASKS if t.kind == "fact")


@pytest.mark.parametrize(
    ("task_id", "response", "rule", "ok", "reason"),
    [
        ("capital-italy", "The capital of Italy is Rome.", "Answer in French.", True, None),
        ("capital-italy", "ROME.", "Answer in capital letters.", True, None),
        ("capital-italy", "La capitale de l'Italie est Rome.", "Answer in French.", True, None),
        ("capital-italy", "The capital is Milan.", "", False, "missing the expected answer"),
        (
            "capital-italy",
            "Answer in French, in one short sentence. Rome.",
            "Answer in French, in one short sentence.",
            False,
            "echoes the rule",
        ),
        ("capital-italy", "Rome " * 20, "", False, "degenerate"),
        ("capital-italy", "", "", False, "degenerate"),
        ("list-00", "apple\nbanana\napple\napple\napple\napple", "", False, "degenerate"),
        (
            "email-00",
            "Hi Sam, could we move our meeting to Friday? Thanks, Alex",
            "Be brief.",
            True,
            None,
        ),
    ],
)
def test_quality_check(
    task_id: str, response: str, rule: str, ok: bool, reason: str | None
) -> None:
    result = quality(BY_ID[task_id], response, rule)
    assert result.ok is ok, result
    if reason is not None:
        assert reason in result.reasons


def test_split_is_by_id_disjoint_and_stable() -> None:
    train, test = tasks("train"), tasks("test")
    assert not {t.id for t in train} & {t.id for t in test}
    assert len(train) + len(test) == len(TASKS)
    assert 0.15 < len(train) / len(TASKS) < 0.45
    assert families("train") and families("test")
    assert not {f.id for f in families("train")} & {f.id for f in families("test")}
    assert split_of("task", "capital-italy") == split_of("task", "capital-italy")


def test_every_family_has_phrasings_on_both_sides() -> None:
    for family in FAMILIES:
        assert phrasings(family, "train") and phrasings(family, "test")


def test_items_never_cross_the_split_and_are_deterministic() -> None:
    test_items = items("test", 40, seed=3)
    assert [i.id for i in test_items] == [i.id for i in items("test", 40, seed=3)]
    train_tasks = {t.id for t in tasks("train")}
    train_families = {f.id for f in families("train")}
    for item in test_items:
        assert item.task.id not in train_tasks and item.family.id not in train_families
        assert item.phrasing in phrasings(item.family, "test")
        assert item.rule and "{" not in item.rule
