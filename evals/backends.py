"""What the runner computes samples with: a model behind one interface.

``Backend`` states every member the runner uses. Four are required (``name``, ``model``,
``count``, ``generate``); the rest are capabilities with a declared default, so the runner asks
a backend what it can do instead of probing it:

- ``context_window``: the model's window in tokens (None: unknown; lengths are not capped);
- ``fingerprint(method)``: a hash of what a method does beyond its name (a refitted bias file
  must not reuse the old file's samples); "" where the name says everything;
- ``scores`` and ``score``: log p(continuation) under a method, for the margin (measure c);
- ``evaluate(units, rows)``: several samples together (the local model batches them; the
  default computes them one by one, the plain way);
- ``generate_many``: greedy answers to several prompts (batched where the backend can);
- ``spec()``: a recipe that builds the same backend in another process (a Ray actor).

Backends here: ``LocalBackend`` (a model this process runs, through model.local) and
``RemoteBackend`` (any OpenAI-compatible server, or several: requests go round the list).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from salience.markup import Conversation

if TYPE_CHECKING:
    from salience.model.local import LocalModel


@dataclass(frozen=True)
class References:
    """The margin's two answers for an item: the model's own rule-breaking answer to the task
    alone, and that answer made to comply."""

    violating: str
    compliant: str


@dataclass(frozen=True)
class Unit:
    """One sample to compute: a prompt under a method, and what to measure on it."""

    key: str
    conversation: Conversation
    method: str
    max_new_tokens: int
    seed: int  # the greedy row's
    sample_seeds: tuple[int, ...] = ()  # one per sampled row (measure b)
    temperature: float = 0.0
    references: References | None = None  # measure c


@dataclass
class Outcome:
    greedy: str
    samples: list[str]
    # (log p(compliant), its tokens, log p(violating), its tokens), or None
    margin: tuple[float, int, float, int] | None
    seconds: float


@dataclass(frozen=True)
class Decoding:
    """How one answer is drawn: its token budget, the seed and the temperature (0: greedy)."""

    max_new_tokens: int
    seed: int
    temperature: float = 0.0


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend anywhere: its kind and its constructor's arguments (plain data, so
    it crosses process boundaries), plus the torch threads a local model uses there."""

    kind: str  # "local" or "openai"
    options: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None

    def build(self) -> Backend:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        if self.kind == "local":
            return LocalBackend(**self.options)
        if self.kind == "openai":
            return RemoteBackend(**self.options)
        raise ValueError(f"no backend of kind {self.kind!r}")


class Backend:
    """The interface (see the module's docstring); subclasses implement ``count`` and
    ``generate`` and override the capabilities they have."""

    name: str = ""
    model: str = ""
    context_window: int | None = None
    scores: bool = False  # whether ``score`` works (the margin needs it)
    # told what a batched ``evaluate`` is doing between its results ("prefill 3/8", "decode
    # 12/48 (16 rows)"), for a progress display; None: nobody listens
    activity: Callable[[str], None] | None = None

    def count(self, text: str) -> int:
        raise NotImplementedError

    def generate(self, conversation: Conversation, method: str, decoding: Decoding) -> str:
        raise NotImplementedError

    def fingerprint(self, method: str) -> str:
        return ""

    def score(
        self, conversation: Conversation, continuation: str, method: str
    ) -> tuple[float, int]:
        """log p(continuation) under ``method`` (nats, summed) and its length in tokens."""
        raise NotImplementedError(f"the {self.name} backend cannot score continuations")

    def generate_many(
        self, conversations: Sequence[Conversation], method: str, max_new_tokens: int, seed: int
    ) -> list[str]:
        """Greedy answers to several prompts."""
        return [self.generate(c, method, Decoding(max_new_tokens, seed)) for c in conversations]

    def evaluate(self, units: Sequence[Unit], rows: int = 16) -> Iterator[tuple[str, Outcome]]:
        """Compute ``units``; yields (key, outcome) for each. The default: one by one."""
        for u in units:
            yield u.key, evaluate_one(self, u)

    @property
    def batched(self) -> bool:
        """Whether ``evaluate`` computes its units together (then the runner cuts the plan into
        groups of whole prompts, the same on every run)."""
        return False

    def spec(self) -> BackendSpec:
        raise NotImplementedError(f"the {self.name} backend cannot be rebuilt elsewhere")


def evaluate_one(backend: Backend, u: Unit) -> Outcome:
    """One sample, computed the plain way: a generation per answer and a full scoring pass per
    reference (any backend; the local model's batched path must agree with it)."""
    t = time.perf_counter()
    greedy = backend.generate(u.conversation, u.method, Decoding(u.max_new_tokens, u.seed))
    samples = [
        backend.generate(u.conversation, u.method, Decoding(u.max_new_tokens, s, u.temperature))
        for s in u.sample_seeds
    ]
    margin_parts = None
    if u.references is not None and backend.scores:
        lp_c, n_c = backend.score(u.conversation, u.references.compliant, u.method)
        lp_v, n_v = backend.score(u.conversation, u.references.violating, u.method)
        margin_parts = (float(lp_c), int(n_c), float(lp_v), int(n_v))
    return Outcome(greedy, samples, margin_parts, time.perf_counter() - t)


