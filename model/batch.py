"""Many sequences through one forward pass: left-padded batches, shared prompt prefixes, and
teacher-forced scoring from a prompt's cache.

The unit of work is a ``Prefilled`` prompt: one conversation under one method, its KV cache and
its next-token logits. A prompt is prefilled once and then

- decoded any number of times at once (a greedy row and k sampled rows, each row seeded on its
  own, so a row's tokens do not depend on what else is in the batch), and
- scored against any number of continuations (the compliant and violating references),

without running its prefill again. Prompts of one conversation under several methods share the
prefix that no method changes: a bias on marked keys reaches no query before the first marked
token (attention is causal), and a text rendering keeps the tokens before its first edit, so
that prefix is prefilled once, unsteered, and each method goes on from there.

A batch is laid out left-padded: row r's prompt fills the last ``lengths[r]`` of the first
``width`` positions, generated or continuation tokens follow at ``width`` onward for every row
alike. Padding is masked out of attention and skipped by the position ids, so each row sees
exactly what it would see alone; key levels and the query gate are per row (``Steering`` takes
(B, T, L)). Rows of different methods share a pass: each row carries its own β (a ``RowBias``,
zero for an unsteered or text-rendered row), and a contrastive row brings a second stream, its
masked pass, whose logits are folded into the row's. Decoding is bound by reading the weights
at a few rows per step on a CPU, so one step over every method's rows costs little more than one
over a single row. A prefill pass holds one method (``prefill_padded``). The cache grows in place (a
buffer with room), so a decoding step copies nothing it has already stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers.cache_utils import Cache

from .kvcache import KV, Preallocated, cache_kv, growing_cache, output_cache, row_of
from .prompt import Prompt
from .rows import Streams, pick, stack
from .steer import Steering, steering

if TYPE_CHECKING:
    from .local import LocalModel
    from .methods import Method


@dataclass
class Prefilled:
    """One prompt under one method, prefilled: its cache and next-token logits (B = 1)."""

    prompt: Prompt
    method: Method
    kv: KV
    logits: torch.Tensor  # (V,) the method's next-token logits (contrastive: combined)
    masked_kv: KV | None = None  # contrastive: the pass with the marked keys masked out
    masked_logits: torch.Tensor | None = None
    shared: int = 0  # prompt tokens taken from a shared prefix instead of computed
    masked_shared: int = 0  # the same, for the masked pass
    seconds: float = 0.0

    def __len__(self) -> int:
        return len(self.prompt)


@dataclass
class SharedPrefix:
    """The unsteered cache of a token prefix, computed once and extended on demand; views of it
    are handed to every prompt that starts with it."""

    ids: torch.Tensor  # (T,) the reference prompt's token ids
    kv: KV | None = None
    length: int = 0

    def usable(self, prompt: Prompt, method: Method) -> int:
        """How many leading tokens ``prompt`` under ``method`` can take from this prefix: all
        it has in common with it, up to its first marked token if a bias steers it (a
        contrastive method's main pass is unsteered; its masked pass stops there too, see
        ``Batcher.prefill``)."""
        n = min(len(prompt), len(self.ids)) - 1  # at least one token left to give logits
        if n <= 0:
            return 0
        same = prompt.input_ids[:n] == self.ids[:n]
        common = n if bool(same.all()) else int((~same).nonzero()[0])
        if method.bias is not None:
            common = min(common, _first_marked(prompt))
        return max(0, common)


def _first_marked(prompt: Prompt) -> int:
    """The position of the prompt's first token with a level (its length if none has one)."""
    leveled = (prompt.levels >= 0).nonzero()
    return int(leveled[0]) if len(leveled) else len(prompt)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


MAX_ROWS = 16  # rows per pass where memory allows: past it, decoding gains little on a CPU
HEADROOM = 2 * 1024**3  # the model, the runtime and a prefill's working set, besides the caches


def available_memory() -> int:
    """Bytes of memory available now (Linux: MemAvailable), else the machine's physical memory."""
    import os

    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def cache_bytes(lm: LocalModel, tokens: int) -> int:
    """One row's KV cache at ``tokens`` positions, in the model's dtype."""
    config = lm.model.config
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", heads))
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    element = torch.finfo(lm.model.dtype).bits // 8
    return 2 * int(config.num_hidden_layers) * kv_heads * head_dim * tokens * element


