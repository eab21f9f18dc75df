"""``salience model …``: work on the local model's steering parameters.

salience model profile-pasta [--items 8] [--k 16] [--beta 1.5] [--seed 0] [--out FILE]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

DEFAULT_PASTA = "model/data/pasta-smollm2-135m.json"


def register(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser(
        "model",
        help="profile or inspect the local model's steering parameters",
        description=__doc__,
    )
    sub = p.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    pasta = sub.add_parser(
        "profile-pasta",
        help="PASTA head profiling: steer each head alone, keep the k that help most",
    )
    pasta.add_argument("--items", type=int, default=8, help="profiling items (built-in set)")
    pasta.add_argument("--distractor", type=int, default=8, help="background sentences per item")
    pasta.add_argument("--k", type=int, default=16, help="heads to keep")
    pasta.add_argument("--beta", type=float, default=1.5)
    pasta.add_argument("--seed", type=int, default=0)
    pasta.add_argument("--layers", default=None, help="e.g. 0-29 or 3,5 (default: all)")
    pasta.add_argument("--model", default=None)
    pasta.add_argument("--out", default=DEFAULT_PASTA)
    pasta.set_defaults(run=run_pasta)


def _layers(spec: str | None) -> list[int] | None:
    if spec is None:
        return None
    out: list[int] = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def run_pasta(args: argparse.Namespace) -> int:
    import torch

    from model.local import LocalModel
    from model.pasta import profile_heads, select_heads
    from model.profiling import profiling_items

    torch.manual_seed(args.seed)
    lm = LocalModel.load(args.model)
    items = profiling_items(args.items, args.distractor, args.seed)
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 9 == 0 or done == total:
            elapsed = time.perf_counter() - start
            print(f"\r{done}/{total} heads, {elapsed:.0f} s", end="", file=sys.stderr, flush=True)

    scores = profile_heads(lm, items, args.beta, _layers(args.layers), progress)
    print(file=sys.stderr)
    command = "salience model profile-pasta " + " ".join(shlex.quote(a) for a in sys.argv[3:] if a)
    bias = select_heads(
        scores,
        args.k,
        args.beta,
        {
            "command": command.strip(),
            "items": args.items,
            "distractor_sentences": args.distractor,
            "seed": args.seed,
            "profiling_set": "model.profiling.profiling_items (built-in)",
            "model": lm.loaded.source.rsplit("/", 1)[-1],
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    bias.save(args.out)
    for layer, head, gain in bias.meta["heads"]:
        print(f"layer {layer:2d} head {head}: {gain:+.4f} nats")
    print(f"wrote {args.out}")
    return 0
