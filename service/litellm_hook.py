"""salience inside LiteLLM: a pre-call hook that annotates and renders chat messages.

For LiteLLM's proxy (``config.yaml``)::

    litellm_settings:
      callbacks: service.litellm_hook.salience_hook     # the default hook: xml, fail open

or one of your own (a module on the proxy's path holding ``hook = SalienceHook(method="caps",
strict=True)``). For ``litellm.Router`` and ``litellm.completion`` in process::

    litellm.callbacks = [SalienceHook(method="xml")]

What it does, the same as salience's proxy and httpx transports (service.proxy.rewrite): the
messages of a chat call are parsed with salience markup honoured in trusted roles only (system
and developer by default; markup typed in other roles is defused, never obeyed), and rendered
with a text method (xml, caps, echo, system; "off" renders nothing). Every untrusted channel is
defused on every path (service.proxy.pipeline). Markup that cannot be parsed fails open (the
messages go unrendered, the trusted text as written, and the metadata says why), or with
``strict`` the call is refused with a ``SalienceRefusal`` (LiteLLM's BadRequestError, so the
Router does not retry it) that names the error code and where.

Per call, ``metadata={"salience": {"method": ..., "strict": ..., "detect_rules": ...}}`` (or a
``salience`` object in a proxy request's body) overrides the hook's settings. What was done is
put into the call's metadata as ``x-salience`` (the proxy's X-Salience value: "applied;
method=xml; spans=1; rules=1", "fail-open; error=…", "off") and ``salience`` details, where
LiteLLM's logging callbacks see it. A call is rewritten once even when both hooks run (the
proxy's pre-call hook and the deployment hook).

What it does not do: steer attention (a hosted model takes text only), touch calls other than
chat completions, or change responses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from litellm.exceptions import BadRequestError
from litellm.integrations.custom_logger import CustomLogger

from .proxy.pipeline import Refused, Rewritten, decide
from .proxy.rewrite import Options

CHAT_CALLS = frozenset({"completion", "acompletion"})
MARK = "x-salience"


class SalienceRefusal(BadRequestError):
    """A strict call whose messages salience could not annotate; nothing was sent."""

    def __init__(self, error: BaseException, model: str) -> None:
        code = str(getattr(error, "code", None) or "annotation-failed")
        where = {
            k: getattr(error, k)
            for k in ("offset", "line", "column", "message_index")
            if getattr(error, k, None) is not None
        }
        said = "".join(f"; {k}={v}" for k, v in where.items())
        super().__init__(
            message=f"salience refused the call ({code}{said}): {error}",
            model=model,
            llm_provider="salience",
        )
        self.code, self.where = code, where  # (after LiteLLM's own __init__ sets code)


class SalienceHook(CustomLogger):
    """The hook (see the module's docstring)."""

    def __init__(
        self,
        method: str = "xml",
        *,
        strict: bool = False,
        trusted_roles: Iterable[str] = ("system", "developer"),
        detect_rules: bool = False,
        max_elements: int | None = None,
    ) -> None:
        super().__init__()
        self.options = Options(method, strict, tuple(trusted_roles), max_elements, detect_rules)

    def apply(self, data: dict[str, Any], call_type: Any = "completion") -> dict[str, Any]:
        """``data`` (a call's keyword arguments, or a proxy request's body) with its messages
        rendered; the same object, changed in place, and returned."""
        kind = getattr(call_type, "value", call_type)
        messages = data.get("messages")
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        if kind not in CHAT_CALLS or not isinstance(messages, list) or MARK in metadata:
            return data
        requested = metadata.get("salience")
        body_options = data.pop("salience", None)  # a proxy client's body field, not upstream
        if body_options is None and isinstance(requested, Mapping):
            body_options = requested
        call = {"messages": messages}
        if body_options is not None:
            call["salience"] = body_options
        outcome = decide(call, self.options)
        if isinstance(outcome, Refused):
            error = outcome.error
            raise SalienceRefusal(error, str(data.get("model", ""))) from error
        data["messages"] = outcome.body["messages"]
        metadata[MARK] = outcome.header
        if isinstance(outcome, Rewritten):
            metadata["salience_details"] = outcome.details
        return data

    # LiteLLM's proxy: before its router picks a deployment
    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        return self.apply(data, call_type)

    # litellm.Router and the SDK (acompletion; completion where LiteLLM runs it): just before
    # the request goes to the chosen deployment
    async def async_pre_call_deployment_hook(
        self, kwargs: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        return self.apply(kwargs, call_type)


salience_hook = (
    SalienceHook()
)  # for a proxy config: `callbacks: service.litellm_hook.salience_hook`
