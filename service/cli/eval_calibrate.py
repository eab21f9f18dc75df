"""``salience eval calibrate``: a calibrated item bank for one model (evals.bank).

    salience eval calibrate --split test --candidates 480 --out bank.json

Two passes of method ``none`` at length 0 with sampled answers, both kept in ``--db`` (a
killed calibration resumes): the *selection* pass (``--seed``) over every candidate, which keeps
the items whose sampled ``both`` is at least ``--threshold``; and the *measurement* pass
(``--measure-seed``, by default the seed ``eval run`` uses) over the kept items alone, on draws
the selection never saw. The bank file holds both rates.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import Any

from .common import CliError, at_least, command, device_name, model_options, names, writable_file


def register(sub: Any) -> None:
    from salience.evals.bank import DEFAULT_THRESHOLD

    from .eval_cmd import DEFAULT_DB, FAMILY_IDS

    c = command(
        sub,
        "calibrate",
        help="keep the items a model follows with no distractor: a bank file for eval run --bank",
        description=__doc__,
        run=calibrate_eval,
    )
    c.add_argument("--out", required=True, metavar="FILE", help="the bank file to write (JSON)")
    c.add_argument("--db", default=DEFAULT_DB, help="the SQLite file both passes are kept in")
    c.add_argument(
        "--split", default="train", choices=["train", "test"], help="which items are candidates"
    )
    c.add_argument("--candidates", type=at_least(1), default=240, help="items drawn from the split")
    c.add_argument(
        "--samples", type=at_least(1), default=8, metavar="K", help="sampled answers per item"
    )
    c.add_argument("--temperature", type=float, default=0.7, help="of the sampled answers")
    c.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="keep an item whose fraction of sampled answers passing `both` is at least this",
    )
    c.add_argument(
        "--measure-seed",
        type=int,
        default=0,
        help="the seed of the measurement pass (eval run's --seed: the draws a study measures)",
    )
    c.add_argument("--max-new-tokens", type=at_least(1), default=64, help="answer budget")
    c.add_argument(
        "--families", type=names(FAMILY_IDS, "family"), default=None,
        help="only items of these rule families (comma-separated)",
    )  # fmt: skip
    model_options(c, seed="the selection pass's item draw and generation seed (default 1: not "
                  "the measurement's)")  # fmt: skip
    c.set_defaults(seed=1)
    c.add_argument(
        "--dtype", default=None, choices=["float32", "bfloat16"],
        help="local model weights (default: float32 on the CPU, bfloat16 on CUDA)",
    )  # fmt: skip
    c.add_argument(
        "--device", default=None, type=device_name,
        help="where the local model runs (default: $SALIENCE_DEVICE, else auto: a GPU if any)",
    )  # fmt: skip
    c.add_argument(
        "--batch", type=at_least(1), default=72, help="rows per forward pass (length 0: cheap)"
    )
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument(
        "--json", action="store_true", help="print the bank's summary as JSON (not its items)"
    )


def calibrate_eval(args: argparse.Namespace) -> int:
    from salience.evals import bank
    from salience.evals.grid import Grid
    from salience.evals.runner import run
    from salience.evals.store import RunConflict, Store

    from .common import check_model_path
    from .eval_cmd import local_backend

    if not 0 < args.threshold <= 1:
        raise CliError(f"--threshold must lie in (0, 1], not {args.threshold}", 2)
    if args.seed == args.measure_seed:
        raise CliError(
            "--seed and --measure-seed must differ: a rate measured on the draws that selected "
            "the items is inflated by the selection",
            2,
        )
    writable_file(args.out, "--out")
    writable_file(args.db, "--db")
    check_model_path(args.model)
    try:
        selection = Grid(
            split=args.split,
            items=args.candidates,
            kinds=("prose",),
            lengths=(0,),
            positions=("before",),
            methods=("none",),
            seed=args.seed,
            max_new_tokens=args.max_new_tokens,
            samples=args.samples,
            temperature=args.temperature,
            families=args.families,
        )
    except ValueError as error:
        raise CliError(f"bad calibration: {error}", 2) from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not args.quiet:
        print(f"loading {args.model or 'the embedded model'}…", file=sys.stderr, flush=True)
    backend = local_backend(args)
    store = Store(args.db)
    given = sys.argv[sys.argv.index("calibrate") + 1 :] if "calibrate" in sys.argv else []
    command_line = "salience eval calibrate " + shlex.join(given)
    try:
        name = _name(selection, backend)
        _pass(run, selection, backend, store, name, args, "selection")
        kept, candidates = bank.select(store.records(name), args.threshold)
        order = {item.id: i for i, item in enumerate(_drawn(selection))}
        kept.sort(key=lambda e: order.get(e["id"], len(order)))
        chosen = bank.Bank(
            model=backend.model,
            split=args.split,
            threshold=args.threshold,
            samples=args.samples,
            selection_seed=args.seed,
            candidates=len(candidates),
            items=tuple(kept),
            command=command_line,
        )
        measured: dict[str, Any] = {"seed": args.measure_seed, "items": len(kept)}
        if kept:
            path = f"{args.out}.tmp-bank.json"
            bank.write(chosen, path)  # the measurement pass reads its items from a bank file
            # the same grid on the kept items alone, with the draws of the measurement seed
            measurement = dataclasses.replace(
                selection, items=len(kept), seed=args.measure_seed, families=None, bank=path
            )
            mname = _name(measurement, backend)
            try:
                _pass(run, measurement, backend, store, mname, args, "measurement")
            finally:
                import os

                os.unlink(path)
            rates = {r["item"]: float(r["sampled"]["both"]) for r in store.records(mname)}
            values = [rates[e["id"]] for e in kept if e["id"] in rates]
            measured.update(_rate(values))
    except RunConflict as error:
        raise CliError(f"{error} (pass another --db)") from None
    finally:
        store.close()
    everyone = sum(e["selection"] for e in candidates) / max(1, len(candidates))
    measured["all_candidates"] = round(everyone, 4)
    result = dataclasses.replace(chosen, measured=measured)
    bank.write(result, args.out)
    if args.json:
        import json

        data = {k: v for k, v in result.data().items() if k != "items"}
        data["families"] = {
            f: {
                "candidates": n,
                "mean": round(mean, 4),
                "kept": bank.by_family(list(result.items)).get(f, (0, 0.0))[0],
            }
            for f, (n, mean) in bank.by_family(candidates).items()
        }
        print(json.dumps({**data, "out": args.out}))
        return 0
    _print(result, candidates)
    return 0


def _name(grid: Any, backend: Any) -> str:
    """A pass's run name: its grid and model, whatever the number of items (the first n items
    of a larger draw are the n of a smaller one, so more candidates resume the pass)."""
    every = dataclasses.replace(grid, items=0)
    return "calibrate-" + str(every.identity(backend.name, backend.model))[4:]


def _drawn(grid: Any) -> list[Any]:
    from salience.evals.runner import grid_items

    return grid_items(grid)


def _pass(run: Any, grid: Any, backend: Any, store: Any, name: str, args: Any, what: str) -> None:
    from .eval_cmd import ProgressBar

    bar = None if args.quiet else ProgressBar()
    if bar is not None:
        print(f"{what} pass: {grid.items} items × {grid.samples} sampled answers ({name})",
              file=sys.stderr, flush=True)  # fmt: skip
    stats = run(grid, backend, store, name, bar, 1, batch=args.batch, activity=bar)
    if bar is not None:
        bar.close()
        print(f"{what} pass: {stats.done} new, {stats.skipped} resumed", file=sys.stderr)


def _rate(values: list[float]) -> dict[str, Any]:
    """The mean of per-item rates with a 95 % bootstrap interval over items."""
    import random

    mean = sum(values) / len(values)
    rng = random.Random(0)
    boots = sorted(sum(rng.choice(values) for _ in values) / len(values) for _ in range(2000))
    return {
        "rate": round(mean, 4),
        "interval": [round(boots[49], 4), round(boots[1949], 4)],
    }


def _print(result: Any, candidates: list[dict[str, Any]]) -> None:
    from salience.evals.bank import by_family

    m = result.measured
    print(
        f"bank: {len(result.items)} of {result.candidates} candidates kept (sampled both >= "
        f"{result.threshold:g} over {result.samples} draws, seed {result.selection_seed})"
    )
    print(f"  all candidates, selection draws: {m.get('all_candidates', 0):.3f}")
    print(f"  kept items, selection draws:     {result.selection_rate():.3f}")
    if "rate" in m:
        lo, hi = m["interval"]
        print(f"  kept items, fresh draws (seed {m['seed']}): {m['rate']:.3f} [{lo:.3f}, {hi:.3f}]")
    every = by_family(candidates)
    kept = by_family(list(result.items))
    print("  per family (kept / candidates, candidates' mean):")
    for family, (n, mean) in every.items():
        print(f"    {family:<16} {kept.get(family, (0, 0.0))[0]:>3} / {n:<3}  {mean:.2f}")
