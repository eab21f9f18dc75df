"""salience: mark what matters in a prompt, and make the model heed it.

The names a user reaches for first, each importable from here::

    from salience import parse, render

    doc = parse("Answer briefly. <rule>Reply in JSON.</rule>")
    doc.text                        # 'Answer briefly. Reply in JSON.' (the clean text)
    [(s.start, s.end, s.level.value) for s in doc.spans]   # [(16, 30, 'hard')]
    render(doc, "xml")              # the rule restated in tags a hosted model reads

- ``parse`` / ``parse_messages``: markup (``<rule>`` tags, Markdown emphasis and callouts, HTML
  rich text) into a ``Document`` / ``Conversation`` of clean text and importance ``Span``\\ s;
  ``parse_messages`` honours markup in trusted roles only.
- ``Document``, ``Conversation``, ``Span``, ``Level``: what parsing returns (a span is a
  character range of the clean text with its level: ``hard``, ``high``, ``normal``, ``low``).
- ``tokenize``: a parsed document as tokens with their importance levels and special tokens.
- ``render``: a document or conversation as text for any model (``xml``, ``caps``, ``echo``,
  ``system``, ``plain``).
- ``LocalModel``: the local model, steered on the marked keys (``lm.generate(conv, "share")``).
- ``SalienceTransport`` / ``AsyncSalienceTransport``: salience in front of any httpx client
  (the OpenAI SDK's included), in process.
- ``SalienceHook``: salience as a LiteLLM pre-call hook (``pip install 'salience[litellm]'``).
- ``SalienceError`` / ``MarkupError``: the root of every error salience raises, and of the
  markup errors (each carries a code and, where it applies, the character offset).

The parts live in ``salience.markup`` (parsing, rendering, tokens), ``salience.model`` (the
local model and steering), ``salience.evals`` (the constraint-following eval) and
``salience.service`` (the HTTP service, the proxy and the ``salience`` command). Importing
``salience`` itself loads none of them: each name loads its part when first used.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .markup import (
        Conversation,
        Document,
        Level,
        MarkupError,
        SalienceError,
        Span,
        parse,
        parse_messages,
        render,
        tokenize,
    )
    from .model.local import LocalModel
    from .service.litellm_hook import SalienceHook
    from .service.proxy import AsyncSalienceTransport, SalienceTransport

try:
    __version__ = version("salience")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

# each public name: the module that defines it
_WHERE = {
    **dict.fromkeys(
        (
            "Conversation",
            "Document",
            "Level",
            "MarkupError",
            "SalienceError",
            "Span",
            "parse",
            "parse_messages",
            "render",
            "tokenize",
        ),
        "salience.markup",
    ),
    "LocalModel": "salience.model.local",
    "SalienceTransport": "salience.service.proxy",
    "AsyncSalienceTransport": "salience.service.proxy",
    "SalienceHook": "salience.service.litellm_hook",
}
_EXTRA = {"salience.service.litellm_hook": "litellm"}  # the extra a module needs

__all__ = [
    "AsyncSalienceTransport",
    "Conversation",
    "Document",
    "Level",
    "LocalModel",
    "MarkupError",
    "SalienceError",
    "SalienceHook",
    "SalienceTransport",
    "Span",
    "__version__",
    "parse",
    "parse_messages",
    "render",
    "tokenize",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'salience' has no attribute {name!r}")
    try:
        module = importlib.import_module(where)
    except ModuleNotFoundError as error:
        extra = _EXTRA.get(where)
        if extra is None or error.name is None or not error.name.startswith(extra):
            raise
        raise ImportError(
            f"salience.{name} needs {extra}: pip install 'salience[{extra}]'"
        ) from error
    value = getattr(module, name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
