"""What a sample's record holds: the verdicts on its answers (greedy and sampled), and the
margin's references (the model's own rule-breaking answer and its compliant transform)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from . import prompts, split
from .backends import REFERENCE_CHUNK, Backend, Outcome, References
from .grid import Grid, _Planned
from .ifeval import DatasetFamily
from .store import RecordStore
from .tasks import quality


def row_seed(key: str, index: int) -> int:
    """The seed of sampled row ``index`` of a sample: from its key alone."""
    return int.from_bytes(hashlib.sha256(f"{key}#{index}".encode()).digest()[:4], "big") >> 1


def verdicts(item: split.Item, response: str) -> dict[str, Any]:
    q = quality(item.task, response, item.rule)
    strict = item.family.strict(response, item.params)
    out: dict[str, Any] = {
        "strict": strict,
        "loose": item.family.loose(response, item.params),
        "quality": q.ok,
        "both": strict and q.ok,
        "answered": q.answered,
        "echoed": q.echoed,
        "degenerate": q.degenerate,
    }
    if isinstance(item.family, DatasetFamily):  # IFEval's instruction-level verdicts too
        out["instructions_strict"] = [c.strict(response) for c in item.family.checks]
        out["instructions_loose"] = [c.loose(response) for c in item.family.checks]
    return out


def result_of(grid: Grid, p: _Planned, outcome: Outcome) -> dict[str, Any]:
    """A sample's record: the greedy answer's verdicts, the sampled answers' and their pass
    fractions, the margin."""
    greedy = verdicts(p.item, outcome.greedy)
    del greedy["both"]  # derived from strict and quality where it is read (metrics.value)
    result: dict[str, Any] = {
        "response": outcome.greedy,
        **greedy,
        "seconds": round(outcome.seconds, 4),
    }
    if grid.samples:
        rows = []
        for seed, text in zip(row_seed_list(p.key, grid.samples), outcome.samples, strict=True):
            v = verdicts(p.item, text)
            rows.append({"seed": seed, "response": text, **{m: v[m] for m in SAMPLE_METRICS}})
        result["samples"] = rows
        result["sampled"] = {
            "k": len(rows),
            "temperature": grid.temperature,
            **{m: round(sum(r[m] for r in rows) / len(rows), 6) for m in SAMPLE_METRICS},
        }
    if grid.margin:
        if outcome.margin is None:
            result["margin"] = None
            result["margin_per_token"] = None
        else:
            lp_c, n_c, lp_v, n_v = outcome.margin
            result["margin"] = round(lp_c - lp_v, 4)
            result["margin_per_token"] = round(lp_c / max(n_c, 1) - lp_v / max(n_v, 1), 5)
            result["margin_parts"] = [round(lp_c, 4), n_c, round(lp_v, 4), n_v]
    return result


SAMPLE_METRICS = ("strict", "loose", "quality", "both")


def row_seed_list(key: str, k: int) -> list[int]:
    return [row_seed(key, i) for i in range(k)]


def references(
    grid: Grid, backend: Backend, store: RecordStore, chosen: Sequence[split.Item]
) -> dict[str, References | None]:
    """Each item's margin references, from the store or built now (greedy, method none, the
    task alone): None where the model's own answer already follows the rule, or where the
    family has no compliance transform."""
    out: dict[str, References | None] = {}
    step = REFERENCE_CHUNK
    for at in range(0, len(chosen), step):  # fixed chunks: the same batches on a resumed run
        chunk = chosen[at : at + step]
        stored = {item.id: store.reference(backend.model, item.id, grid.max_new_tokens)
                  for item in chunk}  # fmt: skip
        if all(data is not None for data in stored.values()):
            answers = [str(stored[item.id]["answer"]) for item in chunk]  # type: ignore[index]
        else:
            convs = [prompts.task_alone(item) for item in chunk]
            answers = backend.generate_many(convs, "none", grid.max_new_tokens, grid.seed)
        for item, answer in zip(chunk, answers, strict=True):
            refs = reference_pair(item, answer)
            if stored[item.id] is None:
                data = {"answer": answer, "references": None if refs is None else asdict(refs)}
                store.add_reference(backend.model, item.id, grid.max_new_tokens, data)
            out[item.id] = refs
    return out


def reference_pair(item: split.Item, answer: str) -> References | None:
    """The references from the model's answer to the task alone, if it breaks the rule and the
    family can make it comply."""
    if not answer.strip() or item.family.strict(answer, item.params):
        return None
    compliant = item.family.comply(answer, item.params)
    if compliant is None or compliant == answer or not item.family.strict(compliant, item.params):
        return None
    return References(violating=answer, compliant=compliant)
