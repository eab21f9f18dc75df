"""The runner: items × distractor kinds × lengths × positions × methods, one record per sample.

Two designs: ``crossed`` gives every item every (kind, position); ``rotated`` gives item i the
i-th (kind, position) pair in turn, so a fixed budget of samples spreads over more items (the
unit the intervals are clustered on) while every kind and position is still covered.

Each sample's key hashes what makes it what it is (the prompt's text and marks, the seed, the
method, the backend and the model); a rerun skips keys already stored, so a killed run resumes
with nothing lost and nothing repeated. Generation is greedy and seeded by default.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from markup import Conversation

if TYPE_CHECKING:
    from model.local import LocalModel

from . import distractors, prompts, split
from .store import Store
from .tasks import quality


class Backend(Protocol):
    name: str
    model: str

    def count(self, text: str) -> int: ...

    def generate(
        self, conversation: Conversation, method: str, max_new_tokens: int, seed: int
    ) -> str: ...


@dataclass
class Grid:
    split: str = "test"
    items: int = 4
    kinds: Sequence[str] = ("prose",)
    lengths: Sequence[int] = (0, 256)
    positions: Sequence[str] = ("before",)
    methods: Sequence[str] = ("none", "uniform")
    seed: int = 0
    max_new_tokens: int = 64
    margin: bool = False  # the continuous metric (local backend): two more forward passes
    design: str = "crossed"  # or "rotated": one (kind, position) per item, in turn

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ValueError(f"design must be one of {', '.join(DESIGNS)}, not {self.design!r}")

    def size(self) -> int:
        per_item = 1 if self.design == "rotated" else len(self.kinds) * len(self.positions)
        return self.items * per_item * len(self.lengths) * len(self.methods)

    def conditions(self, index: int) -> list[tuple[str, str]]:
        """The (kind, position) pairs item number ``index`` gets."""
        pairs = [(k, p) for k in self.kinds for p in self.positions]
        return [pairs[index % len(pairs)]] if self.design == "rotated" else pairs


DESIGNS = ("crossed", "rotated")


@dataclass
class RunStats:
    total: int = 0
    skipped: int = 0
    done: int = 0
    model_seconds: float = 0.0
    wall_seconds: float = 0.0
    keys: list[str] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        """The runner's own share of the time spent on new samples."""
        return (
            0.0 if self.wall_seconds <= 0 else max(0.0, 1 - self.model_seconds / self.wall_seconds)
        )


def prompt_hash(conversation: Conversation) -> str:
    data = [
        [m.role, m.document.text, [(s.start, s.end, s.level.value) for s in m.document.spans]]
        for m in conversation.messages
    ]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def sample_key(phash: str, seed: int, method: str, backend: str, model: str, max_new: int) -> str:
    """``method`` is the method's name, plus ``#`` and a fingerprint of its parameters where the
    backend gives one (a refitted bias file must not reuse the old file's samples)."""
    return hashlib.sha256(
        f"{phash}|{seed}|{method}|{backend}|{model}|{max_new}".encode()
    ).hexdigest()[:24]


def method_id(backend: Backend, method: str) -> str:
    fingerprint = getattr(backend, "fingerprint", None)
    tag = fingerprint(method) if fingerprint is not None else ""
    return f"{method}#{tag}" if tag else method


@dataclass(frozen=True)
class _Planned:
    key: str
    item: split.Item
    conv: Conversation
    factors: dict[str, Any]


