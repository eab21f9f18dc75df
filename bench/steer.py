"""Prefill and decode speed of the embedded model with and without the attention bias.

For ~512- and ~2,048-token prompts (a rule in the system message, standard-library docstrings as
the distractor), in one run, interleaved:

    plain    the stock SDPA attention (no steering)
    biased   ``uniform``: β on every layer and head (the folded-dimension path on all 30 layers)
    learned  the shipped ``learned`` file: β on every layer and head plus the importance
             embedding (a forward hook on the input embeddings)
    distance ``uniform``'s β times g(distance of the query from the rule): the per-query
             factors on the folded path, and a per-step row on decoding steps (issue 15)
    share    ``share`` (its default s): β from the ratio of unmarked to marked keys each query
             sees, so factors that change at every query and every decoding step (issue 15)

prefill = one forward pass over the prompt; decode = the mean time per token of 16 greedy steps
with the KV cache; and, alone, the time a decoding step spends building the bias rows of every
layer. ratio = method / plain (1.0: the bias costs nothing; goal at 2,048: prefill
<= 1.1, decode time <= 1.11, i.e. >= 0.9x the speed). Printed: the best-of ratio (fastest
method run / fastest plain run) and, in brackets, the median over repeats of the paired ratio
(method / plain in the same repeat). Within a repeat the methods run in a rotated order.

    .venv/bin/python bench/steer.py [--repeats 5] [--dtype float32|bfloat16] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch
from transformers import DynamicCache

from salience.markup import Level, parse_messages
from salience.model.bias import ImportanceBias
from salience.model.corpus import docstring_sentences
from salience.model.local import LocalModel
from salience.model.methods import DEFAULT_SHARE, default_file
from salience.model.prompt import build_prompt
from salience.model.steer import Steering, steering

DECODE_STEPS = 16
NAMES = {"b": "biased", "l": "learned", "d": "distance", "s": "share"}  # the steered methods


def distractor(words: int) -> str:
    """About ``words`` words of standard-library docstrings (model.corpus), in order."""
    out: list[str] = []
    for sentence, _ in docstring_sentences():
        out.extend(sentence.split())
        if len(out) >= words:
            break
    return " ".join(out[:words])


def conversation_of(lm: LocalModel, tokens: int) -> Any:
    words = tokens // 2
    while True:
        conv = parse_messages(
            [
                {"role": "system", "content": "<rule>Answer in exactly one sentence.</rule>"},
                {"role": "user", "content": distractor(words) + "\n\nWhat is this text about?"},
            ]
        )
        n = len(build_prompt(lm.tokenizer, conv))
        if n >= tokens:
            return conv
        words = int(words * tokens / n) + 8


def prefill(lm: LocalModel, ids: torch.Tensor, state: Steering | None) -> float:
    start = time.perf_counter()
    with torch.no_grad(), steering(state):
        lm.model(ids)
    return time.perf_counter() - start


def decode(lm: LocalModel, ids: torch.Tensor, state: Steering | None) -> float:
    cache = DynamicCache()
    with torch.no_grad(), steering(state):
        logits = lm.model(ids, cache=cache, use_cache=True).logits[0, -1]
        start = time.perf_counter()
        for _ in range(DECODE_STEPS):
            step = logits.argmax().view(1, 1)
            logits = lm.model(step, cache=cache, use_cache=True).logits[0, -1]
    return (time.perf_counter() - start) / DECODE_STEPS


def row_cost(lm: LocalModel, prompt_len: int, state: Steering, steps: int = 200) -> float:
    """Seconds per decoding step that building the bias rows takes (every layer), alone."""
    with torch.no_grad():
        start = time.perf_counter()
        for k in range(prompt_len + 1, prompt_len + 1 + steps):
            for layer in range(lm.n_layers):
                state.decode_row(layer, k, torch.float32)
    return (time.perf_counter() - start) / steps


def paired(method: list[float], plain: list[float]) -> float:
    """The median over repeats of method / plain within the same repeat."""
    return statistics.median(a / b for a, b in zip(method, plain, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    lm = LocalModel.load(dtype=args.dtype)
    bias = ImportanceBias.uniform(lm.n_layers, lm.n_heads, {Level.HARD: 1.5, Level.HIGH: 0.75})
    learned = ImportanceBias.load(default_file("learned"))
    scaled = ImportanceBias(lm.n_layers, lm.n_heads, distance=(0, 16, 64, 256, 1024, 4096))
    with torch.no_grad():
        scaled.beta.copy_(bias.beta)
        assert scaled.distance is not None
        scaled.distance.values.copy_(torch.linspace(0.5, 2.0, 6).expand(4, -1))  # grows with d
    share = ImportanceBias.share(lm.n_layers, lm.n_heads, DEFAULT_SHARE)
    rows: list[dict[str, Any]] = []
    for target in (512, 2048):
        prompt = build_prompt(lm.tokenizer, conversation_of(lm, target))
        ids = prompt.input_ids.unsqueeze(0)
        state = Steering(bias, prompt.level_one_hot())
        fitted = Steering(learned, prompt.level_one_hot())
        far = Steering(scaled, prompt.level_one_hot())
        held = Steering(share, prompt.level_one_hot())
        assert state.active == set(range(lm.n_layers))
        states: dict[str, Steering | None] = {
            "p": None,
            "b": state,
            "l": fitted,
            "d": far,
            "s": held,
        }
        times: dict[str, list[float]] = {f"{k}{m}": [] for k in "pd" for m in states}
        for warm in states.values():  # warm every path
            prefill(lm, ids, warm)
            decode(lm, ids, warm)
        order = list(states)
        for repeat in range(args.repeats):
            # interleaved, so that noise hits all alike, and rotated, so that no method always
            # runs first (or right after another's decode)
            turn = order[repeat % len(order) :] + order[: repeat % len(order)]
            for m in turn:
                times[f"p{m}"].append(prefill(lm, ids, states[m]))
            for m in turn:
                times[f"d{m}"].append(decode(lm, ids, states[m]))
        best = {k: min(v) for k, v in times.items()}
        rows_ms = {
            m: row_cost(lm, len(prompt), Steering(st.bias, prompt.level_one_hot())) * 1e3
            for m, st in states.items()
            if st is not None
        }
        med = {k: paired(v, times[k[0] + "p"]) for k, v in times.items()}
        rows.append(
            {
                "tokens": len(prompt),
                "prefill_plain_s": best["pp"],
                "decode_plain_ms": best["dp"] * 1e3,
                # per method: best-of ratio and the median of paired ratios, prefill and decode
                **{
                    f"{stage}_{NAMES[m]}_{kind}": value
                    for m in NAMES
                    for stage, k in (("prefill", f"p{m}"), ("decode", f"d{m}"))
                    for kind, value in (
                        ("ratio", best[k] / best[k[0] + "p"]),
                        ("ratio_median", med[k]),
                    )
                },
                "row_ms_per_step": {NAMES[m]: v for m, v in rows_ms.items()},
            }
        )
    if args.json:
        print(json.dumps({"dtype": args.dtype, "rows": rows}, indent=2))
        return 0
    print(
        f"dtype {args.dtype}, {args.repeats} interleaved repeats; time ratios to plain: "
        "best (median)"
    )
    names = list(NAMES.values())
    print(
        f"{'tokens':>7}{'prefill plain':>15}"
        + "".join(f"{n:>14}" for n in names)
        + f"{'decode plain':>15}"
        + "".join(f"{n:>14}" for n in names)
    )
    for r in rows:
        cells = [f"{r['tokens']:>7}{r['prefill_plain_s']:>13.3f} s"]
        cells += [
            f"{r[f'prefill_{n}_ratio']:>7.2f} ({r[f'prefill_{n}_ratio_median']:.2f})" for n in names
        ]
        cells.append(f"{r['decode_plain_ms']:>12.1f} ms")
        cells += [
            f"{r[f'decode_{n}_ratio']:>7.2f} ({r[f'decode_{n}_ratio_median']:.2f})" for n in names
        ]
        print("".join(cells))
    for r in rows:
        cost = ", ".join(f"{k} {v:.2f} ms" for k, v in r["row_ms_per_step"].items())
        print(f"{r['tokens']:>7} tokens: building the bias rows per decoding step: {cost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
