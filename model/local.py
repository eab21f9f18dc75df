"""``LocalModel``: generate and score on a model salience runs itself, under any method.

lm = LocalModel.load()
conv = markup.parse_messages([...])
lm.generate(conv, method="uniform", max_new_tokens=64, seed=0).text
lm.score(conv, " Bonjour", method="none")   # log-probability of a continuation
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec

import torch
from transformers import DynamicCache

from salience.markup import LEVELS, Conversation, Level, parse_messages, render

from .loader import Loaded, load
from .methods import Method, resolve
from .prompt import LEVEL_INDEX, Prompt, build_prompt
from .rows import pick
from .steer import Steering, register, steering


@dataclass
class Generation:
    text: str
    token_ids: list[int]
    method: str
    prompt_tokens: int
    prefill_seconds: float
    decode_seconds: float
    stopped: str  # "eos" or "length"


P = ParamSpec("P")


def _run_to_the_end(stream: Callable[P, TokenStream]) -> Callable[P, Generation]:
    """``generate`` from ``stream``: the same arguments, the stream run to its end."""

    def generate(*args: P.args, **kwargs: P.kwargs) -> Generation:
        tokens = stream(*args, **kwargs)
        for _ in tokens:
            pass
        assert tokens.result is not None
        return tokens.result

    generate.__doc__ = "Generate the whole answer at once (``stream`` run to its end)."
    return generate


class LocalModel:
    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.model = register(loaded.model)
        self.tokenizer = loaded.tokenizer
        # where the weights are: every tensor the steering makes for them goes there too
        self.device: torch.device = next(self.model.parameters()).device
        config = self.model.config
        self.n_layers = int(config.num_hidden_layers)
        self.n_heads = int(config.num_attention_heads)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(int(self.tokenizer.eos_token_id))

    @classmethod
    def load(
        cls, path: str | None = None, dtype: str | None = None, device: str | None = None
    ) -> LocalModel:
        """``device``: "auto" (default, or ``$SALIENCE_DEVICE``), "cpu", "cuda[:N]" or "mps";
        ``dtype``: default float32 on the CPU, bfloat16 on CUDA (model.loader)."""
        return cls(load(path, dtype, device))

    def method(
        self, name: str, *, catalogue: Mapping[str, str] | None = None, **options: Any
    ) -> Method:
        """The method ``name``, its bias (if any) on the model's device; ``catalogue``: the
        name came from a network client (``model.methods.resolve``)."""
        method = resolve(name, self.n_layers, self.n_heads, catalogue=catalogue, **options)
        if method.bias is not None:
            method.bias.to(self.device)
        return method

    def prompt(self, conversation: Conversation, method: Method | None = None) -> Prompt:
        """The token ids the model sees under ``method`` (text renderings rewrite the messages)."""
        if method is not None and method.text is not None:
            rendered = render(conversation, method.text.name, safe=method.safe)
            assert isinstance(rendered, list)
            conversation = parse_messages(rendered, trusted_roles=(), format="plain")
        return build_prompt(self.tokenizer, conversation)

    def steering_for(self, prompt: Prompt, method: Method) -> Steering | None:
        if method.bias is None:
            return None
        return Steering(
            method.bias.to(self.device),
            prompt.level_one_hot(),
            gate=query_gate(prompt, method.gate),
            layers=method.layers,
        )

    def contrast_for(self, prompt: Prompt, method: Method) -> Steering | None:
        """The steering of a contrastive method's second pass, where it has one for ``prompt``."""
        if method.contrast is None or not method.contrast.applies(prompt):
            return None
        return method.contrast.steering(prompt, self.n_layers, self.n_heads, self.device)

    def stream(
        self,
        conversation: Conversation,
        method: str | Method = "none",
        max_new_tokens: int = 64,
        seed: int = 0,
        temperature: float = 0.0,
        stop: threading.Event | None = None,
        **options: Any,
    ) -> TokenStream:
        """Generate token by token: iterate for each new token id; ``.result`` after the end.
        Setting ``stop`` ends it at the next token (a client that went away)."""
        m = method if isinstance(method, Method) else self.method(method, **options)
        return TokenStream(self, conversation, m, max_new_tokens, seed, temperature, stop)

    generate = _run_to_the_end(stream)

    @torch.no_grad()
    def _tokens(
        self,
        conversation: Conversation,
        m: Method,
        max_new_tokens: int,
        seed: int,
        temperature: float,
        stop: threading.Event | None,
        sink: TokenStream,
    ) -> Iterator[int]:
        prompt = self.prompt(conversation, m)
        steer = self.steering_for(prompt, m)
        second = self.contrast_for(prompt, m)
        generator = torch.Generator().manual_seed(seed)  # on the CPU: the same draws anywhere
        ids = prompt.input_ids.unsqueeze(0).to(self.device)

        start = time.perf_counter()
        cache = DynamicCache()
        with steering(steer):
            logits = self.model(ids, cache=cache, use_cache=True).logits[0, -1]
        second_cache = DynamicCache() if second is not None else None
        if second is not None and m.contrast is not None:
            with steering(second):
                masked = self.model(ids, cache=second_cache, use_cache=True).logits[0, -1]
            logits = m.contrast.combine(logits, masked)
        prefill = time.perf_counter() - start

        out: list[int] = []
        stopped = "length"
        start = time.perf_counter()
        try:
            for _ in range(max_new_tokens):
                if stop is not None and stop.is_set():
                    stopped = "cancelled"
                    break
                token = pick(logits, temperature, generator)
                if token in self.eos_ids:
                    stopped = "eos"
                    break
                out.append(token)
                yield token
                if len(out) == max_new_tokens:
                    break
                step = torch.tensor([[token]], device=self.device)
                with steering(steer):
                    logits = self.model(step, cache=cache, use_cache=True).logits[0, -1]
                if second is not None and m.contrast is not None:
                    with steering(second):
                        masked = self.model(step, cache=second_cache, use_cache=True)
                    logits = m.contrast.combine(logits, masked.logits[0, -1])
        finally:
            decode = time.perf_counter() - start
            text = str(self.tokenizer.decode(out, skip_special_tokens=True))
            sink.result = Generation(text, out, m.name, len(prompt), prefill, decode, stopped)

    def score(
        self,
        conversation: Conversation,
        continuation: str,
        method: str | Method = "none",
        **options: Any,
    ) -> float:
        """Log-probability of ``continuation`` as the answer, under ``method`` (nats, summed)."""
        with torch.no_grad():
            return float(self.token_logprobs(conversation, continuation, method, **options).sum())

    def token_logprobs(
        self,
        conversation: Conversation,
        continuation: str,
        method: str | Method = "none",
        **options: Any,
    ) -> torch.Tensor:
        """Per-token log-probabilities of ``continuation`` (differentiable in a bias's β)."""
        logits, target_ids = self.continuation_logits(conversation, continuation, method, **options)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return logprobs.gather(1, target_ids.view(-1, 1)).squeeze(1)

    def continuation_logits(
        self,
        conversation: Conversation,
        continuation: str,
        method: str | Method = "none",
        **options: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(len(target), vocab) logits predicting each token of ``continuation``, and its ids."""
        m = method if isinstance(method, Method) else self.method(method, **options)
        prompt = self.prompt(conversation, m)
        target = self.tokenizer(continuation, add_special_tokens=False, split_special_tokens=True)
        target_ids = torch.tensor(target["input_ids"], dtype=torch.int64, device=self.device)
        ids = torch.cat([prompt.input_ids.to(self.device), target_ids]).unsqueeze(0)
        keep = len(target_ids) + 1  # the lm head only where the target is predicted
        logits = self._logits(ids, prompt, m, keep)
        second = self.contrast_for(prompt, m)
        if second is not None and m.contrast is not None:
            with steering(second):
                masked = self.model(ids, logits_to_keep=keep).logits[0]
            logits = m.contrast.combine(logits, masked)
        return logits[:-1], target_ids

    def token_biases(
        self, conversation: Conversation, method: Method, prompt: Prompt | None = None
    ) -> list[TokenBias]:
        """Each token of the prompt ``method`` builds (``prompt``, if already built), with the β
        its keys get (over the layers and heads; before a distance scale's g) and whether its
        queries are steered."""
        prompt = prompt if prompt is not None else self.prompt(conversation, method)
        bias = method.bias
        gate = query_gate(prompt, method.gate) if bias is not None else None
        beta = bias.beta.detach().float().cpu() if bias is not None else None
        out = []
        for i, (token, level) in enumerate(
            zip(prompt.input_ids.tolist(), prompt.levels.tolist(), strict=True)
        ):
            values = beta[level] if beta is not None and level >= 0 else torch.zeros(1)
            out.append(
                TokenBias(
                    int(token),
                    str(self.tokenizer.decode([token])),
                    LEVELS[level].value if level >= 0 else None,
                    float(values.mean()),
                    float(values.min()),
                    float(values.max()),
                    beta is not None and (gate is None or bool(gate[i])),
                )
            )
        return out

    def _logits(self, ids: torch.Tensor, prompt: Prompt, method: Method, keep: int) -> torch.Tensor:
        with steering(self.steering_for(prompt, method)):
            logits: torch.Tensor = self.model(ids, logits_to_keep=keep).logits[0]
        return logits


@dataclass(frozen=True)
class TokenBias:
    """A prompt token and the bias a method puts on it (``LocalModel.token_biases``)."""

    id: int
    text: str
    level: str | None  # its importance level, None outside every span
    mean: float  # β over the layers and heads
    min: float
    max: float
    steered: bool  # its queries get the bias


class TokenStream:
    """Token ids as they are generated; ``result`` (a Generation) once the stream has ended.
    ``text_deltas()`` gives the decoded text piece by piece (whole characters only)."""

    def __init__(
        self,
        lm: LocalModel,
        conversation: Conversation,
        method: Method,
        max_new_tokens: int,
        seed: int,
        temperature: float,
        stop: threading.Event | None,
    ) -> None:
        self.lm = lm
        self.result: Generation | None = None
        self._it = lm._tokens(conversation, method, max_new_tokens, seed, temperature, stop, self)

    def __iter__(self) -> Iterator[int]:
        return self._it

    def __next__(self) -> int:
        return next(self._it)

    def text_deltas(self) -> Iterator[str]:
        ids: list[int] = []
        sent = ""
        for token in self._it:
            ids.append(token)
            text = str(self.lm.tokenizer.decode(ids, skip_special_tokens=True))
            if text.endswith("\ufffd"):
                continue  # a character split across tokens: wait for the rest
            if len(text) > len(sent):
                yield text[len(sent) :]
                sent = text
        if self.result is not None and len(self.result.text) > len(sent):
            yield self.result.text[len(sent) :]


def query_gate(prompt: Prompt, how: str) -> torch.Tensor | None:
    """Prompt queries to steer: all, or those after the last marked (hard/high) token."""
    if how == "all":
        return None
    marked = (prompt.levels == LEVEL_INDEX[Level.HARD]) | (prompt.levels == LEVEL_INDEX[Level.HIGH])
    positions = marked.nonzero().flatten()
    gate = torch.zeros(len(prompt), dtype=torch.bool)
    if len(positions):
        gate[int(positions[-1]) + 1 :] = True
    return gate