def plan(grid: Grid, backend: Backend) -> list[_Planned]:
    """Every sample of the grid, in a fixed order, with its key and factors."""
    out: list[_Planned] = []
    lengths = capped_lengths(grid, backend)
    ids = {m: method_id(backend, m) for m in grid.methods}
    seen: set[str] = set()
    chosen = split.items(grid.split, grid.items, grid.seed)  # type: ignore[arg-type]
    for index, item in enumerate(chosen):
        for kind, position in grid.conditions(index):
            for length in lengths:
                d = distractors.make(
                    kind, length, backend.count, grid.seed, item.family.id, item.task.id
                )
                conv = prompts.conversation(item, d, position)
                phash = prompt_hash(conv)
                for method in grid.methods:
                    key = sample_key(
                        phash,
                        grid.seed,
                        ids[method],
                        backend.name,
                        backend.model,
                        grid.max_new_tokens,
                    )
                    factors = {
                        "item": item.id,
                        "task": item.task.id,
                        "task_kind": item.task.kind,
                        "family": item.family.id,
                        "params": item.params,
                        "phrasing": item.phrasing,
                        "split": item.split,
                        "kind": kind,
                        "length": length,
                        "distractor_tokens": d.tokens,
                        "position": position,
                        "method": method,
                        "method_id": ids[method],
                        "seed": grid.seed,
                        "backend": backend.name,
                        "model": backend.model,
                        "prompt_hash": phash,
                    }
                    if key not in seen:  # at length 0, kinds and positions can coincide
                        seen.add(key)
                        out.append(_Planned(key, item, conv, factors))
    return out


PROMPT_ROOM = 256  # tokens kept for the template, the rule and the task around a distractor


def capped_lengths(grid: Grid, backend: Backend) -> list[int]:
    """The grid's lengths, each capped by the context window minus the output budget; lengths
    that collapse onto the cap are kept once."""
    window = getattr(backend, "context_window", None)
    if not window:
        return list(grid.lengths)
    cap = max(0, int(window) - grid.max_new_tokens - PROMPT_ROOM)
    return list(dict.fromkeys(min(n, cap) for n in grid.lengths))


def _sample(grid: Grid, backend: Backend, p: _Planned) -> tuple[dict[str, Any], float]:
    method = p.factors["method"]
    t = time.perf_counter()
    response = backend.generate(p.conv, method, grid.max_new_tokens, grid.seed)
    model_time = time.perf_counter() - t
    q = quality(p.item.task, response, p.item.rule)
    result: dict[str, Any] = {
        "response": response,
        "strict": p.item.family.strict(response, p.item.params),
        "loose": p.item.family.loose(response, p.item.params),
        "quality": q.ok,
        "answered": q.answered,
        "echoed": q.echoed,
        "degenerate": q.degenerate,
        "seconds": round(model_time, 4),
    }
    if grid.margin:
        t = time.perf_counter()
        result["margin"] = margin(backend, p.conv, method, p.item)
        model_time += time.perf_counter() - t
    return result, model_time


def run(
    grid: Grid,
    backend: Backend,
    store: Store,
    run_name: str,
    progress: Callable[[RunStats], None] | None = None,
    concurrency: int = 1,
) -> RunStats:
    """Run every sample not yet stored. With ``concurrency`` > 1 (a remote backend), samples are
    generated on that many threads; records are still written one by one, here."""
    done = store.done(run_name)
    start = time.perf_counter()
    planned = plan(grid, backend)
    stats = RunStats(total=len(planned))
    stats.keys = [p.key for p in planned]
    todo = [p for p in planned if p.key not in done]
    stats.skipped = len(planned) - len(todo)

    def record(p: _Planned, result: dict[str, Any], model_time: float) -> None:
        store.add(p.key, run_name, p.factors, result)
        stats.done += 1
        stats.model_seconds += model_time
        if progress is not None:
            stats.wall_seconds = time.perf_counter() - start
            progress(stats)

    if concurrency <= 1:
        for p in todo:
            result, model_time = _sample(grid, backend, p)
            record(p, result, model_time)
    else:
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix="salience-eval")
        try:
            futures = {pool.submit(_sample, grid, backend, p): p for p in todo}
            for future in as_completed(futures):
                result, model_time = future.result()
                record(futures[future], result, model_time)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        # threads overlap: the runner's own share is what the model time does not cover
        stats.model_seconds = min(stats.model_seconds, time.perf_counter() - start)
    stats.wall_seconds = time.perf_counter() - start
    return stats


