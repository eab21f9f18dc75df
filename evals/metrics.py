"""Metrics over sample records: rates with Wilson intervals, paired differences against
``none``, and effective length.

Rates: ``strict`` and ``loose`` (the rule followed), ``quality`` (the task still answered, no
rule echo, no looping), ``both`` (strictly followed and good). Paired differences compare a
method with ``none`` on the very same prompts, with a 95 % interval from a bootstrap that
resamples items (the prompts of one item are not independent) and McNemar's exact p-value.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

METRICS = ("strict", "loose", "quality", "both")
Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def value(record: dict[str, Any], metric: str) -> bool:
    if metric == "both":
        return bool(record["strict"]) and bool(record["quality"])
    return bool(record[metric])


@dataclass(frozen=True)
class Cell:
    n: int
    rate: float
    low: float
    high: float


def cell(records: Sequence[dict[str, Any]], metric: str) -> Cell:
    k = sum(value(r, metric) for r in records)
    low, high = wilson(k, len(records))
    return Cell(len(records), k / len(records) if records else 0.0, low, high)


def table(
    records: Iterable[dict[str, Any]], by: Sequence[str]
) -> dict[tuple[Any, ...], dict[str, Cell]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[tuple(r[f] for f in by)].append(r)
    return {key: {m: cell(rs, m) for m in METRICS} for key, rs in sorted(groups.items())}


@dataclass(frozen=True)
class Paired:
    method: str
    n: int
    diff: float  # method rate − the other's (none's) rate on the same prompts
    low: float
    high: float
    p_mcnemar: float


def paired(
    records: Sequence[dict[str, Any]],
    method: str,
    metric: str,
    resamples: int = 2000,
    seed: int = 0,
    against: str = "none",
) -> Paired:
    """``method`` against ``against`` (``none`` unless said) on the prompts both were run on."""
    by_prompt: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        by_prompt[(r["prompt_hash"], r["item"])][r["method"]] = r
    pairs = [(item, value(m[method], metric), value(m[against], metric))
             for (_, item), m in by_prompt.items() if method in m and against in m]  # fmt: skip
    if not pairs:
        return Paired(method, 0, 0.0, 0.0, 0.0, 1.0)
    diffs = [int(a) - int(b) for _, a, b in pairs]
    mean = sum(diffs) / len(diffs)
    by_item: dict[str, list[int]] = defaultdict(list)
    for (item, _, _), d in zip(pairs, diffs, strict=True):
        by_item[item].append(d)
    clusters = [by_item[item] for item in sorted(by_item)]  # by item: not by the file's order
    rng = random.Random(seed)
    boots = []
    for _ in range(resamples):
        sample = [rng.choice(clusters) for _ in clusters]
        flat = [d for c in sample for d in c]
        boots.append(sum(flat) / len(flat))
    boots.sort()
    low, high = boots[int(0.025 * resamples)], boots[int(0.975 * resamples) - 1]
    return Paired(method, len(pairs), mean, low, high, mcnemar(diffs))


def mcnemar(diffs: Sequence[int]) -> float:
    """Exact two-sided McNemar p-value from paired differences (+1, −1, 0)."""
    b = sum(d == 1 for d in diffs)
    c = sum(d == -1 for d in diffs)
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


# ---- continuous and sampled measures --------------------------------------------------------

MEASURES = ("greedy", "sampled", "margin")
MEASURE_TITLES = {
    "greedy": "greedy pass rate (both)",
    "sampled": "sampled pass fraction (both)",
    "margin": "margin log p(compliant) − log p(violating), nats",
}


def measure(record: dict[str, Any], name: str, metric: str = "both") -> float | None:
    """One prompt's value of a measure: ``greedy`` 0/1, ``sampled`` the fraction of its k
    answers that pass, ``margin`` the total margin (``margin_per_token`` per token), or
    ``choice`` σ(margin), the probability of picking the compliant reference of the two.
    None where the record does not hold it."""
    if name == "greedy":
        return float(value(record, metric))
    if name == "sampled":
        sampled = record.get("sampled")
        return None if not sampled else float(sampled[metric])
    if name in ("margin", "margin_per_token"):
        m = record.get(name)
        return None if m is None else float(m)
    if name == "choice":
        m = record.get("margin")
        return None if m is None else 1 / (1 + math.exp(-max(-50.0, min(50.0, float(m)))))
    raise ValueError(f"unknown measure {name!r}")


@dataclass(frozen=True)
class Estimate:
    n: int  # prompts
    items: int  # clusters
    mean: float
    low: float
    high: float


def clustered(pairs: Sequence[tuple[str, float]], resamples: int = 2000, seed: int = 0) -> Estimate:
    """The mean of per-prompt values with a 95 % bootstrap interval that resamples items (the
    prompts of one item are not independent)."""
    if not pairs:
        return Estimate(0, 0, 0.0, 0.0, 0.0)
    # sorted: the figures depend on the pairs alone, not on the order of the records nor on
    # which other methods a file holds (a study's file grows in phases)
    pairs = sorted(pairs)
    by_item: dict[str, list[float]] = defaultdict(list)
    for item, v in pairs:
        by_item[item].append(v)
    clusters = [(sum(vs), len(vs)) for vs in by_item.values()]
    mean = sum(v for _, v in pairs) / len(pairs)
    if len(clusters) == 1:
        return Estimate(len(pairs), 1, mean, mean, mean)
    rng = random.Random(seed)
    boots = []
    for _ in range(resamples):
        total = count = 0.0
        for _ in clusters:
            s, n = clusters[rng.randrange(len(clusters))]
            total += s
            count += n
        boots.append(total / count)
    boots.sort()
    return Estimate(
        len(pairs),
        len(clusters),
        mean,
        boots[int(0.025 * resamples)],
        boots[int(0.975 * resamples) - 1],
    )


def estimates(
    records: Iterable[dict[str, Any]], by: Sequence[str], name: str, metric: str = "both"
) -> dict[tuple[Any, ...], Estimate]:
    """``clustered`` per group of ``by``, over the records that hold the measure."""
    groups: dict[tuple[Any, ...], list[tuple[str, float]]] = defaultdict(list)
    for r in records:
        v = measure(r, name, metric)
        if v is not None:
            groups[tuple(r[f] for f in by)].append((r["item"], v))
    return {key: clustered(pairs) for key, pairs in sorted(groups.items())}


@dataclass(frozen=True)
class PairedEstimate:
    method: str
    n: int
    items: int
    diff: float  # method − none, mean over prompts
    low: float
    high: float
    p: float  # two-sided sign-flip test over items


def paired_measure(
    records: Sequence[dict[str, Any]],
    method: str,
    name: str,
    metric: str = "both",
    resamples: int = 2000,
    seed: int = 0,
    against: str = "none",
) -> PairedEstimate:
    """``method`` against ``against`` (default ``none``) on the prompts both hold the measure
    for: the mean paired difference, an item-clustered bootstrap interval, and a sign-flip
    randomisation p-value (each item's differences flipped together)."""
    by_prompt: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        by_prompt[(r["prompt_hash"], r["item"])][r["method"]] = r
    pairs: list[tuple[str, float]] = []
    for (_, item), m in by_prompt.items():
        if method in m and against in m:
            a, b = measure(m[method], name, metric), measure(m[against], name, metric)
            if a is not None and b is not None:
                pairs.append((item, a - b))
    if not pairs:
        return PairedEstimate(method, 0, 0, 0.0, 0.0, 0.0, 1.0)
    pairs.sort()
    est = clustered(pairs, resamples, seed)
    sums: dict[str, float] = defaultdict(float)
    for item, d in pairs:
        sums[item] += d
    observed = abs(sum(sums.values()))
    rng = random.Random(seed + 1)
    values = [sums[item] for item in sorted(sums)]
    extreme = sum(
        abs(sum(v if rng.random() < 0.5 else -v for v in values)) >= observed - 1e-12
        for _ in range(resamples)
    )
    return PairedEstimate(
        method, est.n, est.items, est.mean, est.low, est.high, (extreme + 1) / (resamples + 1)
    )
