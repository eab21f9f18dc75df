"""``salience eval run`` / ``salience eval report``: constraint following as distractors grow.

    salience eval run --items 4 --lengths 0,256 --methods none,uniform    (a small default grid)
    salience eval report RUN

Records go to SQLite (``--db``, default evals.sqlite3), one per sample; rerunning the same
command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from salience.model.methods import help_text

from .common import (
    CliError,
    at_least,
    check_model_path,
    command,
    device_name,
    from_options,
    methods,
    model_options,
    names,
    whole_numbers,
    writable_file,
)

if TYPE_CHECKING:
    from salience.evals.backends import Backend
    from salience.evals.runner import RunStats

DEFAULT_DB = "evals.sqlite3"
KINDS = ("prose", "similar", "conflicting", "noise")  # evals.distractors.KINDS (tested)
POSITIONS = ("system", "before", "after", "both", "user")  # evals.prompts.POSITIONS (tested)


def _family_ids() -> tuple[str, ...]:
    from salience.evals.families import FAMILIES

    return tuple(f.id for f in FAMILIES)


FAMILY_IDS = _family_ids()


def register(commands: Any) -> Any:
    """``salience eval`` and its subcommands; returns its subcommands (``eval calibrate`` joins
    them from its own module)."""
    from .eval_reports import export_eval, floors_eval, import_eval, list_eval, report_eval

    p = command(commands, "eval", "run or report the constraint-following evaluation", __doc__)
    sub = p.add_subparsers(dest="eval_command", metavar="COMMAND", required=True)
    r = command(sub, "run", help="run a grid (resumes a killed run)", run=run_eval)
    r.add_argument("--name", default=None, help="run name (default: derived from the grid)")
    r.add_argument("--db", default=DEFAULT_DB, help="the SQLite file the records go to")
    r.add_argument(
        "--split", default="test", choices=["test", "train"], help="which items (families, "
        "phrasings and tasks are split by a hash of their id)",
    )  # fmt: skip
    r.add_argument("--items", type=at_least(1), default=4, help="items drawn from the split")
    r.add_argument(
        "--kinds", type=names(KINDS, "kind"), default="prose", help=f"{', '.join(KINDS)}"
    )
    r.add_argument(
        "--lengths", type=whole_numbers(0), default="0,256", help="distractor tokens, e.g. 0,512"
    )
    r.add_argument(
        "--positions", type=names(POSITIONS, "position"), default="before",
        help=f"where the rule sits: {', '.join(POSITIONS)} (user: the rule in the system message, "
        "the distractor in an untrusted user message; with kind conflicting, an injection)",
    )  # fmt: skip
    r.add_argument(
        "--methods", type=methods, default="none,uniform", help=f"comma-separated: {help_text()}"
    )
    r.add_argument(
        "--design",
        default="crossed",
        choices=["crossed", "rotated"],
        help="crossed: every item gets every (kind, position); rotated: one pair per item, in turn",
    )
    r.add_argument("--max-new-tokens", type=at_least(1), default=64, help="answer budget")
    model_options(r, seed="item draw and generation seed")
    r.add_argument(
        "--base-url", default=None, help="an OpenAI-compatible server instead (…/v1); several "
        "comma-separated serving the same model share the requests in turn",
    )  # fmt: skip
    r.add_argument("--remote-model", default=None, help="the server's model name")
    r.add_argument("--api-key", default=None, help="the server's API key")
    r.add_argument(
        "--concurrency", type=at_least(1), default=4, help="requests in flight (remote only)"
    )
    r.add_argument(
        "--dtype", default=None, choices=["float32", "bfloat16"],
        help="local model weights (default: float32 on the CPU, bfloat16 on CUDA)",
    )  # fmt: skip
    r.add_argument(
        "--device", default=None, type=device_name,
        help="where the local model runs (default: $SALIENCE_DEVICE, else auto: a GPU if any)",
    )  # fmt: skip
    r.add_argument(
        "--margin",
        action="store_true",
        help="measure (c): log p(compliant) − log p(violating) of real reference answers "
        "(local model)",
    )
    r.add_argument(
        "--samples",
        type=at_least(0),
        default=0,
        metavar="K",
        help="measure (b): K sampled answers per prompt and the fraction that pass (the study "
        "uses 8)",
    )
    r.add_argument("--temperature", type=float, default=0.7, help="of the sampled answers")
    r.add_argument(
        "--families", type=names(FAMILY_IDS, "family"), default=None,
        help="only items of these rule families (comma-separated)",
    )  # fmt: skip
    r.add_argument(
        "--batch",
        type=_batch,
        default="auto",
        help="local model: rows per forward pass (1: one prompt at a time; auto: 16, or fewer "
        "where the caches of the grid's longest prompt would not fit in half the memory "
        "available)",
    )
    r.add_argument(
        "--dataset",
        default=None,
        help="an IFEval-format JSONL file: its first --items rows are the items, run through "
        "the whole grid (rule sentences from each row's 'rules', else detected; --split and "
        "--families do not apply)",
    )
    r.add_argument(
        "--bank",
        default=None,
        metavar="FILE",
        help="a calibrated item bank (`salience eval calibrate`): its first --items items, on "
        "the bank's split (--split and --families do not apply)",
    )
    r.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="spread the samples over Ray actors (pip install 'salience[ray]'): without ADDRESS "
        "a Ray started here with --workers actors, with one a running cluster's (ray://… or "
        "host:port); this process alone writes --db",
    )  # fmt: skip
    r.add_argument(
        "--workers", type=at_least(1), default=2, help="Ray actors, each loading the model once"
    )
    r.add_argument(
        "--jsonl", default=None, help="also export the run's records to this JSONL file (.gz: "
        "compressed) at the end, on Ctrl-C, and every --export-every minutes",
    )  # fmt: skip
    r.add_argument(
        "--export-every", type=at_least(1), default=None, metavar="MINUTES",
        help="with --jsonl: rewrite it this often while the run goes (a study's records kept "
        "outside the database as it runs)",
    )  # fmt: skip
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--json", action="store_true", help="end with a JSON summary of the run on stdout"
    )
    rep = command(sub, "report", help="summarise a run as Markdown", run=report_eval)
    rep.add_argument(
        "name", nargs="?", default=None,
        help="the run (`salience eval list` shows them; not needed where --db holds one run)",
    )  # fmt: skip
    rep.add_argument(
        "--json", action="store_true",
        help="the report as data: every section and table, each estimate with its interval",
    )  # fmt: skip
    rep.add_argument("--db", default=DEFAULT_DB, help="the SQLite file of the records")
    rep.add_argument(
        "--records",
        default=None,
        metavar="FILE",
        help="report a records file (JSONL, .gz too; `eval export`) instead of a database run",
    )
    rep.add_argument("--out", default=None, help="also write summary.md and plots into this folder")
    rep.add_argument(
        "--complete",
        action="store_true",
        help="only prompts that every method answered (runs stopped early or run in phases)",
    )
    rep.add_argument(
        "--headline",
        default=None,
        metavar="FILE",
        help="a headline-families file (eval floors --write): also the measures on those alone",
    )
    ex = command(
        sub, "export", help="write a run's records as JSONL (.gz: compressed)", run=export_eval
    )
    ex.add_argument("name", help="the run")
    ex.add_argument("--db", default=DEFAULT_DB, help="the SQLite file of the records")
    ex.add_argument("--out", required=True, help="the file to write, e.g. records.jsonl.gz")
    ex.add_argument(
        "--merge",
        action="store_true",
        help="add the run's records to those already in --out (one run's: same settings), "
        "e.g. a method run later into a study's committed file",
    )
    im = command(
        sub,
        "import",
        help="load a records file (eval export) into a database as a run, to resume or report",
        description="The run is claimed with the settings its records share (split, seed, "
        "answer budget, measures, design, backend and model), as `eval run` claims it, so the "
        "same `eval run` command resumes it on a machine that has only the committed file.",
        run=import_eval,
    )
    im.add_argument("records", help="a records file (JSONL, .gz too)")
    im.add_argument("--db", default=DEFAULT_DB, help="the SQLite file to load them into")
    im.add_argument("--name", required=True, help="the run's name in that database")
    im.add_argument(
        "--design",
        choices=("crossed", "rotated"),
        default=None,
        help="the run's design, where the records cannot tell (default: read from them)",
    )
    ls = command(
        sub, "list", help="the runs in a database: settings, cells, samples, dates", run=list_eval
    )
    ls.add_argument("--db", default=DEFAULT_DB, help="the SQLite file of the records")
    ls.add_argument("--json", action="store_true", help="one JSON object per run")
    fl = command(
        sub,
        "floors",
        help="per-family length-0 floors under none, and the headline families they select",
        description="The headline families are those whose sampled length-0 `both` under "
        "`none` is at least --min, measured on a train-split run (decided before any test "
        "number is seen).",
        run=floors_eval,
    )
    fl.add_argument("name", help="a run with method none at length 0 and --samples")
    fl.add_argument("--db", default=DEFAULT_DB, help="the SQLite file of the records")
    fl.add_argument("--min", type=float, default=0.3, help="the floor")
    fl.add_argument("--write", default=None, metavar="FILE", help="write the selection as JSON")
    return sub


def run_eval(args: argparse.Namespace) -> int:
    from salience.evals import split
    from salience.evals.backends import RemoteBackend
    from salience.evals.grid import Grid
    from salience.evals.runner import RunInterrupted, run
    from salience.evals.store import RunConflict, Store

    try:
        bank_split = _bank_split(args)
        grid = from_options(Grid, args, **bank_split)
        if not args.dataset and not args.bank:
            split.items(grid.split, 1, grid.seed, grid.families)  # type: ignore[arg-type]
    except ValueError as error:
        raise CliError(f"bad grid: {error}", 2) from None
    if args.bank:
        from salience.evals.bank import load as load_bank

        try:
            load_bank(args.bank).as_items(grid.items)
        except ValueError as error:
            raise CliError(str(error), 2) from None
    if args.base_url and not args.remote_model:
        raise CliError("--base-url needs --remote-model (the server's model name)", 2)
    if not args.base_url:
        check_model_path(args.model)
    imported = None
    if args.dataset:
        from salience.evals.ifeval import load

        if not Path(args.dataset).is_file():
            raise CliError(
                f"--dataset {args.dataset}: no such file (an IFEval-format JSONL file)", 2
            )
        try:
            imported = load(args.dataset)
        except (ValueError, KeyError, UnicodeDecodeError) as error:
            raise CliError(
                f"--dataset {args.dataset}: not an IFEval-format file ({error})", 2
            ) from None
        if not imported.rows:
            raise CliError(f"--dataset {args.dataset}: no row can be verified", 2)
    writable_file(args.db, "--db")
    if args.jsonl:
        writable_file(args.jsonl, "--jsonl")
    if args.export_every and not args.jsonl:
        raise CliError("--export-every needs --jsonl FILE (the file it rewrites)", 2)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    backend: Backend
    if args.base_url:
        urls = [u.strip() for u in args.base_url.split(",") if u.strip()]
        backend = RemoteBackend(urls, args.remote_model, args.api_key)
        concurrency = max(1, args.concurrency)
    else:
        if not args.quiet:
            print(f"loading {args.model or 'the embedded model'}…", file=sys.stderr, flush=True)
        backend = local_backend(args)
        concurrency = 1
    if args.bank:
        from salience.evals.bank import load as load_bank

        calibrated = load_bank(args.bank).model
        if calibrated != backend.model:
            raise CliError(
                f"--bank {args.bank} was calibrated on {calibrated}, not {backend.model}: an "
                "item one model follows another may not (calibrate this one: `salience eval "
                "calibrate`)",
                2,
            )
    if args.batch == "auto":
        args.batch = _auto_batch(grid, backend, args.quiet)
    executor = None
    if args.ray is not None:
        executor = _ray_executor(args, backend, concurrency)
    name = args.name or grid.identity(backend.name, backend.model)
    store = Store(args.db)
    bar = None if args.quiet else ProgressBar()
    progress: Any = bar
    if args.jsonl and args.export_every:
        progress = _exporting(store, name, args.jsonl, 60.0 * args.export_every, bar)
    if imported is not None:
        skipped = ", ".join(f"{k}: {v}" for k, v in imported.skipped.most_common()) or "none"
        print(f"dataset: {len(imported.rows)} rows can be verified; skipped rows: {skipped}")
    before = len(store.done(name))
    try:
        stats = run(
            grid, backend, store, name, progress, concurrency, batch=args.batch,
            executor=executor, activity=bar,
        )  # fmt: skip
        if bar is not None:
            bar.close()
        if args.jsonl:
            store.export_jsonl(name, args.jsonl)
    except RunConflict as error:
        raise CliError(f"{error} (pass another --name, or leave --name out)") from None
    except RunInterrupted as stop:
        if bar is not None:
            bar.close()
        if args.jsonl and store.done(name):
            store.export_jsonl(name, args.jsonl)
        held = len(store.done(name))  # what is in the database: exact, whatever Ctrl-C cut
        saved = held - before
        grid_size = f" of {stop.stats.total}" if stop.stats.total else ""
        again = shlex.join(["salience", *sys.argv[1:]]) if sys.argv[1:] else "the same command"
        print(
            f"interrupted: {saved} new sample{'s' if saved != 1 else ''} saved this time; "
            f"{held}{grid_size} in run {name} ({args.db}). Resume with:\n  {again}",
            file=sys.stderr,
        )
        return 130
    finally:
        store.close()
    if executor is not None and executor.replaced:
        print(f"ray: {executor.replaced} actor(s) died and were replaced; their work was redone")
    db = "" if args.db == DEFAULT_DB else f" --db {shlex.quote(args.db)}"
    report = f"salience eval report {name}{db}"
    if args.json:
        import json

        print(json.dumps({"schema_version": 1, "run": name, "db": args.db, "new": stats.done,
                          "resumed": stats.skipped, "total": stats.total,
                          "seconds": round(stats.wall_seconds, 3),
                          "samples_per_minute": round(stats.per_minute, 3),
                          "report": report}))  # fmt: skip
        return 0
    if stats.done:
        cost = f"; runner overhead {stats.overhead:.1%} of {stats.wall_seconds:.1f} s"
    else:
        cost = "; nothing left to run"
    print(f"run {name}: {stats.done} new, {stats.skipped} resumed, {stats.total} in the grid{cost}")
    print(f"report it: {report}")
    return 0


def _exporting(store: Any, name: str, path: str, seconds: float, then: Any) -> Any:
    """A progress callback that rewrites ``path`` with the run's records every ``seconds``
    (after a sample was recorded), then calls ``then``."""
    import time

    last = time.monotonic()
    seen = 0

    def progress(stats: RunStats) -> None:
        nonlocal last, seen
        now = time.monotonic()
        if stats.done > seen and now - last >= seconds:
            seen, last = stats.done, now
            store.export_jsonl(name, path)
        if then is not None:
            then(stats)

    return progress


def _bank_split(args: argparse.Namespace) -> dict[str, Any]:
    """With --bank: the bank's split (the grid's items are the bank's)."""
    if not getattr(args, "bank", None):
        return {}
    from salience.evals.bank import load as load_bank

    return {"split": load_bank(args.bank).split}


