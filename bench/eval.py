"""Eval throughput: the plain path (one prompt at a time) against the batched path (prompts
prefilled once and shared across methods, rows of a method decoded together, references scored
from the prompt's cache), on one small grid of ~2,048-token prompts with 48 new tokens.

A sample is one prompt under one method, as the study records it: its greedy answer and its
compliance margin (two teacher-forced references). The plain path computes that as a
generation plus two full scoring passes; the batched path as one prefill, a share of a batched
decode and one batched continuation pass. Per prompt, in one run, interleaved:

    old        the plain path, float32 (evals.backends.evaluate_one)
    new        the batched path, float32 (LocalBackend.evaluate)
    new-bf16   the batched path, bfloat16 — used for the headline only where its logits stay
               close to float32's: mean |Δ log p| ≤ 0.1 and max ≤ 1.0 nats per reference
               token (printed)

Then k = 8 sampled answers per prompt (plus the greedy one) on the batched path, for the
sampled-measure throughput (the plain path would take 9 generations per sample).

    .venv/bin/python bench/eval.py [--items 2] [--methods none,xml,uniform,learned,spa] [--json]

Then the cost of durability (``--writes``, or alone with ``--writes-only``): one small grid
through the runner twice, side by side, into a SQLite store that commits each sample as it
completes (what ``salience eval run`` does, so that Ctrl-C loses at most the samples in flight)
and into one that keeps them in memory and writes them in one transaction at the end. Printed:
the time spent inside the per-sample writes as a share of the run, and the two runs' wall times.

The last line reads: eval throughput: <old> samples/min, <new> samples/min, speedup <x>
(with --writes-only: per-sample writes: <share> % of the run)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from salience.evals.backends import Decoding, LocalBackend, References, Unit
from salience.evals.grid import Grid
from salience.evals.records import reference_pair, row_seed
from salience.evals.runner import plan
from salience.evals.store import Store

CLOSE_MEAN, CLOSE_MAX = 0.1, 1.0  # nats per token: bfloat16 is "close" within these


def units_for(
    grid: Grid, backend: LocalBackend, refs: dict[str, References | None]
) -> list[list[Unit]]:
    """The grid's samples as units, grouped by prompt (every method of a prompt together)."""
    groups: dict[str, list[Unit]] = {}
    for p in plan(grid, backend):
        u = Unit(
            p.key,
            p.conv,
            p.factors["method"],
            grid.max_new_tokens,
            grid.seed,
            tuple(row_seed(p.key, i) for i in range(grid.samples)),
            grid.temperature,
            refs.get(p.item.id),
        )
        groups.setdefault(p.factors["prompt_hash"], []).append(u)
    return list(groups.values())