REFERENCE_CHUNK = 16  # the task-alone answers are generated this many at a time


class LocalBackend(Backend):
    """The embedded model (or any local path) through model.local.LocalModel."""

    name = "local"
    scores = True

    def __init__(
        self,
        path: str | None = None,
        dtype: str | None = None,
        *,
        device: str | None = None,
        lm: LocalModel | None = None,
        **method_options: Any,
    ) -> None:
        """Load ``path`` in ``dtype`` onto ``device`` (model.loader's defaults), or use ``lm``,
        a model already loaded (the service shares one between its eval worker, its proxy and
        /model/bias)."""
        from salience.model.local import LocalModel

        self.lm = lm if lm is not None else LocalModel.load(path, dtype, device)
        dtype = str(self.lm.model.dtype).removeprefix("torch.")  # what was loaded
        self._path, self._dtype, self._device = path, dtype, str(self.lm.device)
        self.model = self.lm.loaded.source.rsplit("/", 1)[-1] + f":{dtype}"
        self.context_window = (
            int(getattr(self.lm.model.config, "max_position_embeddings", 0)) or None
        )
        self.options = method_options
        self._batcher: Any = None

    @property
    def batched(self) -> bool:
        return True

    def spec(self) -> BackendSpec:
        options = {
            "path": self._path or self.lm.loaded.source,
            "dtype": self._dtype,
            "device": self._device,
        }
        return BackendSpec("local", {**options, **self.options})

    def count(self, text: str) -> int:
        return len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    def fingerprint(self, method: str) -> str:
        """A hash of what a method does beyond its name (``Method.signature``: a bias's values
        and gate, a contrast's ω…). Empty for methods whose name says everything (none and the
        text methods)."""
        parts = self.lm.method(method, **self.options).signature()
        if not parts:
            return ""
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:10]

    def generate(self, conversation: Conversation, method: str, decoding: Decoding) -> str:
        d = decoding
        return self.lm.generate(
            conversation, method, d.max_new_tokens, d.seed, d.temperature, **self.options
        ).text

    def score(
        self, conversation: Conversation, continuation: str, method: str
    ) -> tuple[float, int]:
        """One full forward pass over the prompt and the continuation."""
        import torch

        with torch.no_grad():
            logprobs = self.lm.token_logprobs(conversation, continuation, method, **self.options)
        return float(logprobs.sum()), int(logprobs.numel())

    def generate_many(
        self, conversations: Sequence[Conversation], method: str, max_new_tokens: int, seed: int
    ) -> list[str]:
        """Greedy answers to several prompts, batched."""
        out: list[str] = []
        for start in range(0, len(conversations), REFERENCE_CHUNK):
            chunk = conversations[start : start + REFERENCE_CHUNK]
            units = [Unit(str(i), c, method, max_new_tokens, seed) for i, c in enumerate(chunk)]
            done = dict(self.evaluate(units, REFERENCE_CHUNK))
            out += [done[str(i)].greedy for i in range(len(chunk))]
        return out

    def evaluate(self, units: Sequence[Unit], rows: int = 16) -> Iterator[tuple[str, Outcome]]:
        """Compute ``units`` together: each prompt prefilled once per method (from the prefix its
        methods share), then the greedy and sampled rows of every unit decoded in batches of at
        most ``rows`` rows (methods mixed: each row is steered its own way), and the references
        scored from the same caches. Yields (key, outcome) for each unit as soon as its rows are
        decoded and its references scored, so a caller can keep it before the next batch
        starts. ``activity``, when set, hears each prefill and each decoding step."""
        from salience.model.batch import Batcher

        if rows <= 1:  # the plain path, sample by sample
            yield from super().evaluate(units, rows)
            return
        batcher = self._batcher
        if batcher is None:
            batcher = self._batcher = Batcher(self.lm)
        lm = self.lm
        plain = lm.method("none", **self.options)
        tell = self.activity
        start = time.perf_counter()
        try:
            prefixes: dict[int, Any] = {}
            methods: dict[str, Any] = {}
            filled = []
            for n, u in enumerate(units):
                if id(u.conversation) not in prefixes:
                    prefixes[id(u.conversation)] = batcher.prefix(lm.prompt(u.conversation, plain))
                method = methods.get(u.method)
                if method is None:
                    method = methods[u.method] = lm.method(u.method, **self.options)
                prompt = lm.prompt(u.conversation, method)
                filled.append(batcher.prefill(prompt, method, prefixes[id(u.conversation)]))
                if tell is not None:
                    tell(f"prefill {n + 1}/{len(units)}")
            prefixes.clear()  # the prompts hold views of what they took
            texts: dict[tuple[int, int], str] = {}
            plan_rows = self._rows(units)
            left = {i: 1 + len(u.sample_seeds) for i, u in enumerate(units)}
            for at in range(0, len(plan_rows), rows):
                chunk = plan_rows[at : at + rows]
                texts.update(self._decode(batcher, units, filled, chunk))
                ready = []
                for i, _, _, _ in chunk:
                    left[i] -= 1
                    if not left[i]:
                        ready.append(i)
                margins = self._margins(batcher, units, filled, ready, rows)
                now = time.perf_counter()
                seconds = (now - start) / max(1, len(ready))  # the time since the last results
                start = now
                for i in ready:
                    u = units[i]
                    samples = [texts.pop((i, j)) for j in range(len(u.sample_seeds))]
                    yield u.key, Outcome(texts.pop((i, -1)), samples, margins.get(i), seconds)
                    filled[i] = None  # its cache is no longer needed
        finally:
            batcher.release()

    @staticmethod
    def _rows(units: Sequence[Unit]) -> list[tuple[int, int, int, float]]:
        """Every unit's rows, unit by unit: (unit index, sample index or -1 for the greedy
        row, seed, temperature)."""
        out = []
        for i, u in enumerate(units):
            out.append((i, -1, u.seed, 0.0))
            out += [(i, j, s, u.temperature) for j, s in enumerate(u.sample_seeds)]
        return out

    def _decode(
        self,
        batcher: Any,
        units: Sequence[Unit],
        filled: list[Any],
        chunk: Sequence[tuple[int, int, int, float]],
    ) -> dict[tuple[int, int], str]:
        """The rows of ``chunk``, decoded together."""
        max_new = max(units[i].max_new_tokens for i, _, _, _ in chunk)
        tell = self.activity

        def step(n: int) -> None:
            if tell is not None:
                tell(f"decode {n}/{max_new} ({len(chunk)} rows)")

        ids = batcher.decode(
            [filled[i] for i, _, _, _ in chunk],
            [seed for _, _, seed, _ in chunk],
            [t for _, _, _, t in chunk],
            max_new,
            on_step=step,
        )
        texts: dict[tuple[int, int], str] = {}
        for (i, j, _, _), tokens in zip(chunk, ids, strict=True):
            tokens = tokens[: units[i].max_new_tokens]
            texts[(i, j)] = str(self.lm.tokenizer.decode(tokens, skip_special_tokens=True))
        return texts

    def _margins(
        self,
        batcher: Any,
        units: Sequence[Unit],
        filled: list[Any],
        which: Sequence[int],
        rows: int,
    ) -> dict[int, tuple[float, int, float, int]]:
        """The references of the units ``which`` that have them, scored from their prompts'
        caches."""
        margins: dict[int, tuple[float, int, float, int]] = {}
        scored = [(i, units[i].references) for i in which if units[i].references]
        half = max(1, rows // 2)
        for at in range(0, len(scored), half):
            chunk_refs = scored[at : at + half]
            targets = []
            for _, refs in chunk_refs:
                assert refs is not None
                targets += [self._tokens(refs.compliant), self._tokens(refs.violating)]
            rows_in = [filled[i] for i, _ in chunk_refs for _ in range(2)]
            logprobs = batcher.score(rows_in, targets)
            for n, (i, _) in enumerate(chunk_refs):
                c, v = logprobs[2 * n], logprobs[2 * n + 1]
                margins[i] = (float(c.sum()), c.numel(), float(v.sum()), v.numel())
        return margins

    def _tokens(self, text: str) -> list[int]:
        encoded = self.lm.tokenizer(text, add_special_tokens=False, split_special_tokens=True)
        return list(encoded["input_ids"])


class RemoteBackend(Backend):
    """Any OpenAI-compatible server, or several serving the same model: each request goes to
    the next in turn (text methods only). Distractor lengths are counted with cl100k_base: the
    server's own tokenizer is not visible from here."""

    name = "openai"

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        api_key: str | None = None,
        timeout: float = 120,
    ) -> None:
        from salience.evals.openai_backend import OpenAIBackend
        from salience.markup import load_encoding

        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("a remote backend needs at least one base URL")
        self.base_urls = urls
        self.clients = [OpenAIBackend(u, model, api_key=api_key, timeout=timeout) for u in urls]
        self._turn = itertools.cycle(range(len(urls)))
        self._lock = threading.Lock()
        self.model = model
        self._options = {"model": model, "api_key": api_key, "timeout": timeout}
        self._encoding = load_encoding("cl100k_base").encoding

    def spec(self) -> BackendSpec:
        return BackendSpec("openai", {"base_url": list(self.base_urls), **self._options})

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def generate(self, conversation: Conversation, method: str, decoding: Decoding) -> str:
        with self._lock:  # the runner's threads share the turn
            client = self.clients[next(self._turn)]
        d = decoding
        return client.generate(conversation, method, d.max_new_tokens, d.seed, d.temperature).text
