"""Import an IFEval-format dataset (JSONL rows with ``prompt``, ``instruction_id_list`` and
``kwargs``) and verify responses with salience's own families.

Supported instruction ids map onto a family and its parameters; a row with any unsupported id is
skipped and counted (partial verification would overstate compliance). IFEval's prompts carry
their instructions as plain text, unmarked: bias methods have nothing to steer there, so such a
run compares text methods and backends.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .families import BY_ID, Family, Params

Mapper = Callable[[dict[str, Any]], list[tuple[Family, Params]] | None]


def _relation(
    kwargs: dict[str, Any], less: str, least: str, key: str
) -> list[tuple[Family, Params]] | None:
    n = kwargs.get(key)
    relation = kwargs.get("relation")
    if not isinstance(n, int):
        return None
    if relation == "less than":
        return [(BY_ID[less], {"n": n - 1})]
    if relation == "at least" and least:
        return [(BY_ID[least], {"n": n})]
    return None


MAPPERS: dict[str, Mapper] = {
    "change_case:english_lowercase": lambda k: [(BY_ID["lowercase"], {})],
    "change_case:english_capital": lambda k: [(BY_ID["uppercase"], {})],
    "punctuation:no_comma": lambda k: [(BY_ID["no_commas"], {})],
    "length_constraints:number_words": lambda k: _relation(
        k, "max_words", "min_words", "num_words"
    ),
    "length_constraints:number_sentences": lambda k: _relation(
        k, "max_sentences", "", "num_sentences"
    ),
    "keywords:existence": lambda k: (
        [(BY_ID["include_keyword"], {"keyword": w}) for w in k.get("keywords") or []] or None
    ),
    "keywords:forbidden_words": lambda k: (
        [(BY_ID["forbidden_word"], {"word": w}) for w in k.get("forbidden_words") or []] or None
    ),
    "detectable_format:number_bullet_lists": lambda k: (
        [(BY_ID["bullet_count"], {"n": k["num_bullets"]})]
        if isinstance(k.get("num_bullets"), int)
        else None
    ),
    "detectable_format:title": lambda k: [(BY_ID["title"], {})],
    "startend:end_checker": lambda k: (
        [(BY_ID["end_phrase"], {"phrase": k["end_phrase"]})]
        if isinstance(k.get("end_phrase"), str)
        else None
    ),
    "startend:quotation": lambda k: [(BY_ID["quoted"], {})],
    "detectable_content:postscript": lambda k: (
        [(BY_ID["postscript"], {})] if k.get("postscript_marker") in ("P.S.", None) else None
    ),
    "detectable_content:number_placeholders": lambda k: (
        [(BY_ID["placeholders"], {"n": k["num_placeholders"]})]
        if isinstance(k.get("num_placeholders"), int)
        else None
    ),
}


@dataclass(frozen=True)
class Row:
    key: str
    prompt: str
    instruction_ids: tuple[str, ...]
    checks: tuple[tuple[Family, Params], ...]  # one or more per instruction


@dataclass
class Imported:
    rows: list[Row] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # unsupported instruction id -> rows

    @property
    def skipped_rows(self) -> int:
        return sum(self.skipped.values())


def load(path: str | Path) -> Imported:
    out = Imported()
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        data = json.loads(line)
        ids = list(data.get("instruction_id_list") or [])
        kwargs_list = list(data.get("kwargs") or [{}] * len(ids))
        checks: list[tuple[Family, Params]] = []
        unsupported = None
        for instruction, kwargs in zip(ids, kwargs_list, strict=False):
            mapper = MAPPERS.get(instruction)
            mapped = (
                mapper({k: v for k, v in (kwargs or {}).items() if v is not None})
                if mapper
                else None
            )
            if not mapped:
                unsupported = instruction
                break
            checks.extend(mapped)
        if unsupported is not None or not ids:
            out.skipped[unsupported or "(no instructions)"] += 1
            continue
        out.rows.append(
            Row(str(data.get("key", n)), str(data["prompt"]), tuple(ids), tuple(checks))
        )
    return out


def verify(row: Row, response: str) -> dict[str, Any]:
    """Prompt-level and instruction-level results, strict and loose."""
    strict = [family.strict(response, params) for family, params in row.checks]
    loose = [family.loose(response, params) for family, params in row.checks]
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
