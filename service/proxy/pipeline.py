"""The proxy's one decision: what a chat request becomes on its way to a model that takes text.

``decide(body, base, headers)`` reads the request's options (the body's ``salience`` field, the
``X-Salience-*`` headers, over ``base``), decides strictness once, and returns exactly one of:

- ``Rewritten``: the body to send (annotated and rendered, ``salience`` removed, every untrusted
  channel defused), its ``X-Salience`` value and the time the annotation took;
- ``Refused``: the request asked to be strict and cannot be annotated; the error says why;
- ``PassedOn``: the request could not be annotated and fails open: the body goes on without its
  ``salience`` field, the trusted text as written, and every untrusted channel still defused
  (``service.proxy.channels``: no parse needed), so a fault in the markup never lets a
  client's typed marker through.

The proxy route, both httpx transports and the LiteLLM hook call it and only translate its
answer into their own world (an HTTP response, an httpx response, a LiteLLM exception).

``decide_local`` is the same decision for the model salience runs itself, which reads the
parsed conversation instead of a rendered body: ``Steered`` (the conversation, the method, the
``X-Salience`` value) or ``Refused``. Broken markup fails open here too: the text as written, no
importance, and so no steering (method ``none``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from salience.markup import Conversation, parse_messages
from salience.markup.errors import MarkupError
from salience.model.methods import check_name

from ..core.config import Settings
from .channels import defuse_channels
from .rewrite import (
    OFF,
    OPTIONS_FIELD,
    Options,
    fail_open_header,
    options_of,
    requested_strict,
    rewrite,
)


@dataclass(frozen=True)
class Rewritten:
    body: dict[str, Any]
    header: str  # the X-Salience value: "applied; method=xml; spans=2; rules=1", "off", …
    seconds: float
    details: dict[str, Any]


@dataclass(frozen=True)
class Refused:
    error: BaseException


@dataclass(frozen=True)
class PassedOn:
    body: Any
    header: str  # "fail-open; error=markup-error; offset=17; message=0; defused=1"
    error: BaseException
    seconds: float


@dataclass(frozen=True)
class Steered:
    conversation: Conversation  # parsed with the proxy's trust rules (plain text on fail-open)
    method: str  # the steering method to generate with ("none" on fail-open)
    header: str  # "local; method=share; spans=2", "local; method=none; fail-open; error=…"
    seconds: float


Outcome = Rewritten | Refused | PassedOn


def decide(body: Any, base: Options, headers: Mapping[str, str] | None = None) -> Outcome:
    """What ``body`` (a parsed chat request) becomes under ``base`` and the request's own
    options; see the module."""
    start = time.perf_counter()
    body_options = options_of(body)
    strict = requested_strict(body_options, headers, base.strict)
    try:
        options = base.merged(body_options, headers)
        strict = options.strict
        result = rewrite(body, options)
        rendered = options.method not in OFF  # the text was rendered (and so defused) already
        sent, defused = defuse_channels(result.body, options.trusted_roles, rendered)
    except Exception as error:  # fail open: whatever went wrong, the request still goes
        if strict:
            return Refused(error)
        passed, defused = _passed_on(body, base.trusted_roles)
        header = fail_open_header(error) + (f"; defused={defused}" if defused else "")
        return PassedOn(passed, header, error, time.perf_counter() - start)
    header = result.header() + (f"; defused={defused}" if defused and result.changed else "")
    if defused and not result.changed:
        header = _changed_by_defusing(result.header(), defused)
    details = {
        "method": result.method,
        "changed": result.changed or bool(defused),
        "spans": result.spans,
        "rules": result.rules,
        "defused": defused,
        "seconds": round(result.seconds, 6),
        "notes": list(result.notes),
    }
    return Rewritten(sent, header, time.perf_counter() - start, details)


def decide_local(
    messages: Sequence[Mapping[str, Any]],
    body: Mapping[str, Any],
    base: Options,
    headers: Mapping[str, str] | None,
    method: str,
    catalogue: Mapping[str, str] | None = None,
) -> Steered | Refused:
    """What a chat request for the local model (``messages`` of ``body``) is generated with:
    ``method`` (the model name's) under ``base`` and the request's own options. A bad option, or
    a method naming a file outside the operator's ``catalogue``, is the client's error (raised,
    as ``decide`` never raises them: there is nothing to fall back to here)."""
    start = time.perf_counter()
    options = replace(base, method=method).merged(options_of(body), headers)
    method = check_name(options.method, catalogue)  # a client names no file
    try:
        conversation = options.parse(messages)
    except MarkupError as error:
        if options.strict:
            return Refused(error)
        # fail open: the text as written, no importance, no steering (a message that is not a
        # message still fails: MessageError)
        conversation = parse_messages(messages, (), format="plain")
        header = f"local; method=none; {fail_open_header(error)}"
        return Steered(conversation, "none", header, time.perf_counter() - start)
    spans = sum(len(m.document.spans) for m in conversation.messages)
    header = f"local; method={method}; spans={spans}"
    return Steered(conversation, method, header, time.perf_counter() - start)


def decide_unreadable(
    error: ValueError, base: Options, headers: Mapping[str, str] | None = None
) -> Refused | PassedOn:
    """The outcome for a body that is not JSON: refused if the headers (or ``base``) ask for
    strictness, else passed on as it is (there is no message in it to defuse)."""
    if requested_strict(None, headers, base.strict):
        return Refused(error)
    return PassedOn(None, "fail-open; error=invalid-json", error, 0.0)


def _changed_by_defusing(header: str, defused: int) -> str:
    """The header of a body only the channel defusing changed ("unchanged" no longer true)."""
    if header.startswith("unchanged"):
        header = "applied" + header[len("unchanged") :]
    return f"{header}; defused={defused}"


def _passed_on(body: Any, trusted_roles: tuple[str, ...]) -> tuple[Any, int]:
    if not isinstance(body, dict):
        return body, 0
    out = {k: v for k, v in body.items() if k != OPTIONS_FIELD}
    return defuse_channels(out, trusted_roles)


def base_options(settings: Settings) -> Options:
    """The server's own options, before a request's body field and headers override them."""
    return Options(
        settings.proxy_method,
        settings.proxy_strict,
        settings.trusted_roles,
        settings.max_markup_elements,
        settings.proxy_detect_rules,
    )