def local_backend(args: argparse.Namespace) -> Backend:
    """The local model of ``--model``/``--dtype``/``--device``, or a CliError saying why not."""
    from salience.evals.backends import LocalBackend
    from salience.markup.errors import SalienceError

    try:
        return LocalBackend(args.model, args.dtype, device=args.device)
    except (OSError, ValueError, SalienceError) as error:
        raise CliError(f"cannot load {args.model or 'the embedded model'}: {error}") from None


def _batch(text: str) -> int | str:
    """``auto``, or a whole number ≥ 1."""
    return "auto" if text == "auto" else at_least(1)(text)


def _auto_batch(grid: Any, backend: Backend, quiet: bool) -> int:
    """Rows per pass for this grid: what fits the longest prompt's caches (local model)."""
    from salience.evals.backends import LocalBackend
    from salience.evals.runner import PROMPT_ROOM, capped_lengths
    from salience.model.batch import MAX_ROWS, rows_that_fit

    if not isinstance(backend, LocalBackend):
        return MAX_ROWS
    tokens = max(capped_lengths(grid, backend)) + PROMPT_ROOM + grid.max_new_tokens
    rows = rows_that_fit(backend.lm, tokens)
    if rows < MAX_ROWS and not quiet:
        print(f"batch: {rows} rows per pass (prompts up to {tokens} tokens; memory available)",
              file=sys.stderr)  # fmt: skip
    return rows


