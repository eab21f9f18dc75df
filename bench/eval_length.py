"""The eval at length, against what this machine can do: samples/min at 2k, 4k and 8k tokens,
and each phase's rate as a fraction of a ceiling measured in the same run.

First the ceiling, from the kernels the model's forward pass is made of, at its own shapes:

    matmul     the projections of one layer (q, k, v, o, gate, up, down) on T = 2,048 rows:
               GFLOP/s, best of several runs, float32 and bfloat16
    attention  causal scaled-dot-product attention (torch's fused kernel) at each length, with
               the model's heads and head size: GFLOP/s counting the causal half
    memory     reading a 512 MiB tensor: GB/s (what a decoding step is bound by)

Then the model's phases on real eval prompts (a test item, a distractor of the length, the rule
before it and after it), for ``none`` and a steered method:

    prefill    one prompt through the model: its FLOPs (projections + causal attention) over the
               time; the ceiling's time is each part at its kernel's measured rate
    decode     greedy + k sampled rows together, ms per step; the ceiling reads every weight and
               every row's cache once per step at the measured bandwidth
    score      the two references teacher-forced from the prompt's cache

and samples/min as the runner computes them (``LocalBackend.evaluate``: prefill, decode, the
margin's references) for greedy and k = 4. Peak RSS after each length is printed too.

    .venv/bin/python bench/eval_length.py [--lengths 2048,4096,8192] [--method share]
        [--dtype bfloat16] [--json]

The last line reads: eval at length: 2k <a>/min, 4k <b>/min, 8k <c>/min; prefill at <p>% of the
measured ceiling
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from salience.evals.backends import LocalBackend, Unit
from salience.evals.grid import Grid
from salience.evals.records import row_seed
from salience.evals.runner import plan

MAX_NEW = 48


def best_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def shapes(config: Any) -> dict[str, int]:
    hidden = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", heads))
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    return {
        "layers": int(config.num_hidden_layers),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "intermediate": int(config.intermediate_size),
        "vocab": int(config.vocab_size),
    }


def projection_flops_per_token(s: dict[str, int]) -> float:
    """One token through every layer's projections (multiply-adds counted as 2 FLOPs)."""
    h, d, kv, i = s["hidden"], s["head_dim"], s["kv_heads"], s["intermediate"]
    per_layer = h * s["heads"] * d * 2 + h * kv * d * 2 + h * i * 3  # q, o; k, v; gate, up, down
    return 2.0 * per_layer * s["layers"]


def attention_flops(s: dict[str, int], length: int) -> float:
    """Causal attention over ``length`` tokens, every layer: QKᵀ and AV over the lower half."""
    return 2.0 * 2 * s["heads"] * s["head_dim"] * length * (length + 1) / 2 * s["layers"]


def matmul_rate(s: dict[str, int], dtype: torch.dtype, rows: int = 2048) -> float:
    """GFLOP/s of one layer's projections on ``rows`` tokens."""
    h, d, i = s["hidden"], s["head_dim"], s["intermediate"]
    x = torch.randn(rows, h, dtype=dtype)
    mid = torch.randn(rows, i, dtype=dtype)
    weights = {
        "q": torch.randn(h, s["heads"] * d, dtype=dtype),
        "kv": torch.randn(h, s["kv_heads"] * d * 2, dtype=dtype),
        "o": torch.randn(s["heads"] * d, h, dtype=dtype),
        "gate_up": torch.randn(h, 2 * i, dtype=dtype),
        "down": torch.randn(i, h, dtype=dtype),
    }

    def layer() -> None:
        x @ weights["q"]
        x @ weights["kv"]
        x @ weights["o"]
        x @ weights["gate_up"]
        mid @ weights["down"]

    flops = projection_flops_per_token(s) / s["layers"] * rows
    return flops / best_seconds(layer) / 1e9


def attention_rate(s: dict[str, int], dtype: torch.dtype, length: int) -> float:
    """GFLOP/s of fused causal attention at ``length`` (one layer, the model's heads)."""
    q = torch.randn(1, s["heads"], length, s["head_dim"], dtype=dtype)
    k = torch.randn(1, s["heads"], length, s["head_dim"], dtype=dtype)
    v = torch.randn(1, s["heads"], length, s["head_dim"], dtype=dtype)
    seconds = best_seconds(
        lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), repeats=3
    )
    return attention_flops(s, length) / s["layers"] / seconds / 1e9


def bandwidth() -> float:
    """GB/s reading a 512 MiB tensor."""
    x = torch.ones(128 * 1024 * 1024, dtype=torch.float32)
    return x.numel() * 4 / best_seconds(lambda: x.sum(), repeats=5) / 1e9


def units_at(
    backend: LocalBackend, length: int, methods: tuple[str, ...], k: int
) -> list[tuple[str, Unit]]:
    """One test item's prompts at ``length``, rule before and after, under ``methods``, each
    with its label (method/position)."""
    grid = Grid(
        items=1, lengths=(length,), kinds=("prose",), positions=("before", "after"),
        methods=methods, max_new_tokens=MAX_NEW, samples=k, margin=False,
    )  # fmt: skip
    return [
        (f"{p.factors['method']}/{p.factors['position']}",
         Unit(p.key, p.conv, p.factors["method"], MAX_NEW, grid.seed,
              tuple(row_seed(p.key, j) for j in range(k)), grid.temperature, None))
        for p in plan(grid, backend)
    ]  # fmt: skip


