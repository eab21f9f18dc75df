"""``salience eval report | export | floors | list``: what a run recorded, summarised, written
out, and listed (``salience eval run`` is in eval_cmd)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import CliError, writable_file, writable_folder


def _existing_store(path: str) -> Any:
    from salience.evals.store import Store

    if not Path(path).is_file():
        raise CliError(f"--db {path}: no such database (run `salience eval run` first, or pass "
                       "--db)")  # fmt: skip
    return Store(path)


def report_eval(args: argparse.Namespace) -> int:
    from salience.evals.plots import plots
    from salience.evals.report import complete, markdown

    if args.out:
        writable_folder(args.out, "--out")
    if args.records:
        from salience.evals.store import read_jsonl

        if not Path(args.records).is_file():
            raise CliError(f"--records {args.records}: no such file", 2)
        try:
            records = read_jsonl(args.records)
        except (OSError, ValueError) as error:
            raise CliError(f"--records {args.records}: not a records file ({error})") from None
        if not records:
            raise CliError(f"--records {args.records}: no records in it")
        name = args.name or Path(args.records).name.split(".")[0]
        return _report(args, name, records, complete, markdown, plots)
    store = _existing_store(args.db)
    try:
        if args.name is None:
            args.name = _only_run(store, args.db)
        records = list(store.records(args.name))
        if not records:
            raise CliError(
                f"no records for run {args.name!r} in {args.db} (its runs: "
                f"{', '.join(store.runs()) or 'none'}; `salience eval list` shows them)"
            )
    finally:
        store.close()
    return _report(args, args.name, records, complete, markdown, plots)


def _only_run(store: Any, db: str) -> str:
    """The one run in ``db`` (a report needs no name then); else the error that lists them."""
    runs = store.runs()
    if len(runs) == 1:
        return str(runs[0])
    if not runs:
        raise CliError(f"no runs in {db} (`salience eval run` records one)")
    listed = ", ".join(runs[:20]) + (f" … ({len(runs)} in all)" if len(runs) > 20 else "")
    raise CliError(f"{db} holds {len(runs)} runs; name one: {listed}", 2)


def _report(
    args: argparse.Namespace,
    name: str,
    records: list[dict[str, Any]],
    complete: Any,
    markdown: Any,
    plots: Any,
) -> int:
    """The Markdown summary (and plots with --out) of ``records``, from a database run or a
    records file alike."""
    dataset_lines = ""
    if any("instructions_strict" in r for r in records):
        from salience.evals.ifeval import summary as dataset_summary

        dataset_lines = (
            "\n## IFEval scores (prompt- and instruction-level, strict and loose; Wilson 95 %)\n\n"
            + dataset_summary(records)
        )
    if args.complete:
        kept = complete(records)
        print(
            f"--complete: {len(kept)} of {len(records)} samples (prompts every method answered)",
            file=sys.stderr,
        )
        records = kept
    summary = markdown(name, records) + dataset_lines
    if args.headline:
        import json

        if not Path(args.headline).is_file():
            raise CliError(f"--headline {args.headline}: no such file (eval floors --write)", 2)
        chosen = json.loads(Path(args.headline).read_text(encoding="utf-8"))
        families = set(chosen["families"])
        subset = [r for r in records if r["family"] in families]
        summary += (
            f"\n# Headline families ({', '.join(sorted(families))}; selected on run "
            f"{chosen['run']}, {chosen['rule']})\n\n"
        )
        summary += markdown(f"{name} — headline families", subset).split("\n", 1)[1]
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        written = plots(records, out, title=f"run {name}")
        pngs = [p for p in written if p.suffix == ".png"]
        summary += "\n## Plots\n\n" + "".join(
            f"- [{p.stem}]({p.name}) ([svg]({p.with_suffix('.svg').name}))\n" for p in pngs
        )
        (out / "summary.md").write_text(summary, encoding="utf-8")
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        import json

        from salience.evals.report_data import as_data

        print(json.dumps({**as_data(summary), "run": name}, ensure_ascii=False))
        return 0
    print(summary, end="")
    return 0


def export_eval(args: argparse.Namespace) -> int:
    writable_file(args.out, "--out")
    store = _existing_store(args.db)
    try:
        records = list(store.records(args.name))
    finally:
        store.close()
    if not records:
        raise CliError(f"no records for run {args.name!r} in {args.db} (`salience eval list`)")
    if args.merge and Path(args.out).is_file():
        return _merge(args, records)
    from salience.evals.store import write_jsonl

    n = write_jsonl(records, args.out)
    print(f"wrote {n} records to {args.out}", file=sys.stderr)
    return 0


def _merge(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    """The run's records added to those already in --out (a study's committed file, grown one
    method or one length at a time): the two must be one run's (same split, seed, budget,
    measures, design, backend and model); a key in both keeps the file's record."""
    from salience.evals.runner import RecordsError, claimed_from
    from salience.evals.store import read_jsonl, write_jsonl

    try:
        held = read_jsonl(args.out)
    except (ValueError, OSError, EOFError) as error:
        raise CliError(f"--out {args.out}: not a records file ({error})") from None
    keys = {r["key"] for r in held if "key" in r}
    new = [r for r in records if r["key"] not in keys]
    merged = sorted(held + new, key=lambda r: str(r["key"]))
    try:
        claimed_from(merged)
    except RecordsError as error:
        raise CliError(f"cannot merge run {args.name!r} into {args.out}: {error}") from None
    write_jsonl(merged, args.out)
    print(f"merged {len(new)} new records into {args.out} ({len(records) - len(new)} already "
          f"there; {len(merged)} in all)", file=sys.stderr)  # fmt: skip
    return 0


def import_eval(args: argparse.Namespace) -> int:
    from salience.evals.runner import RecordsError, claimed_from, split_record
    from salience.evals.store import RunConflict, Store, read_jsonl

    path = Path(args.records)
    if not path.is_file():
        raise CliError(f"{args.records}: no such records file")
    try:
        records = read_jsonl(path)
    except (ValueError, OSError, EOFError) as error:
        raise CliError(f"{args.records}: not a records file ({error})") from None
    try:
        settings, cells = claimed_from(records, args.design)
    except RecordsError as error:
        raise CliError(f"{args.records}: {error}") from None
    store = Store(args.db)
    try:
        added = store.import_records(args.name, settings, cells, [split_record(r) for r in records])
    except RunConflict as error:
        raise CliError(str(error)) from None
    finally:
        store.close()
    print(
        f"imported {added} records into run {args.name!r} of {args.db} ({len(records) - added} "
        f"already there); report: salience eval report {args.name} --db {args.db}",
        file=sys.stderr,
    )
    return 0


def floors_eval(args: argparse.Namespace) -> int:
    import json

    from salience.evals.report import floors, headline_families

    store = _existing_store(args.db)
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


def list_eval(args: argparse.Namespace) -> int:
    import json
    import time

    store = _existing_store(args.db)
    try:
        runs = store.listing()
    finally:
        store.close()

    def when(t: float | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"

    for r in runs:
        if args.json:
            print(json.dumps({"schema_version": 1, **r}, ensure_ascii=False))
            continue
        settings, cells = r["settings"], r["cells"]
        print(f"{r['run']}  {r['samples']} samples  {when(r['first'])} → {when(r['last'])}")
        if settings is None:
            print("    (recorded before runs kept their settings)")
            continue
        shown = {**cells, **settings}
        print("    " + ", ".join(f"{k}={_short(v)}" for k, v in shown.items() if v is not None))
    if not runs and not args.json:
        print(f"no runs in {args.db}", file=sys.stderr)
    return 0


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