def reference_answer(item: split.Item) -> str:
    """A short correct answer to the task (its first expected keyword, as a sentence)."""
    return f"{item.task.expect[0]}." if item.task.expect else "Done."


def margin(
    backend: Backend, conversation: Conversation, method: str, item: split.Item
) -> float | None:
    """log p(compliant) − log p(violating) for the reference answer, when the family has a
    transform and the plain reference violates the rule; else None."""
    score = getattr(backend, "score", None)
    if score is None:
        return None
    violating = reference_answer(item)
    if item.family.strict(violating, item.params):
        return None
    compliant = item.family.comply(violating, item.params)
    if compliant is None:
        return None
    return round(
        float(score(conversation, compliant, method) - score(conversation, violating, method)), 4
    )


def progress_bar(stats: RunStats) -> None:
    finished = stats.done + stats.skipped
    per = stats.wall_seconds / max(stats.done, 1)
    eta = per * (stats.total - finished)
    width = 30
    filled = int(width * finished / max(stats.total, 1))
    print(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {finished}/{stats.total} "
        f"({stats.skipped} resumed) ETA {eta:5.0f} s",
        end="",
        file=sys.stderr,
        flush=True,
    )


class LocalBackend:
    """The embedded model (or any local path) through model.local.LocalModel."""

    name = "local"

    def __init__(
        self,
        path: str | None = None,
        dtype: str = "float32",
        *,
        lm: LocalModel | None = None,
        **method_options: Any,
    ) -> None:
        """Load ``path`` in ``dtype``, or use ``lm``, a model already loaded (the service shares
        one between its eval worker, its proxy and /model/bias)."""
        from model.local import LocalModel

        self.lm = lm if lm is not None else LocalModel.load(path, dtype)
        if lm is not None:  # its own dtype, whatever was passed
            dtype = str(lm.model.dtype).removeprefix("torch.")
        self.model = self.lm.loaded.source.rsplit("/", 1)[-1] + f":{dtype}"
        self.context_window = (
            int(getattr(self.lm.model.config, "max_position_embeddings", 0)) or None
        )
        self.options = method_options

    def count(self, text: str) -> int:
        return len(self.lm.tokenizer(text, add_special_tokens=False)["input_ids"])

    def fingerprint(self, method: str) -> str:
        """A hash of what a method does beyond its name: a bias's values and query gate, spa's
        ω. Empty for methods whose name says everything (none and the text renderings)."""
        resolved = self.lm.method(method, **self.options)
        parts: list[Any] = []
        if resolved.bias is not None:
            parts += [resolved.gate, resolved.bias.beta.detach().flatten().tolist()]
        if resolved.spa_omega is not None:
            parts.append(resolved.spa_omega)
        if not parts:
            return ""
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:10]

    def generate(
        self, conversation: Conversation, method: str, max_new_tokens: int, seed: int
    ) -> str:
        return self.lm.generate(
            conversation, method, max_new_tokens=max_new_tokens, seed=seed, **self.options
        ).text


def grid_dict(grid: Grid) -> dict[str, Any]:
    return asdict(grid)


class RemoteBackend:
    """Any OpenAI-compatible server (text methods only). Distractor lengths are counted with
    cl100k_base: the server's own tokenizer is not visible from here."""

    name = "openai"

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120
    ) -> None:
        from markup import load_encoding
        from model.openai_backend import OpenAIBackend

        self.client = OpenAIBackend(base_url, model, api_key=api_key, timeout=timeout)
        self.model = model
        self._encoding = load_encoding("cl100k_base").encoding

    def count(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def generate(
        self, conversation: Conversation, method: str, max_new_tokens: int, seed: int
    ) -> str:
        return self.client.generate(conversation, method, max_new_tokens, seed).text
