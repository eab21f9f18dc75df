"""``salience eval run`` / ``salience eval report``: constraint following as distractors grow.

    salience eval run --items 4 --lengths 0,256 --methods none,uniform    (a small default grid)
    salience eval report RUN

Records go to SQLite (``--db``, default evals.sqlite3), one per sample; rerunning the same
command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_DB = "evals.sqlite3"


def _list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def register(commands: Any) -> None:
    p: argparse.ArgumentParser = commands.add_parser(
        "eval", help="run or report the constraint-following evaluation", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = p.add_subparsers(dest="eval_command", metavar="COMMAND", required=True)
    r = sub.add_parser("run", help="run a grid (resumes a killed run)")
    r.add_argument("--name", default=None, help="run name (default: derived from the grid)")
    r.add_argument("--db", default=DEFAULT_DB)
    r.add_argument("--split", default="test", choices=["test", "train"])
    r.add_argument("--items", type=int, default=4)
    r.add_argument("--kinds", default="prose", help="prose,similar,conflicting,noise")
    r.add_argument("--lengths", default="0,256", help="distractor tokens, e.g. 0,256,512,1024")
    r.add_argument("--positions", default="before", help="system,before,after,both")
    r.add_argument("--methods", default="none,uniform")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument(
        "--design",
        default="crossed",
        choices=["crossed", "rotated"],
        help="crossed: every item gets every (kind, position); rotated: one pair per item, in turn",
    )
    r.add_argument("--threads", type=int, default=None, help="torch threads (local model)")
    r.add_argument("--max-new-tokens", type=int, default=64)
    r.add_argument("--model", default=None, help="local model path (default: embedded)")
    r.add_argument("--base-url", default=None, help="an OpenAI-compatible server instead (…/v1)")
    r.add_argument("--remote-model", default=None, help="the server's model name")
    r.add_argument("--api-key", default=None)
    r.add_argument("--concurrency", type=int, default=4, help="requests in flight (remote only)")
    r.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    r.add_argument(
        "--margin",
        action="store_true",
        help="measure (c): log p(compliant) − log p(violating) of real reference answers "
        "(local model)",
    )
    r.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="K",
        help="measure (b): K sampled answers per prompt and the fraction that pass (default 0; "
        "the study uses 8)",
    )
    r.add_argument(
        "--temperature", type=float, default=0.7, help="of the sampled answers (default 0.7)"
    )
    r.add_argument(
        "--families", default=None, help="only items of these rule families (comma-separated)"
    )
    r.add_argument(
        "--batch",
        type=int,
        default=16,
        help="local model: rows per forward pass (default 16; 1: one prompt at a time)",
    )
    r.add_argument("--dataset", default=None, help="an IFEval-format JSONL file to run instead")
    r.add_argument("--jsonl", default=None, help="also export the records to this JSONL file")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(run=run_eval)
    rep = sub.add_parser("report", help="summarise a run as Markdown")
    rep.add_argument("name")
    rep.add_argument("--db", default=DEFAULT_DB)
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
    rep.set_defaults(run=report_eval)
    fl = sub.add_parser(
        "floors",
        help="per-family length-0 floors under none, and the headline families they select",
        description="The headline families are those whose sampled length-0 `both` under "
        "`none` is at least --min, measured on a train-split run (decided before any test "
        "number is seen).",
    )
    fl.add_argument("name", help="a run with method none at length 0 and --samples")
    fl.add_argument("--db", default=DEFAULT_DB)
    fl.add_argument("--min", type=float, default=0.3, help="the floor (default 0.3)")
    fl.add_argument("--write", default=None, metavar="FILE", help="write the selection as JSON")
    fl.set_defaults(run=floors_eval)


def run_eval(args: argparse.Namespace) -> int:
    import hashlib
    import json

    from evals.runner import Grid, LocalBackend, RemoteBackend, progress_bar, run
    from evals.store import Store

    grid = Grid(
        split=args.split,
        items=args.items,
        kinds=_list(args.kinds),
        lengths=[int(x) for x in _list(args.lengths)],
        positions=_list(args.positions),
        methods=_list(args.methods),
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        margin=args.margin,
        design=args.design,
        samples=args.samples,
        temperature=args.temperature,
        families=_list(args.families) if args.families else None,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    name = (
        args.name
        or "run-"
        + hashlib.sha256(
            json.dumps(
                [
                    grid.split,
                    grid.items,
                    grid.seed,
                    args.model,
                    args.dtype,
                    args.base_url,
                    args.remote_model,
                ]
                + ([args.design] if args.design != "crossed" else [])
                + ([grid.measures()] if grid.measures() else [])
                + ([sorted(grid.families)] if grid.families else [])
            ).encode()
        ).hexdigest()[:8]
    )
    backend: LocalBackend | RemoteBackend
    if args.base_url:
        if not args.remote_model:
            print("salience eval run: --base-url needs --remote-model", file=sys.stderr)
            return 2
        backend = RemoteBackend(args.base_url, args.remote_model, args.api_key)
        concurrency = max(1, args.concurrency)
    else:
        backend = LocalBackend(args.model, args.dtype)
        concurrency = 1
    store = Store(args.db)
    if args.dataset:
        from evals.ifeval import load, run_dataset

        imported = load(args.dataset)
        try:
            new = run_dataset(
                imported, grid.methods, backend, store, name, grid.max_new_tokens, grid.seed
            )
        finally:
            store.close()
        skipped = ", ".join(f"{k}: {v}" for k, v in imported.skipped.most_common()) or "none"
        print(
            f"run {name}: {len(imported.rows)} rows verified ({new} new samples); "
            f"skipped rows: {skipped}"
        )
        return 0
    try:
        stats = run(
            grid,
            backend,
            store,
            name,
            None if args.quiet else progress_bar,
            concurrency,
            batch=args.batch,
        )
        if not args.quiet:
            print(file=sys.stderr)
        if args.jsonl:
            store.export_jsonl(name, args.jsonl)
    finally:
        store.close()
    print(
        f"run {name}: {stats.done} new, {stats.skipped} resumed, {stats.total} in the grid; "
        f"runner overhead {stats.overhead:.1%} of {stats.wall_seconds:.1f} s"
    )
    return 0


def report_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evals.report import complete, markdown, plots
    from evals.store import Store

    store = Store(args.db)
    try:
        records = list(store.records(args.name))
        if not records:
            print(
                f"no records for run {args.name!r}; runs: {', '.join(store.runs()) or 'none'}",
                file=sys.stderr,
            )
            return 1
        if "instructions_strict" in records[0]:
            from evals.ifeval import summary as dataset_summary

            print(f"# Run {args.name} (IFEval-format dataset)\n")
            print(dataset_summary(records), end="")
            return 0
        if args.complete:
            kept = complete(records)
            print(
                f"--complete: {len(kept)} of {len(records)} samples (prompts every method "
                "answered)",
                file=sys.stderr,
            )
            records = kept
        summary = markdown(args.name, records)
        if args.headline:
            import json

            chosen = json.loads(Path(args.headline).read_text(encoding="utf-8"))
            families = set(chosen["families"])
            subset = [r for r in records if r["family"] in families]
            summary += (
                f"\n# Headline families ({', '.join(sorted(families))}; selected on run "
                f"{chosen['run']}, {chosen['rule']})\n\n"
            )
            summary += markdown(f"{args.name} — headline families", subset).split("\n", 1)[1]
        print(summary, end="")
        if args.out:
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            (out / "summary.md").write_text(summary, encoding="utf-8")
            for path in plots(records, out, title=f"run {args.name}"):
                print(f"wrote {path}", file=sys.stderr)
    finally:
        store.close()
    return 0


def floors_eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from evals.report import floors, headline_families
    from evals.store import Store

    store = Store(args.db)
    try:
        records = list(store.records(args.name))
    finally:
        store.close()
    base = [r for r in records if r.get("method") == "none" and r.get("length") == 0]
    if not any(r.get("sampled") for r in base):
        print(
            f"run {args.name!r} has no sampled length-0 `none` records (run it with --methods "
            "none --lengths 0 --samples 8)",
            file=sys.stderr,
        )
        return 1
    print("\n".join(floors(records)).strip())
    chosen = headline_families(records, args.min)
    splits = sorted({r["split"] for r in base})
    rule = f"sampled length-0 `both` under `none` >= {args.min:g} on the {'/'.join(splits)} split"
    print(f"\nheadline families ({rule}): {', '.join(chosen) or 'none'}")
    if args.write:
        data = {
            "rule": rule,
            "run": args.name,
            "split": splits,
            "model": base[0]["model"],
            "prompts": len(base),
            "families": chosen,
        }
        target = Path(args.write)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            print(f"salience eval floors: cannot write {target}: {error.strerror}", file=sys.stderr)
            return 1
        print(f"wrote {target}", file=sys.stderr)
    return 0