def references(grid: Grid, backend: LocalBackend) -> dict[str, References | None]:
    """Each item's references (not timed: built once per item and cached by the runner); an
    item whose own answer already complies gets a stand-in pair, so every sample is scored."""
    from salience.evals import prompts, split

    out: dict[str, References | None] = {}
    for item in split.items(grid.split, grid.items, grid.seed):  # type: ignore[arg-type]
        answer = backend.generate(
            prompts.task_alone(item), "none", Decoding(grid.max_new_tokens, 0)
        )
        refs = reference_pair(item, answer)
        out[item.id] = refs or References(violating=answer or "No.", compliant=answer.upper())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2, help="items (one position each, in turn)")
    parser.add_argument("--methods", default="none,xml,uniform,learned,spa")
    parser.add_argument("--length", type=int, default=2048, help="distractor tokens")
    parser.add_argument("--samples", type=int, default=8, help="k for the sampled measure")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--writes", action="store_true", help="also the per-sample write cost")
    parser.add_argument("--writes-only", action="store_true", help="only the write cost")
    args = parser.parse_args()
    if args.writes_only:
        return writes(args.json)

    import torch

    torch.set_num_threads(2)
    grid = Grid(
        items=args.items,
        lengths=(args.length,),
        positions=("before", "after"),
        design="rotated",
        methods=tuple(args.methods.split(",")),
        max_new_tokens=48,
        margin=True,
    )
    fp32 = LocalBackend()
    bf16 = LocalBackend(None, "bfloat16")
    refs = references(grid, fp32)
    groups = units_for(grid, fp32, refs)
    tokens = [len(fp32.lm.prompt(g[0].conversation)) for g in groups]
    print(f"{len(groups)} prompts of {min(tokens)}–{max(tokens)} tokens × {len(grid.methods)} "
          f"methods = {sum(map(len, groups))} samples; 48 new tokens", file=sys.stderr)  # fmt: skip

    seconds = {"old": 0.0, "old-greedy": 0.0, "new": 0.0, "new-bf16": 0.0}
    deltas: list[float] = []
    n = 0
    for group in groups:  # interleaved prompt by prompt
        t = time.perf_counter()
        for u in group:
            g = time.perf_counter()
            fp32.generate(u.conversation, u.method, Decoding(u.max_new_tokens, u.seed))
            seconds["old-greedy"] += time.perf_counter() - g
            score_references(fp32, u)
        seconds["old"] += time.perf_counter() - t
        t = time.perf_counter()
        new = dict(fp32.evaluate(group))
        seconds["new"] += time.perf_counter() - t
        t = time.perf_counter()
        low = dict(bf16.evaluate(group))
        seconds["new-bf16"] += time.perf_counter() - t
        for u in group:
            a, b = new[u.key].margin, low[u.key].margin
            if a is not None and b is not None:
                deltas.append(abs(a[0] - b[0]) / max(a[1], 1))
                deltas.append(abs(a[2] - b[2]) / max(a[3], 1))
        n += len(group)
        print(f"  prompt {n // len(group)}/{len(groups)}: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in seconds.items()), file=sys.stderr)  # fmt: skip

    # |Δ log p| per token between bfloat16 and float32, on every reference token
    token_deltas = bf16_token_deltas(fp32, bf16, groups)
    mean_delta = sum(token_deltas) / len(token_deltas)
    max_delta = max(token_deltas)
    close = mean_delta <= CLOSE_MEAN and max_delta <= CLOSE_MAX

    # the sampled measure: k answers per prompt (+ the greedy row), batched path
    sampled_grid = Grid(**{**grid.__dict__, "samples": args.samples})
    sampled = units_for(sampled_grid, fp32, refs)
    chosen = bf16 if close else fp32
    t = time.perf_counter()
    answers = 0
    for group in sampled:
        for _, outcome in chosen.evaluate(group, rows=2 * (1 + args.samples)):
            answers += 1 + len(outcome.samples)
    sampled_seconds = time.perf_counter() - t

    per_min = {k: 60 * n / v for k, v in seconds.items()}
    new_key = "new-bf16" if close else "new"
    result: dict[str, Any] = {
        "samples": n,
        "prompt_tokens": [min(tokens), max(tokens)],
        "seconds": seconds,
        "samples_per_min": per_min,
        "speedup_new_fp32": seconds["old"] / seconds["new"],
        "speedup_new_bf16": seconds["old"] / seconds["new-bf16"],
        "greedy_only_old_per_min": per_min["old-greedy"],
        "bf16_abs_dlogp_mean": mean_delta,
        "bf16_abs_dlogp_max": max_delta,
        "bf16_margin_abs_dlogp_per_token_mean": sum(deltas) / max(len(deltas), 1),
        "bf16_close": close,
        "sampled_k": args.samples,
        "sampled_answers_per_min": 60 * answers / sampled_seconds,
        "sampled_dtype": "bfloat16" if close else "float32",
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"old path (float32, one prompt at a time): {per_min['old']:.2f} samples/min "
              f"({per_min['old-greedy']:.2f}/min for the greedy answers alone)")  # fmt: skip
        print(f"new path float32: {per_min['new']:.2f} samples/min "
              f"(×{result['speedup_new_fp32']:.2f})")  # fmt: skip
        print(f"new path bfloat16: {per_min['new-bf16']:.2f} samples/min "
              f"(×{result['speedup_new_bf16']:.2f}); |Δ log p| vs float32 per reference token: "
              f"mean {mean_delta:.4f}, max {max_delta:.3f} → "
              f"{'close: used' if close else 'not close: not used'}")  # fmt: skip
        print(f"sampled measure, k = {args.samples} (+ greedy), batched {result['sampled_dtype']}: "
              f"{result['sampled_answers_per_min']:.1f} answers/min")  # fmt: skip
    if args.writes:
        writes(args.json)
    print(f"eval throughput: {per_min['old']:.2f} samples/min, {per_min[new_key]:.2f} samples/min, "
          f"speedup {seconds['old'] / seconds[new_key]:.2f}")  # fmt: skip
    return 0


class _Deferred:
    """A record store that keeps the samples in memory and writes them all at the end."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.held: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.run = ""

    def done(self, run: str) -> set[str]:
        return self.store.done(run)

    def claim(self, run: str, settings: dict[str, Any], cells: dict[str, Any]) -> None:
        self.run, self.settings, self.cells = run, settings, cells
        self.store.claim(run, settings, cells)

    def add(self, key: str, run: str, factors: dict[str, Any], result: dict[str, Any]) -> bool:
        self.held.append((key, factors, result))
        return True

    def reference(self, model: str, item: str, max_new: int) -> dict[str, Any] | None:
        return self.store.reference(model, item, max_new)

    def add_reference(self, model: str, item: str, max_new: int, data: dict[str, Any]) -> None:
        self.store.add_reference(model, item, max_new, data)

    def flush(self) -> None:
        self.store.import_records(self.run, self.settings, self.cells, self.held)


def writes(as_json: bool) -> int:
    """Per-sample commits against one write at the end, on the same grid, side by side."""
    import tempfile
    from pathlib import Path

    from salience.evals.runner import run

    grid = Grid(items=4, lengths=(0, 256), methods=("none", "xml"), samples=4, margin=True,
                max_new_tokens=48, positions=("before", "after"), design="rotated")  # fmt: skip
    backend = LocalBackend(None, "bfloat16")
    folder = Path(tempfile.mkdtemp(prefix="salience-bench-"))
    inside = 0.0
    walls: dict[str, float] = {}
    for name in ("durable", "deferred"):
        store = Store(folder / f"{name}.sqlite3")
        if name == "durable":
            plain_add = store.add

            def timed(*a: Any, plain_add: Any = plain_add) -> bool:
                nonlocal inside
                t = time.perf_counter()
                try:
                    return bool(plain_add(*a))
                finally:
                    inside += time.perf_counter() - t

            store.add = timed  # type: ignore[method-assign,assignment]
            t = time.perf_counter()
            stats = run(grid, backend, store, "w")
        else:
            deferred = _Deferred(store)
            t = time.perf_counter()
            stats = run(grid, backend, deferred, "w")
            deferred.flush()
        walls[name] = time.perf_counter() - t
        store.close()
    share = inside / walls["durable"]
    result = {"samples": stats.total, "write_seconds": inside, "wall_seconds": walls,
              "write_share": share}  # fmt: skip
    if as_json:
        print(json.dumps(result, indent=2))
    print(f"durable run {walls['durable']:.1f} s, deferred run {walls['deferred']:.1f} s "
          f"({stats.total} samples; ratio {walls['durable'] / walls['deferred']:.3f}); "
          f"{inside * 1000 / stats.total:.2f} ms per sample written")  # fmt: skip
    print(f"per-sample writes: {100 * share:.3f} % of the run")
    return 0


def score_references(backend: LocalBackend, u: Unit) -> None:
    """The plain path's scoring of the two references: with the generation before it, what
    evals.backends.evaluate_one does (the generation is timed apart here)."""
    assert u.references is not None
    backend.score(u.conversation, u.references.compliant, u.method)
    backend.score(u.conversation, u.references.violating, u.method)


def bf16_token_deltas(
    fp32: LocalBackend, bf16: LocalBackend, groups: list[list[Unit]]
) -> list[float]:
    """|log p(bfloat16) − log p(float32)| of every reference token of the first prompt's
    samples, teacher-forced from each model's own prefill."""
    from salience.model.batch import Batcher

    out: list[float] = []
    for u in groups[0]:
        assert u.references is not None
        texts = (u.references.compliant, u.references.violating)
        per_model = []
        for backend in (fp32, bf16):
            batcher = Batcher(backend.lm)
            method = backend.lm.method(u.method)
            filled = batcher.prefill(backend.lm.prompt(u.conversation, method), method)
            targets = [backend._tokens(t) for t in texts]
            per_model.append(batcher.score([filled, filled], targets))
        for a, b in zip(*per_model, strict=True):
            out += (a.float() - b.float()).abs().tolist()
    return out


if __name__ == "__main__":
    sys.exit(main())
