"""What Ray costs: the same small grid run by the single-process runner and by ``--ray`` (a Ray
started in the process, ``--workers`` actors), side by side, in one run, records compared.

On one machine Ray cannot be faster than the batched single process on the same cores: it adds
its start-up, a model load per actor and the shipping of each group. The point of the number is
that overhead, so that a grid on a real cluster can be sized (the per-sample compute divides
by the actors; the fixed part does not).

    .venv/bin/python bench/distributed.py [--items 4] [--lengths 0,256] [--workers 2] [--repeats 2]

The single process uses all --threads (default: the machine's cores); the actors share them.
The last line reads: ray overhead: single <s> s, ray <s> s, ratio <x> (records equal: yes|no)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import torch

from salience.evals.backends import BackendSpec, LocalBackend
from salience.evals.distributed import RayExecutor
from salience.evals.grid import Grid
from salience.evals.runner import run
from salience.evals.store import Store


def outcomes(db: Path) -> list[tuple[str, dict[str, Any]]]:
    with closing(Store(db)) as store:
        return store.outcomes("b")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=4)
    parser.add_argument("--lengths", default="0,256")
    parser.add_argument("--methods", default="none,uniform")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    grid = Grid(
        items=args.items,
        lengths=[int(x) for x in args.lengths.split(",")],
        methods=args.methods.split(","),
        max_new_tokens=args.max_new_tokens,
    )
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    backend = LocalBackend()
    load = time.perf_counter() - started
    per_actor = max(1, args.threads // args.workers)
    spec = BackendSpec("local", backend.spec().options, threads=per_actor)
    print(
        f"grid: {grid.size()} samples ({args.items} items, lengths {args.lengths}, methods "
        f"{args.methods}, {args.max_new_tokens} new tokens, batch {args.batch}); single process: "
        f"{args.threads} threads; ray: {args.workers} actors x {per_actor} thread(s)"
    )
    single_times, ray_times, equal = [], [], True
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # interleaved: the machine's noise hits both
            one = Path(tmp) / f"single{repeat}.sqlite3"
            t = time.perf_counter()
            run(grid, backend, Store(one), "b", batch=args.batch)
            single_times.append(time.perf_counter() - t + load)  # a fresh process loads too
            spread = Path(tmp) / f"ray{repeat}.sqlite3"
            executor = RayExecutor(spec, args.workers, None, args.batch)
            t = time.perf_counter()
            run(grid, backend, Store(spread), "b", batch=args.batch, executor=executor)
            ray_times.append(time.perf_counter() - t + load)  # the driver loads (it plans)
            same = outcomes(one) == outcomes(spread)
            equal = equal and same
            print(
                f"repeat {repeat + 1}: single {single_times[-1]:.1f} s, ray "
                f"{ray_times[-1]:.1f} s (records equal: {'yes' if same else 'no'})"
            )
    single, ray = min(single_times), min(ray_times)
    print(
        f"ray overhead: single {single:.1f} s, ray {ray:.1f} s, ratio {ray / single:.2f} "
        f"(records equal: {'yes' if equal else 'no'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
