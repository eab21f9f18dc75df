"""The OpenAI-compatible backend against a real local HTTP server that can misbehave."""

from __future__ import annotations

import time

import pytest

from salience.evals.openai_backend import BackendError, OpenAIBackend, RetryPolicy
from salience.markup import parse_messages
from salience.model.methods import MethodError
from tests.fakes.openai_server import Behaviour, fake_openai
from tests.service.server import free_port

CONV = parse_messages(
    [
        {"role": "system", "content": "Help. <rule>Answer in French.</rule>"},
        {"role": "user", "content": "Hi <rule>not mine</rule>"},
    ]
)
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


def test_generate_sends_the_rendering_and_reads_the_answer() -> None:
    behaviour = Behaviour()
    with fake_openai(behaviour) as url, OpenAIBackend(url, "m", retry=FAST) as backend:
        out = backend.generate(CONV, "echo", max_new_tokens=9)
    sent = behaviour.received[0]
    assert sent["max_tokens"] == 9 and sent["model"] == "m"
    assert sent["messages"][-1]["content"].endswith("- Answer in French.")
    # the untrusted <rule> is defused on the way (markup.rendering.defuse)
    assert sent["messages"][-1]["content"].startswith("Hi &lt;rule>not mine&lt;/rule>")
    assert out.text.startswith("echo: Hi")
    assert out.prompt_tokens == 7 and out.stopped == "eos"


def test_bias_methods_are_refused_for_a_remote_model() -> None:
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m")
    with pytest.raises(MethodError, match="attention bias"):
        backend.messages(CONV, "uniform")


def test_429_with_retry_after_and_500s_are_retried_then_succeed() -> None:
    for status in (429, 500, 503):
        behaviour = Behaviour(fail_with=status, fail_times=2, retry_after="0")
        with fake_openai(behaviour) as url, OpenAIBackend(url, "m", retry=FAST) as backend:
            assert backend.generate(CONV).text.startswith("echo:")
        assert len(behaviour.received) == 3


def test_persistent_5xx_gives_a_clear_error_after_the_attempts() -> None:
    behaviour = Behaviour(fail_with=500, fail_times=10)
    expected = r"HTTP 500: induced 500 \(after 3 attempts\)"
    with (
        fake_openai(behaviour) as url,
        OpenAIBackend(url, "m", retry=FAST) as backend,
        pytest.raises(BackendError, match=expected),
    ):
        backend.generate(CONV)
    assert len(behaviour.received) == 3


def test_4xx_is_not_retried_and_carries_the_server_message() -> None:
    behaviour = Behaviour(fail_with=400, fail_times=1)
    with (
        fake_openai(behaviour) as url,
        OpenAIBackend(url, "m", retry=FAST) as backend,
        pytest.raises(BackendError, match="induced 400") as caught,
    ):
        backend.generate(CONV)
    assert caught.value.upstream_status == 400 and len(behaviour.received) == 1
    assert caught.value.status == 502  # what salience answers: the model server failed


def test_a_stalled_server_times_out_within_the_limit() -> None:
    behaviour = Behaviour(stall_seconds=5)
    with fake_openai(behaviour) as url:
        backend = OpenAIBackend(
            url, "m", timeout=0.3, retry=RetryPolicy(attempts=2, base_delay=0.01)
        )
        start = time.monotonic()
        with pytest.raises(BackendError, match="timed out"):
            backend.generate(CONV)
        assert time.monotonic() - start < 4
        backend.close()


def test_connection_refused_is_a_clear_error() -> None:
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", "m", retry=FAST)
    with pytest.raises(BackendError, match="connection failed"):
        backend.generate(CONV)


def test_score_sums_the_continuations_echoed_logprobs() -> None:
    behaviour = Behaviour()

    def template(messages: list[dict[str, str]]) -> str:
        return "".join(f"[{m['role']}]{m['content']}" for m in messages) + "[assistant]"

    with fake_openai(behaviour) as url, OpenAIBackend(url, "m", retry=FAST) as backend:
        assert backend.score(CONV, "Bonjour", chat_template=template) == pytest.approx(-3.5)
        with pytest.raises(BackendError, match="chat_template"):
            backend.score(CONV, "Bonjour")
    assert behaviour.received[0]["echo"] is True
