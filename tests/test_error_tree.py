"""The error tree in markup/errors.py names every SalienceError there is."""

from __future__ import annotations

import importlib

import markup.errors
from markup.errors import SalienceError

RAISERS = ("model.loader", "model.methods", "model.openai_backend", "model.prompt",
           "service.proxy.rewrite", "service.litellm_hook")  # fmt: skip


def subclasses(cls: type[SalienceError]) -> set[type[SalienceError]]:
    found: set[type[SalienceError]] = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_every_salience_error_is_in_the_drawn_tree() -> None:
    for name in RAISERS:
        importlib.import_module(name)
    tree = markup.errors.__doc__ or ""
    ours = {c for c in subclasses(SalienceError) if c.__module__.startswith(("markup", "model",
            "service", "evals"))}  # fmt: skip
    assert len(ours) >= 17
    for cls in ours:
        assert cls.__name__ in tree, f"{cls.__module__}.{cls.__name__} is not in the tree"
        assert isinstance(cls.code, str) and cls.code, cls