def _ray_executor(args: argparse.Namespace, backend: Backend, concurrency: int) -> Any:
    """The Ray executor for ``--ray``: each actor builds the driver's backend from its spec,
    with --threads torch threads (default: this machine's cores shared among the actors)."""
    import dataclasses
    import os

    try:
        from salience.evals.distributed import RayExecutor, _import_ray

        _import_ray()
    except ImportError as error:
        raise CliError(str(error), 2) from None
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    spec = dataclasses.replace(backend.spec(), threads=threads)
    in_flight = concurrency if args.base_url else 2
    return RayExecutor(spec, args.workers, args.ray or None, args.batch, in_flight=in_flight)


class ProgressBar:
    """The run's progress on stderr: a bar that moves per sample, the rate in samples per
    minute, and between results what the model is doing (prefill, decoding step). On a
    terminal it redraws one line; elsewhere (a log file) it writes a line per sample."""

    WIDTH = 30

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.phase = ""
        self.shown = 0

    def __call__(self, stats: RunStats) -> None:
        if stats.phase != self.phase:
            self.phase = stats.phase
            if stats.phase == "running" and stats.skipped:
                self._line(f"resuming: {stats.skipped} of {stats.total} samples already "
                           "recorded, skipped", final=True)  # fmt: skip
            elif stats.phase == "references":
                self._line("building the margin's references (the task answered alone)…")
        if stats.phase != "running":
            if stats.activity and self.tty:
                self._line(f"{stats.phase}: {stats.activity}")
            return
        finished = stats.done + stats.skipped
        if not self.tty and stats.done == self.shown:
            return  # a log gets one line per sample
        self.shown = stats.done
        rate = stats.per_minute
        eta = f"ETA {(stats.total - finished) / rate:5.1f} min" if rate else "ETA —"
        filled = int(self.WIDTH * finished / max(stats.total, 1))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        now = f" | {stats.activity}" if stats.activity else ""
        self._line(f"[{bar}] {finished}/{stats.total} ({stats.skipped} resumed) "
                   f"{rate:.1f} samples/min {eta}{now}")  # fmt: skip

    def _line(self, text: str, final: bool = False) -> None:
        if self.tty:
            end = "\n" if final else ""
            print(f"\r{text}\x1b[K", end=end, file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)
