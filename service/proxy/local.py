"""Chat completions generated in process on the local model, under any steering method.

The model is the process's shared one (``service.models``: SALIENCE_MODEL_PATH, or the
embedded default), loaded in a worker thread, so the event loop never blocks on torch. One
generation runs at a time (two cores share it badly); a bounded number may wait, and one more
is refused with 429. A streamed generation stops at the next token when its client goes away.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from markup import Conversation

from ..models import SharedModel

if TYPE_CHECKING:
    from model.local import LocalModel, TokenStream


class Busy(Exception):
    """Too many local generations waiting."""


class LocalEngine:
    def __init__(self, shared: SharedModel, max_waiting: int, max_tokens: int) -> None:
        self.shared = shared  # the process's one model, shared with the eval worker
        self.max_waiting = max_waiting
        self.max_tokens = max_tokens
        self._run_lock = threading.Lock()
        self._waiting = 0

    @property
    def loaded(self) -> bool:
        return self.shared.loaded is not None

    async def model(self) -> LocalModel:
        return await self.shared.aget()

    def admit(self) -> None:
        """Count one more waiting generation, or refuse it."""
        if self._waiting >= self.max_waiting:
            raise Busy(f"{self._waiting} local generations are already waiting")
        self._waiting += 1

    def release(self) -> None:
        self._waiting -= 1

    def limits(self, body: dict[str, Any]) -> tuple[int, float, int]:
        """(max new tokens, temperature, seed) from the request, within the configured cap."""
        asked = body.get("max_completion_tokens", body.get("max_tokens"))
        max_tokens = self.max_tokens if not isinstance(asked, int) else max(1, asked)
        temperature = body.get("temperature", 0.0)
        seed = body.get("seed", 0)
        return (
            min(max_tokens, self.max_tokens),
            float(temperature) if isinstance(temperature, int | float) else 0.0,
            int(seed) if isinstance(seed, int) else 0,
        )

    def _stream(
        self,
        lm: LocalModel,
        conversation: Conversation,
        method: str,
        body: dict[str, Any],
        stop: threading.Event,
    ) -> TokenStream:
        max_tokens, temperature, seed = self.limits(body)
        return lm.stream(
            conversation,
            method,
            max_new_tokens=max_tokens,
            seed=seed,
            temperature=temperature,
            stop=stop,
        )

    def complete(
        self,
        lm: LocalModel,
        conversation: Conversation,
        method: str,
        body: dict[str, Any],
        stop: threading.Event,
    ) -> dict[str, Any]:
        """A whole chat.completion object (runs in a worker thread)."""
        with self._run_lock:
            stream = self._stream(lm, conversation, method, body, stop)
            for _ in stream:
                pass
        out = stream.result
        assert out is not None
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": out.text},
                    "finish_reason": "stop" if out.stopped == "eos" else "length",
                }
            ],
            "usage": {
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": len(out.token_ids),
                "total_tokens": out.prompt_tokens + len(out.token_ids),
            },
        }

    def chunks(
        self,
        lm: LocalModel,
        conversation: Conversation,
        method: str,
        body: dict[str, Any],
        stop: threading.Event,
    ) -> Iterator[bytes]:
        """Server-sent events of chat.completion.chunk objects, then ``[DONE]`` (iterated in a
        worker thread, one token at a time)."""
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = body.get("model")

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + orjson.dumps(chunk) + b"\n\n"

        with self._run_lock:
            stream = self._stream(lm, conversation, method, body, stop)
            yield event({"role": "assistant", "content": ""})
            for piece in stream.text_deltas():
                yield event({"content": piece})
            result = stream.result
        finish = "stop" if result is not None and result.stopped == "eos" else "length"
        yield event({}, finish)
        yield b"data: [DONE]\n\n"