def rows_that_fit(lm: LocalModel, tokens: int, available: int | None = None) -> int:
    """Rows per pass for prompts of up to ``tokens`` positions: ``MAX_ROWS``, or fewer where
    their caches would not fit in half of the memory ``available`` (default: now) less
    ``HEADROOM``. A row is counted one and a half times: its place in the decoding batch, and
    its share of the prefilled prompts the batch reads from (measured: bench/eval_length.py,
    BENCHMARKS.md). At least one."""
    budget = (available_memory() if available is None else available) // 2 - HEADROOM
    per_row = cache_bytes(lm, tokens) * 3 // 2
    return max(1, min(MAX_ROWS, budget // per_row))


class Batcher:
    """Prefill, decode and score on ``lm`` in batches (see the module's docstring)."""

    def __init__(self, lm: LocalModel) -> None:
        self.lm = lm
        self.model = lm.model
        self._pool: dict[tuple[str, int], torch.Tensor] = {}

    # ---- prefill ---------------------------------------------------------------------------

    def prefix(self, prompt: Prompt) -> SharedPrefix:
        return SharedPrefix(prompt.input_ids)

    def _extend(self, prefix: SharedPrefix, n: int) -> None:
        if n <= prefix.length:
            return
        ids = prefix.ids[prefix.length : n].unsqueeze(0).to(self.lm.device)
        cache = growing_cache(prefix.kv, n) if prefix.kv is not None else None
        with steering(None), torch.no_grad():
            out = self.model(ids, cache=cache, use_cache=True, logits_to_keep=1)
        prefix.kv = [(k, v) for k, v in cache_kv(output_cache(out))]
        prefix.length = n

    @torch.no_grad()
    def prefill(
        self, prompt: Prompt, method: Method, prefix: SharedPrefix | None = None
    ) -> Prefilled:
        """``prompt`` under ``method``, continuing from ``prefix`` where it may."""
        start = time.perf_counter()
        shared = prefix.usable(prompt, method) if prefix is not None else 0
        if prefix is not None and shared:
            self._extend(prefix, shared)
        base = (
            [(k[:, :, :shared], v[:, :, :shared]) for k, v in prefix.kv]
            if prefix is not None and prefix.kv is not None and shared
            else None
        )
        steer = self.lm.steering_for(prompt, method)
        kv, logits = self._run(prompt, base, shared, steer)
        filled = Prefilled(prompt, method, kv, logits, shared=shared)
        second = self.lm.contrast_for(prompt, method)
        if second is not None and method.contrast is not None:
            # the masked pass differs from the first marked token on
            cut = min(shared, _first_marked(prompt))
            below = [(k[:, :, :cut], v[:, :, :cut]) for k, v in base] if base and cut else None
            masked_kv, masked = self._run(prompt, below, cut if below else 0, second)
            filled.masked_kv, filled.masked_logits = masked_kv, masked
            filled.masked_shared = cut if below else 0
            filled.logits = method.contrast.combine(logits, masked)
        filled.seconds = time.perf_counter() - start
        return filled

    def _run(
        self, prompt: Prompt, base: KV | None, shared: int, steer: Steering | None
    ) -> tuple[KV, torch.Tensor]:
        ids = prompt.input_ids[shared:].unsqueeze(0).to(self.lm.device)
        cache = growing_cache(base, len(prompt)) if base is not None else None
        if steer is not None:
            steer.start = shared
        with steering(steer):
            out = self.model(ids, cache=cache, use_cache=True, logits_to_keep=1)
        return cache_kv(output_cache(out)), out.logits[0, -1]

    @torch.no_grad()
    def prefill_padded(self, prompts: Sequence[Prompt], method: Method) -> list[Prefilled]:
        """Several prompts through one forward pass, left-padded (one method)."""
        start = time.perf_counter()
        batch = self._layout(prompts)
        steer = self._steering([self.lm.steering_for(p, method) for p in prompts], batch)
        kv, logits = self._padded_pass(batch, steer)
        masked: tuple[KV, torch.Tensor] | None = None
        contrasts = [self.lm.contrast_for(p, method) for p in prompts]
        if any(second is not None for second in contrasts):
            masked = self._padded_pass(batch, self._steering(contrasts, batch))
        out = []
        for r, p in enumerate(prompts):
            pad = batch.width - len(p)
            filled = Prefilled(p, method, row_of(kv, r, pad), logits[r])
            if masked is not None and contrasts[r] is not None and method.contrast is not None:
                filled.masked_kv = row_of(masked[0], r, pad)
                filled.masked_logits = masked[1][r]
                filled.logits = method.contrast.combine(logits[r], masked[1][r])
            out.append(filled)
        seconds = (time.perf_counter() - start) / max(1, len(prompts))
        for filled in out:
            filled.seconds = seconds
        return out

    def _layout(self, prompts: Sequence[Prompt]) -> _Layout:
        width = max(len(p) for p in prompts)
        ids = torch.zeros(len(prompts), width, dtype=torch.int64)
        mask = torch.zeros(len(prompts), width, dtype=torch.int64)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = p.input_ids
            mask[r, width - len(p) :] = 1
        device = self.lm.device
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        return _Layout(ids.to(device), mask.to(device), width, lengths)

    def _steering(self, steers: Sequence[Steering | None], batch: _Layout) -> Steering | None:
        return stack(steers, batch.width, batch.lengths)

    def _padded_pass(self, batch: _Layout, steer: Steering | None) -> tuple[KV, torch.Tensor]:
        with steering(steer):
            out = self.model(
                batch.ids,
                attention_mask=batch.mask,
                position_ids=_positions(batch.mask),
                use_cache=True,
                logits_to_keep=1,
            )
        return cache_kv(output_cache(out)), out.logits[:, -1]

    def release(self) -> None:
        """Drop the pooled batch buffers (they hold the last batch's size of memory)."""
        self._pool.clear()

    # ---- decode and score ------------------------------------------------------------------

    def _streams(self, rows: Sequence[Prefilled]) -> Streams:
        """A stream per row, and one more per contrastive row: its masked pass, which decodes the
        same tokens over the cache with the marked keys masked out."""
        kvs: list[KV] = []
        steers: list[Steering | None] = []
        lengths: list[int] = []
        masked_of: list[int | None] = []
        for row in rows:
            kvs.append(row.kv)
            steers.append(self.lm.steering_for(row.prompt, row.method))
            lengths.append(len(row))
        for row in rows:
            if row.masked_kv is None:
                masked_of.append(None)
                continue
            masked_of.append(len(kvs))
            kvs.append(row.masked_kv)
            steers.append(self.lm.contrast_for(row.prompt, row.method))
            lengths.append(len(row))
        contrasts = [r.method.contrast for r in rows]
        lengths_ = torch.tensor(lengths, device=self.lm.device)
        return Streams(kvs, steers, lengths_, masked_of, contrasts)

    def _assemble(self, streams: Streams, room: int) -> tuple[_Running, Steering | None]:
        """Left-pad the streams' caches into one batch with ``room`` more positions."""
        lengths = streams.lengths
        width = int(lengths.max())
        n_rows = len(streams.kvs)
        layers: KV = []
        for layer in range(len(streams.kvs[0])):
            k0, v0 = streams.kvs[0][layer]
            shape = (n_rows, k0.shape[1], width + room, k0.shape[3])
            keys = self._buffer(("k", layer), shape, k0.dtype)
            values = self._buffer(("v", layer), shape, v0.dtype)
            for r, kv in enumerate(streams.kvs):
                k, v = kv[layer]
                pad = width - k.shape[2]
                keys[r, :, :pad] = 0  # masked out, but never garbage (0 · NaN is NaN)
                values[r, :, :pad] = 0
                keys[r, :, pad:width] = k[0]
                values[r, :, pad:width] = v[0]
            layers.append((keys, values))
        cache = Cache(layers=[Preallocated(k, v, width) for k, v in layers])
        mask = torch.zeros(n_rows, width + room, dtype=torch.int64, device=self.lm.device)
        for r in range(n_rows):
            mask[r, width - int(lengths[r]) : width] = 1
        steer = stack(streams.steers, width, lengths)
        return _Running(cache, mask, width, lengths), steer

    def _buffer(
        self, slot: tuple[str, int], shape: tuple[int, ...], dtype: torch.dtype
    ) -> torch.Tensor:
        """A batch cache buffer, reused from the last batch where it fits: a fresh one costs
        more in first-touch page faults than the copy into it (one batch runs at a time)."""
        need = 1
        for n in shape:
            need *= n
        flat = self._pool.get(slot)
        if flat is None or flat.numel() < need or flat.dtype != dtype:
            flat = torch.empty(need, dtype=dtype, device=self.lm.device)
            self._pool[slot] = flat
        return flat[:need].view(shape)

    @torch.no_grad()
    def decode(
        self,
        rows: Sequence[Prefilled],
        seeds: Sequence[int],
        temperature: float | Sequence[float],
        max_new_tokens: int,
        on_step: Callable[[int], None] | None = None,
    ) -> list[list[int]]:
        """Generate from each row (a prefilled prompt may appear in several rows, and rows may
        be under different methods); row r samples with its own generator seeded ``seeds[r]``
        (temperature 0: greedy). Returns the token ids of each row, without the
        end-of-sequence token. ``on_step`` hears the number of each step taken."""
        if not rows:
            return []
        temps = [temperature] * len(rows) if isinstance(temperature, int | float) else temperature
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        streams = self._streams(rows)
        run, steer = self._assemble(streams, max_new_tokens)
        logits = torch.stack([r.logits for r in rows])
        out: list[list[int]] = [[] for _ in rows]
        done = [False] * len(rows)
        eos = self.lm.eos_ids
        pad = next(iter(eos)) if eos else 0
        for step in range(max_new_tokens):
            if on_step is not None:
                on_step(step + 1)
            tokens = []
            for r in range(len(rows)):
                if done[r]:
                    tokens.append(pad)
                    continue
                token = pick(logits[r], temps[r], generators[r])
                if token in eos:
                    done[r] = True
                else:
                    out[r].append(token)
                    done[r] = len(out[r]) >= max_new_tokens
                tokens.append(token)
            if all(done):
                break
            ids = torch.tensor(streams.expand(tokens), device=self.lm.device).view(-1, 1)
            logits = streams.combine(self._forward(run, steer, ids)[:, -1])
        return out

    def _forward(self, run: _Running, steer: Steering | None, ids: torch.Tensor) -> torch.Tensor:
        q = ids.shape[1]
        end = run.filled + q
        run.mask[:, run.filled : end] = 1
        mask = run.mask[:, :end]
        steps = torch.arange(q, device=run.mask.device)
        positions = (run.lengths.view(-1, 1) + (run.filled - run.width) + steps).view(-1, q)
        with steering(steer):
            out = self.model(
                ids,
                attention_mask=mask,
                position_ids=positions,
                cache=run.cache,
                use_cache=True,
            )
        run.filled = end
        logits: torch.Tensor = out.logits
        return logits

    @torch.no_grad()
    def continuation_logits(
        self, rows: Sequence[Prefilled], targets: Sequence[Sequence[int]]
    ) -> list[torch.Tensor]:
        """Teacher-forced: for each row, the (len(target), V) logits that predict each token of
        its target, from its cache (one forward pass over all rows' targets, right-padded; rows
        may be under different methods)."""
        if not rows:
            return []
        longest = max((len(t) for t in targets), default=0)
        first = torch.stack([r.logits for r in rows]).unsqueeze(1)  # predicts token 0
        if longest <= 1:
            return [first[r, : len(t)] for r, t in enumerate(targets)]
        streams = self._streams(rows)
        ids = torch.zeros(len(rows), longest - 1, dtype=torch.int64)
        for r, t in enumerate(targets):
            ids[r, : max(0, len(t) - 1)] = torch.tensor(list(t)[:-1], dtype=torch.int64)
        ids = ids.to(self.lm.device)
        run, steer = self._assemble(streams, longest)
        rest = streams.combine(self._forward(run, steer, streams.expand_ids(ids)))
        logits = torch.cat([first, rest], dim=1)
        return [logits[r, : len(t)] for r, t in enumerate(targets)]

    def score(
        self, rows: Sequence[Prefilled], targets: Sequence[Sequence[int]]
    ) -> list[torch.Tensor]:
        """Teacher-forced log-probabilities of each row's target token ids, from its cache."""
        out = []
        for logits, t in zip(self.continuation_logits(rows, targets), targets, strict=True):
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            ids = torch.tensor(list(t), dtype=torch.int64, device=logprobs.device).view(-1, 1)
            out.append(logprobs.gather(1, ids).squeeze(1) if len(t) else logprobs[:0, 0])
        return out


@dataclass
class _Layout:
    ids: torch.Tensor
    mask: torch.Tensor
    width: int
    lengths: torch.Tensor


@dataclass
class _Running:
    cache: Cache
    mask: torch.Tensor  # (B, capacity): 1 where a row has a token
    width: int  # the padded prompt width
    lengths: torch.Tensor  # (B,) prompt lengths
    filled: int = 0

    def __post_init__(self) -> None:
        self.filled = self.width
