"""salience as a LiteLLM pre-call hook (service/litellm_hook.py), in process with Router
against the real llama.cpp server over the shipped model: a rendering reaches the model, broken
markup fails open (the original goes, the metadata says why), strict refuses (a BadRequestError,
which the Router does not retry)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map fetch at import

import litellm
from litellm.exceptions import BadRequestError
from litellm.integrations.custom_logger import CustomLogger
from litellm.router import Router

from salience.service.litellm_hook import SalienceHook, SalienceRefusal

from .conftest import LLAMA_MODEL

MARKED = [
    {"role": "system", "content": "You are terse. <rule>Answer in one sentence.</rule>"},
    {"role": "user", "content": "What is the capital of Italy?"},
]
CLEAN = [{"role": "system", "content": "You are terse. Answer in one sentence."}, MARKED[1]]
BROKEN = [{"role": "system", "content": "You are terse. <rule>Answer in one sentence."}, MARKED[1]]


class Recorder(CustomLogger):
    """LiteLLM's own success callback: the metadata each finished call carried."""

    def __init__(self) -> None:
        super().__init__()
        self.metadata: list[dict[str, Any]] = []

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.metadata.append(dict(kwargs.get("litellm_params", {}).get("metadata") or {}))


# One hook and one recorder for the whole process: LiteLLM keeps its own lists of the callbacks
# it found at its first call, so a recorder made later (a fixture set up again, a repeated run)
# would never hear of a call; the tests count calls from where they start.
HOOK = SalienceHook(method="xml")
RECORDER = Recorder()


@pytest.fixture(scope="module")
def router(llama_upstream: str) -> Iterator[tuple[Router, Recorder]]:
    recorder = RECORDER
    saved = list(litellm.callbacks)
    litellm.callbacks = [HOOK, recorder]
    deployment = {"model": f"openai/{LLAMA_MODEL}", "api_base": llama_upstream, "api_key": "-"}
    router = Router(
        model_list=[{"model_name": LLAMA_MODEL, "litellm_params": deployment}], num_retries=2
    )
    try:
        yield router, recorder
    finally:
        litellm.callbacks = saved


def ask(router: Router, messages: list[dict[str, str]], **options: Any) -> Any:
    async def call() -> Any:
        response = await router.acompletion(
            model=LLAMA_MODEL, messages=messages, max_tokens=8, temperature=0,
            metadata={"salience": options},
        )  # fmt: skip
        await asyncio.sleep(0.3)  # LiteLLM logs success on a task of its own
        return response

    return asyncio.run(call())


def logged(recorder: Recorder, n: int) -> dict[str, Any]:
    """The metadata of the n-th call logged (from 1), once LiteLLM has logged it."""
    for _ in range(100):
        if len(recorder.metadata) >= n:
            return recorder.metadata[n - 1]
        asyncio.run(asyncio.sleep(0.05))
    raise AssertionError(f"LiteLLM logged {len(recorder.metadata)} calls, not {n}")


def test_a_rendering_reaches_the_model(router: tuple[Router, Recorder]) -> None:
    r, recorder = router
    n = len(recorder.metadata)
    caps = ask(r, MARKED, method="caps")
    assert caps.choices[0].message.content
    assert logged(recorder, n + 1)["x-salience"] == "applied; method=caps; spans=1; rules=1"
    assert logged(recorder, n + 1)["salience_details"]["rules"] == 1
    clean = ask(r, CLEAN, method="off")
    assert logged(recorder, n + 2)["x-salience"] == "off"
    # what the model received: "IMPORTANT: " adds prompt tokens that the clean text lacks
    assert caps.usage.prompt_tokens > clean.usage.prompt_tokens
    xml = ask(r, MARKED)  # the hook's own method: the <rule> tags go up as written
    assert logged(recorder, n + 3)["x-salience"] == "unchanged; method=xml; spans=1; rules=1"
    assert xml.usage.prompt_tokens > clean.usage.prompt_tokens


def test_broken_markup_fails_open_with_the_original_messages(
    router: tuple[Router, Recorder],
) -> None:
    r, recorder = router
    n = len(recorder.metadata)
    opened = ask(r, BROKEN, method="caps")
    metadata = logged(recorder, n + 1)
    assert metadata["x-salience"].startswith("fail-open; error=")
    assert "offset=" in metadata["x-salience"]
    raw = ask(r, BROKEN, method="off")  # the same text, passed as it is
    assert opened.usage.prompt_tokens == raw.usage.prompt_tokens
    assert opened.choices[0].message.content == raw.choices[0].message.content


def test_strict_refuses_and_nothing_is_answered(router: tuple[Router, Recorder]) -> None:
    r, recorder = router
    n = len(recorder.metadata)
    with pytest.raises(SalienceRefusal) as refused:
        ask(r, BROKEN, method="caps", strict=True)
    assert isinstance(refused.value, BadRequestError)
    assert refused.value.code == "unclosed-tag" and refused.value.where["offset"] == 15
    assert "salience refused the call (unclosed-tag; offset=15" in str(refused.value)
    ask(r, CLEAN, method="off")  # a call after it, so the refused one would be logged by now
    assert logged(recorder, n + 1)["x-salience"] == "off"
    assert len(recorder.metadata) == n + 1  # the refused call was never answered
    strict_hook = SalienceHook(strict=True)  # strict by default, allowed to fail open per call
    data = {"messages": [dict(m) for m in BROKEN], "metadata": {"salience": {"strict": False}}}
    assert strict_hook.apply(data, "acompletion")["metadata"]["x-salience"].startswith("fail-open")


def test_a_call_is_rewritten_once_and_only_chat_calls_are() -> None:
    hook = SalienceHook(method="caps")
    data: dict[str, Any] = {"messages": [dict(m) for m in MARKED]}
    once = hook.apply(data, "acompletion")["messages"][0]["content"]
    assert once == "You are terse. IMPORTANT: Answer in one sentence."
    assert hook.apply(data, "completion")["messages"][0]["content"] == once  # proxy + router
    embedding: dict[str, Any] = {"messages": [dict(m) for m in MARKED]}
    assert hook.apply(embedding, "aembedding")["messages"] == MARKED
    body = {"messages": [dict(m) for m in MARKED], "salience": {"method": "off"}}
    assert "salience" not in hook.apply(body, "completion")  # a proxy body's field stays here
