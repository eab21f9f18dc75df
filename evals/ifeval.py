"""Import an IFEval-format dataset (JSONL rows with ``prompt``, ``instruction_id_list`` and
``kwargs``) and verify responses as IFEval defines each instruction (``evals.instructions``).

All 25 of IFEval's instruction ids are checked, strict and loose. A row is skipped (and counted,
with the reason) only when it names an id outside those 25 or gives kwargs that do not fit its
id: partial verification would overstate compliance. IFEval's prompts carry their instructions
as plain text, unmarked: bias methods have nothing to steer there, so such a run compares text
methods and backends.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .instructions import Instruction, UnknownInstruction, UnsupportedInstruction, instruction


@dataclass(frozen=True)
class Row:
    key: str
    prompt: str
    instruction_ids: tuple[str, ...]
    checks: tuple[Instruction, ...]  # one per instruction id, in order


@dataclass
class Imported:
    rows: list[Row] = field(default_factory=list)
    # why rows were skipped -> how many: an unknown id, or "<id> (bad kwargs: …)"
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def skipped_rows(self) -> int:
        return sum(self.skipped.values())


def load(path: str | Path) -> Imported:
    out = Imported()
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        data = json.loads(line)
        ids = [str(i) for i in data.get("instruction_id_list") or []]
        kwargs_list = list(data.get("kwargs") or [{}] * len(ids))
        if not ids:
            out.skipped["(no instructions)"] += 1
            continue
        if len(kwargs_list) != len(ids):
            out.skipped["(kwargs and instruction ids differ in number)"] += 1
            continue
        checks: list[Instruction] = []
        for instruction_id, kwargs in zip(ids, kwargs_list, strict=True):
            try:
                checks.append(instruction(instruction_id, kwargs))
            except UnknownInstruction:
                out.skipped[instruction_id] += 1
                break
            except UnsupportedInstruction as error:
                out.skipped[f"{instruction_id} (bad kwargs: {error})"] += 1
                break
        else:
            out.rows.append(
                Row(str(data.get("key", n)), str(data["prompt"]), tuple(ids), tuple(checks))
            )
    return out


def verify(row: Row, response: str) -> dict[str, Any]:
    """Prompt-level and instruction-level results, strict and loose."""
    strict = [check.strict(response) for check in row.checks]
    loose = [check.loose(response) for check in row.checks]
    return {
        "strict": all(strict),
        "loose": all(loose),
        "instructions_strict": strict,
        "instructions_loose": loose,
    }


def run_dataset(
    imported: Imported,
    methods: Sequence[str],
    backend: Any,
    store: Any,
    run_name: str,
    max_new_tokens: int = 256,
    seed: int = 0,
) -> int:
    """Generate and verify every imported row under each method; resumable like ``run``."""
    import hashlib
    import time

    from markup import parse_messages

    done = store.done(run_name)
    new = 0
    for row in imported.rows:
        conversation = parse_messages([{"role": "user", "content": row.prompt}], format="plain")
        for method in methods:
            key = hashlib.sha256(
                f"ifeval|{row.key}|{row.prompt}|{method}|{backend.name}|{backend.model}|{seed}|{max_new_tokens}".encode()
            ).hexdigest()[:24]
            if key in done:
                continue
            start = time.perf_counter()
            response = backend.generate(conversation, method, max_new_tokens, seed)
            result = {"response": response, "seconds": round(time.perf_counter() - start, 4)}
            result.update(verify(row, response))
            factors = {"row": row.key, "instructions": list(row.instruction_ids), "method": method,
                       "backend": backend.name, "model": backend.model, "seed": seed}  # fmt: skip
            store.add(key, run_name, factors, result)
            new += 1
    return new


def summary(records: list[dict[str, Any]]) -> str:
    """Prompt- and instruction-level accuracy per method, strict and loose, Wilson intervals."""
    from .metrics import wilson
    from .report import ordered_methods

    head = (
        "| method | prompts | prompt strict | prompt loose "
        "| instruction strict | instruction loose |"
    )
    lines = [head, "|---|---:|---|---|---|---|"]
    for method in ordered_methods({r["method"] for r in records}):
        rs = [r for r in records if r["method"] == method]
        cells = []
        for k, n in (
            (sum(r["strict"] for r in rs), len(rs)),
            (sum(r["loose"] for r in rs), len(rs)),
        ):
            lo, hi = wilson(k, n)
            cells.append(f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]")
        for field_name in ("instructions_strict", "instructions_loose"):
            flat = [x for r in rs for x in r[field_name]]
            lo, hi = wilson(sum(flat), len(flat))
            cells.append(f"{sum(flat) / max(len(flat), 1):.2f} [{lo:.2f}, {hi:.2f}]")
        lines.append(f"| {method} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
