"""Import an IFEval-format dataset (JSONL rows with ``prompt``, ``instruction_id_list`` and
``kwargs``) and verify responses as IFEval defines each instruction (``evals.instructions``).

All 25 of IFEval's instruction ids are checked, strict and loose. A row is skipped (and counted,
with the reason) only when it names an id outside those 25 or gives kwargs that do not fit its
id: partial verification would overstate compliance.

A row runs through the evaluation's whole grid (``items``): its rule sentences are taken out of
the prompt and placed as salience's own rules are (marked ``<rule>``, before or after the
distractor, or in the system message), and what is left of the prompt is the task. The rule
sentences are the row's optional ``rules`` field (substrings of ``prompt``, or ``[start, end]``
character spans) or, without one, what the rule detector (``markup._rules``) finds in the
prompt. The evaluation's author wrote the file, so its rules are trusted as the evaluation's
own are; nothing about the proxy's trust of user messages changes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from .families import Family, Params
from .instructions import Instruction, UnknownInstruction, UnsupportedInstruction, instruction
from .split import Item
from .tasks import Task


@dataclass(frozen=True)
class Row:
    key: str
    prompt: str
    instruction_ids: tuple[str, ...]
    checks: tuple[Instruction, ...]  # one per instruction id, in order
    rules: tuple[tuple[int, int], ...] = ()  # the row's own rule spans in prompt, if it gave any


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
        prompt = str(data["prompt"])
        try:
            rules = _rule_spans(prompt, data.get("rules"))
        except ValueError as error:
            out.skipped[f"(bad rules: {error})"] += 1
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
            out.rows.append(Row(str(data.get("key", n)), prompt, tuple(ids), tuple(checks), rules))
    return out


def _rule_spans(prompt: str, rules: Any) -> tuple[tuple[int, int], ...]:
    """A row's ``rules``: substrings of the prompt, or ``[start, end]`` spans; sorted, disjoint."""
    if rules is None:
        return ()
    if not isinstance(rules, list):
        raise ValueError("rules must be a list")
    spans: list[tuple[int, int]] = []
    for rule in rules:
        if isinstance(rule, str):
            start = prompt.find(rule)
            if not rule.strip() or start < 0:
                raise ValueError(f"{rule[:40]!r} is not in the prompt")
            spans.append((start, start + len(rule)))
        elif (
            isinstance(rule, list)
            and len(rule) == 2
            and all(isinstance(x, int) and not isinstance(x, bool) for x in rule)
            and 0 <= rule[0] < rule[1] <= len(prompt)
        ):
            spans.append((rule[0], rule[1]))
        else:
            raise ValueError(f"{rule!r} is neither a substring nor a [start, end] span")
    spans.sort()
    if any(a < prev_end for (_, prev_end), (a, _) in pairwise(spans)):
        raise ValueError("rule spans overlap")
    return tuple(spans)


@dataclass(frozen=True)
class DatasetFamily(Family):
    """A row's instructions as a family: strict when every instruction passes strictly, loose
    when every one passes loosely (each in any of its loose forms, as IFEval scores a prompt)."""

    checks: tuple[Instruction, ...] = ()
    rules_source: str = "none"  # "row", "detected" or "none": where the rule sentences came from

    def strict(self, response: str, params: Params) -> bool:
        return all(c.strict(response) for c in self.checks)

    def loose(self, response: str, params: Params) -> bool:
        return all(c.loose(response) for c in self.checks)


def _no_params(rng: Any) -> Params:
    return {}


def _all_strict(checks: tuple[Instruction, ...]) -> Callable[[str, Params], bool]:
    return lambda response, params: all(c.strict(response) for c in checks)


_BLANKS = re.compile(r"[ \t]{2,}")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


_BLANKS_ONLY = re.compile(r"[\s\W]+")


def _outside(text: str, spans: Sequence[tuple[int, int]]) -> str:
    rest, pos = [], 0
    for a, b in spans:
        rest.append(text[pos:a])
        pos = b
    rest.append(text[pos:])
    return "".join(rest)


def items(imported: Imported, n: int | None = None) -> list[Item]:
    """The first ``n`` rows (all with None) as evaluation items: the rule sentences (the row's
    ``rules``, else the detector's) become the item's rule, the rest of the prompt its task."""
    from salience.markup._rules import load_detector

    detector = load_detector()
    out: list[Item] = []
    for row in imported.rows[:n]:
        spans, source = list(row.rules), "row"
        if not spans:
            spans, source = detector.detect(row.prompt), "detected"
            if spans and not _BLANKS_ONLY.sub("", _outside(row.prompt, spans)):
                # every sentence reads as a rule: the least rule-like one is the task
                weakest = min(spans, key=lambda s: detector.score(row.prompt[s[0] : s[1]]))
                spans.remove(weakest)
        if not spans:
            source = "none"
        rule = " ".join(row.prompt[a:b].strip() for a, b in spans)
        rest = _outside(row.prompt, spans)
        task_text = _BLANK_LINES.sub("\n\n", _BLANKS.sub(" ", rest)).strip()
        family = DatasetFamily(
            id="ifeval:" + "+".join(row.instruction_ids),
            phrasings=(rule.replace("{", "{{").replace("}", "}}"),),
            draw=_no_params,
            check=_all_strict(row.checks),
            checks=row.checks,
            rules_source=source,
        )
        task = Task(f"row-{row.key}", "dataset", task_text or row.prompt)
        digest = hashlib.sha256(f"{row.key}|{row.prompt}".encode()).hexdigest()[:12]
        out.append(Item(digest, "dataset", task, family, {}, 0))
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


def summary(records: list[dict[str, Any]]) -> str:
    """Prompt- and instruction-level accuracy per method and distractor length, strict and
    loose, with Wilson intervals (IFEval's four numbers)."""
    from .metrics import wilson
    from .report import ordered_methods

    records = [r for r in records if "instructions_strict" in r]
    head = (
        "| method | length | prompts | prompt strict | prompt loose "
        "| instruction strict | instruction loose |"
    )
    lines = [head, "|---|---:|---:|---|---|---|---|"]
    groups = {(r["method"], int(r.get("length", 0))) for r in records}
    order = {m: i for i, m in enumerate(ordered_methods({m for m, _ in groups}))}
    for method, length in sorted(groups, key=lambda c: (order[c[0]], c[1])):
        rs = [r for r in records if r["method"] == method and int(r.get("length", 0)) == length]
        cells: list[str] = []
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
        lines.append(f"| {method} | {length} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