def phases(
    backend: LocalBackend, unit: Unit, k: int, ceiling: dict[str, Any], s: dict[str, int]
) -> dict[str, float]:
    """Prefill, decode and score of one unit, timed apart, with their ceilings."""
    from salience.model.batch import Batcher, cache_bytes

    lm = backend.lm
    batcher = Batcher(lm)
    method = lm.method(unit.method)
    prompt = lm.prompt(unit.conversation, method)
    length = len(prompt)
    t = time.perf_counter()
    filled = batcher.prefill(prompt, method)
    prefill_s = time.perf_counter() - t
    linear, attention = projection_flops_per_token(s) * length, attention_flops(s, length)
    ideal = linear / (ceiling["matmul"] * 1e9) + attention / (
        ceiling["attention"][_nearest(ceiling["attention"], length)] * 1e9
    )
    rows = 1 + k
    t = time.perf_counter()
    batcher.decode([filled] * rows, list(range(rows)), [0.0] + [0.7] * k, MAX_NEW)
    decode_s = time.perf_counter() - t
    element = torch.finfo(lm.model.dtype).bits // 8
    weights = sum(p.numel() for p in lm.model.parameters()) * element
    cache = cache_bytes(lm, length + MAX_NEW // 2)
    step_ideal = (weights + rows * cache) / (ceiling["bandwidth"] * 1e9)
    targets = [lm.tokenizer(" ".join(["word"] * 40))["input_ids"]] * 2
    t = time.perf_counter()
    batcher.score([filled, filled], targets)
    score_s = time.perf_counter() - t
    batcher.release()
    return {
        "tokens": length,
        "prefill_s": prefill_s,
        "prefill_gflops": (linear + attention) / prefill_s / 1e9,
        "prefill_of_ceiling": ideal / prefill_s,
        "decode_ms_per_step": 1000 * decode_s / MAX_NEW,
        "decode_of_ceiling": step_ideal / (decode_s / MAX_NEW),
        "score_s": score_s,
    }


def _nearest(table: dict[int, float], length: int) -> int:
    return min(table, key=lambda n: abs(n - length))


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="2048,4096,8192")
    parser.add_argument("--method", default="share", help="the steered method beside none")
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--k", type=int, default=4, help="sampled answers per prompt")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    methods = ("none", args.method)
    dtype = getattr(torch, args.dtype)

    backend = LocalBackend(None, args.dtype)
    s = shapes(backend.lm.model.config)
    ceiling: dict[str, Any] = {
        "matmul": matmul_rate(s, dtype),
        "matmul_float32": matmul_rate(s, torch.float32),
        "attention": {n: attention_rate(s, dtype, n) for n in lengths},
        "bandwidth": bandwidth(),
    }
    print(f"ceiling ({args.dtype}): projections {ceiling['matmul']:.1f} GFLOP/s "
          f"(float32 {ceiling['matmul_float32']:.1f}); attention " + ", ".join(
              f"{n}: {r:.1f}" for n, r in ceiling["attention"].items()) +
          f" GFLOP/s; memory {ceiling['bandwidth']:.1f} GB/s", file=sys.stderr)  # fmt: skip

    results: dict[int, dict[str, Any]] = {}
    for length in lengths:
        labelled = units_at(backend, length, methods, args.k)
        units = [u for _, u in labelled]
        row: dict[str, Any] = {"phases": {}}
        for label, u in labelled:
            row["phases"][label] = phases(backend, u, args.k, ceiling, s)
        greedy = [Unit(u.key, u.conversation, u.method, MAX_NEW, u.seed) for u in units]
        for name, batch in (("greedy", greedy), (f"k={args.k}", units)):
            t = time.perf_counter()
            done = sum(1 for _ in backend.evaluate(batch, rows=16))
            row[name] = 60 * done / (time.perf_counter() - t)
        row["peak_rss_gib"] = peak_rss_gib()
        results[length] = row
        fractions = [p["prefill_of_ceiling"] for p in row["phases"].values()]
        print(f"{length}: " + "; ".join(
            f"{label} prefill {p['prefill_s']:.1f} s ({100 * p['prefill_of_ceiling']:.0f}% of "
            f"ceiling), decode {p['decode_ms_per_step']:.0f} ms/step "
            f"({100 * p['decode_of_ceiling']:.0f}%), score {p['score_s']:.1f} s"
            for label, p in row["phases"].items()) +
            f"; samples/min greedy {row['greedy']:.2f}, k={args.k} {row[f'k={args.k}']:.2f}; "
            f"peak RSS {row['peak_rss_gib']:.1f} GiB; prefill {100 * min(fractions):.0f}–"
            f"{100 * max(fractions):.0f}% of ceiling", file=sys.stderr)  # fmt: skip

    if args.json:
        print(json.dumps({"ceiling": ceiling, "results": results}, indent=2, default=str))
    per_min = ", ".join(f"{n // 1024}k {results[n][f'k={args.k}']:.2f}/min" for n in lengths)
    prefill = [
        p["prefill_of_ceiling"] for n in (lengths[0], lengths[-1])
        for p in results[n]["phases"].values()
    ]  # fmt: skip
    print(f"eval at length: {per_min}; prefill at {100 * min(prefill):.0f}–"
          f"{100 * max(prefill):.0f}% of the measured ceiling")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
