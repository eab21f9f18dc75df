"""``OpenAIBackend``: any OpenAI-compatible server (llama.cpp, Ollama, vLLM, hosted) over httpx.

A remote model cannot take an attention bias, so only the text methods apply (``none`` and the
renderings ``xml``, ``caps``, ``echo``, ``system``). Every call has a timeout; 429 and 5xx answers
and dropped connections are retried with exponential backoff (honouring ``Retry-After``); what
still fails raises ``BackendError`` with the status and the server's own message.

Scoring a continuation needs its log-probabilities: ``score`` asks ``/v1/completions`` for the
prompt echoed with ``logprobs`` (llama.cpp's server and vLLM offer it), with the chat rendered by
a chat template you pass (the server's own template is not visible from outside).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from salience.markup import Conversation, render
from salience.markup.errors import SalienceError
from salience.model.local import Generation
from salience.model.methods import MethodError, entry, of_kind, resolve

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class BackendError(SalienceError):
    code = "backend-error"
    status = 502
    title = "Model server failed"

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status  # the remote server's HTTP status, if it answered

    def fields(self) -> dict[str, Any]:
        return {"upstream_status": self.upstream_status}


@dataclass
class RetryPolicy:
    attempts: int = 4  # first try included
    base_delay: float = 0.25
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(float(retry_after), self.max_delay)
            except ValueError:
                pass
        backoff = self.base_delay * 2 ** (attempt - 1)
        return float(min(backoff * (0.5 + random.random()), self.max_delay))


class OpenAIBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )
        self.model = model
        self.retry = retry or RetryPolicy()
        self.sleep = sleep

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OpenAIBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def messages(self, conversation: Conversation, method: str) -> list[dict[str, str]]:
        """The messages sent for ``method``: the clean text, or a text rendering."""
        if entry(method).kind not in ("none", "text"):
            raise MethodError(
                f"method {method!r} needs the attention bias (or masked pass) of a model salience "
                f"runs itself; a remote model takes only: {', '.join(of_kind('none', 'text'))} "
                "(and the text methods' @raw forms)"
            )
        resolved = resolve(method, 0, 0)  # none and the text methods need no model's shape
        if resolved.text is None:
            return conversation.to_messages()
        rendered = render(conversation, resolved.text.name, safe=resolved.safe)
        assert isinstance(rendered, list)
        return rendered

    def generate(
        self,
        conversation: Conversation,
        method: str = "none",
        max_new_tokens: int = 64,
        seed: int = 0,
        temperature: float = 0.0,
    ) -> Generation:
        body = {
            "model": self.model,
            "messages": self.messages(conversation, method),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        start = time.perf_counter()
        data = self._post("chat/completions", body)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
            finish = choice.get("finish_reason") or "stop"
        except (KeyError, IndexError, TypeError) as error:
            raise BackendError(f"unexpected chat completion shape: {error!r}") from None
        usage = data.get("usage") or {}
        return Generation(
            text=text,
            token_ids=[],
            method=method,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            prefill_seconds=0.0,
            decode_seconds=time.perf_counter() - start,
            stopped="eos" if finish == "stop" else "length" if finish == "length" else finish,
        )

    def score(
        self,
        conversation: Conversation,
        continuation: str,
        method: str = "none",
        chat_template: Callable[[list[dict[str, str]]], str] | None = None,
    ) -> float:
        """Sum of the continuation's token log-probabilities, echoed by ``/v1/completions``."""
        if chat_template is None:
            raise BackendError(
                "scoring on a remote server needs chat_template: a function that renders the "
                "messages as the server's model expects (the server's own is not visible)"
            )
        prompt = chat_template(self.messages(conversation, method))
        body = {
            "model": self.model,
            "prompt": prompt + continuation,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 1,
            "temperature": 0,
        }
        data = self._post("completions", body)
        try:
            logprobs = data["choices"][0]["logprobs"]
            offsets: list[int] = logprobs["text_offset"]
            values: list[float | None] = logprobs["token_logprobs"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(
                "the server did not return echoed prompt logprobs; it cannot score continuations"
            ) from None
        # text_offset is in characters of the echoed text (prompt + continuation)
        return float(
            sum(
                v
                for o, v in zip(offsets, values, strict=True)
                if o >= len(prompt) and v is not None
            )
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        last: str = ""
        for attempt in range(1, self.retry.attempts + 1):
            retry_after = None
            try:
                response = self.client.post(path, json=body)
            except httpx.TimeoutException as error:
                last = f"timed out ({type(error).__name__})"
            except httpx.TransportError as error:
                last = f"connection failed: {error!r}"
            else:
                if response.status_code < 400:
                    try:
                        data: dict[str, Any] = response.json()
                    except ValueError:
                        raise BackendError(
                            "the server answered with invalid JSON", response.status_code
                        ) from None
                    return data
                last = f"HTTP {response.status_code}: {_server_message(response)}"
                if response.status_code not in RETRY_STATUSES:
                    raise BackendError(
                        f"{self.client.base_url}{path}: {last}", response.status_code
                    )
                retry_after = response.headers.get("retry-after")
            if attempt < self.retry.attempts:
                self.sleep(self.retry.delay(attempt, retry_after))
        raise BackendError(
            f"{self.client.base_url}{path}: {last} (after {self.retry.attempts} attempts)"
        )


def _server_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if data.get("detail"):
            return str(data["detail"])
    return response.text[:200]
