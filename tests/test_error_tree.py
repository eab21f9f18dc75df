"""The error tree in markup/errors.py names every SalienceError there is."""

from __future__ import annotations

import importlib
import os

import salience.markup.errors
from salience.markup.errors import SalienceError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map fetch at import
RAISERS = tuple(f"salience.{name}" for name in (
    "model.loader", "model.methods", "evals.openai_backend", "model.prompt", "evals.errors",
    "service.engine", "service.jobs", "service.proxy.rewrite", "service.litellm_hook"))  # fmt: skip


def subclasses(cls: type[SalienceError]) -> set[type[SalienceError]]:
    found: set[type[SalienceError]] = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_every_salience_error_is_in_the_drawn_tree() -> None:
    for name in RAISERS:
        importlib.import_module(name)
    tree = salience.markup.errors.__doc__ or ""
    ours = {c for c in subclasses(SalienceError) if c.__module__.startswith("salience.")}
    assert len(ours) >= 21
    for cls in ours:
        assert cls.__name__ in tree, f"{cls.__module__}.{cls.__name__} is not in the tree"
        assert isinstance(cls.code, str) and cls.code, cls
        assert cls.status in (422, 429, 502, 503) and cls.title, cls


def test_problem_details_and_openai_errors_read_one_shape() -> None:
    """Both mappings take status, code, title and the location fields from the error itself."""
    from salience.evals.errors import GridError
    from salience.markup import parse
    from salience.service.core.problems import problem_for
    from salience.service.engine import ModelUnavailableError
    from salience.service.proxy.errors import invalid, refusal_body

    try:
        parse("ok <rule>never closed", strict=True)
    except salience.markup.errors.MarkupError as error:
        markup_error = error
    problem = problem_for(markup_error)
    assert (problem["status"], problem["title"]) == (422, "Markup error")
    assert problem["type"].endswith(":unclosed-tag") and problem["offset"] == 3
    assert (problem["line"], problem["column"]) == (1, 4) and "message_index" not in problem
    assert refusal_body(markup_error)["error"]["offset"] == 3
    unavailable = problem_for(ModelUnavailableError("no weights"))
    assert (unavailable["status"], unavailable["type"]) == (
        503,
        "urn:salience:problem:model-unavailable",
    )
    family = problem_for(GridError("unknown family 'x'", code="bad-family"))
    assert (family["status"], family["title"], family["type"][-10:]) == (
        422,
        "Bad grid",
        "bad-family",
    )
    assert invalid(GridError("x")).status_code == 400  # the caller's fault, OpenAI's status
    assert invalid(ModelUnavailableError("x")).status_code == 503
