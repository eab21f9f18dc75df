"""Choosing a method's strength on the train split, without generating: how much each method
moves the model's preference toward the rule-following answer.

For a training example with a ``rejected`` answer (the model's own answer to the task alone,
which breaks the rule) and a ``target`` (an answer that follows the rule and still does the
task), a method's *margin gain* is

    [log p_m(target) − log p_m(rejected)] − [log p_0(target) − log p_0(rejected)]

(summed log-probabilities, p_0 unsteered): positive when the method makes the compliant answer
more likely relative to the violating one. The *NLL change* is the change in the target's mean
per-token NLL: a strength that buys margin by making every answer less likely is one that will
cost quality. Intervals are bootstrapped over items (an item's prompts are not independent).
This is the criterion the fit's validation reports, so uniform's β, PASTA's heads and the fitted
β are all chosen by the same measure, on the same split.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from salience.markup import Conversation

from ..local import LocalModel
from ..methods import Method
from .fitting import FitExample


@dataclass
class MethodScore:
    method: str
    examples: int
    items: int
    margin_gain: float
    margin_ci: tuple[float, float]
    nll_change: float  # target NLL per token, method minus unsteered
    nll_ci: tuple[float, float]


def _sums(
    lm: LocalModel, conversation: Conversation, text: str, method: str | Method
) -> tuple[float, int]:
    with torch.no_grad():
        logprobs = lm.token_logprobs(conversation, text, method)
    return float(logprobs.sum()), int(logprobs.numel())


def _bootstrap(
    values: dict[str, list[float]], seed: int, rounds: int = 2000
) -> tuple[float, float, float]:
    """(mean over examples, 95 % interval) resampling items, each with all of its examples."""
    items = sorted(values)
    flat = [v for item in items for v in values[item]]
    mean = sum(flat) / len(flat)
    rng = random.Random(seed)
    means = []
    for _ in range(rounds):
        drawn = [v for _ in items for v in values[rng.choice(items)]]
        means.append(sum(drawn) / len(drawn))
    means.sort()
    return mean, means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def score_methods(
    lm: LocalModel,
    examples: Sequence[FitExample],
    methods: Sequence[str | Method],
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[MethodScore]:
    """Margin gain and NLL change of each method over the unsteered model, on the ``examples``
    that have a rejected answer (clustered by their ``item`` where they have one)."""
    usable = [e for e in examples if e.rejected]
    if not usable:
        raise ValueError("no example has a rejected answer: nothing to compare against")
    names = [m if isinstance(m, str) else m.name for m in methods]
    gains: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    nlls: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    total = len(usable) * (len(methods) + 1)
    done = 0
    for example in usable:
        conversation, target, rejected = example.conversation, example.target, example.rejected
        item = str(getattr(example, "item", id(example)))  # examples of one item: one cluster
        base_t, n_t = _sums(lm, conversation, target, "none")
        base_r, _ = _sums(lm, conversation, rejected, "none")
        done += 1
        for name, method in zip(names, methods, strict=True):
            chosen, _ = _sums(lm, conversation, target, method)
            other, _ = _sums(lm, conversation, rejected, method)
            gains[name].setdefault(item, []).append((chosen - other) - (base_t - base_r))
            nlls[name].setdefault(item, []).append((base_t - chosen) / n_t)
            done += 1
            if progress is not None:
                progress(done, total)
    out = []
    for name in names:
        gain, glo, ghi = _bootstrap(gains[name], seed)
        nll, nlo, nhi = _bootstrap(nlls[name], seed)
        out.append(
            MethodScore(name, len(usable), len(gains[name]), gain, (glo, ghi), nll, (nlo, nhi))
        )
    return out


def pick(scores: Sequence[MethodScore], max_nll_change: float) -> MethodScore | None:
    """The largest margin gain among methods that raise the target's NLL by at most
    ``max_nll_change`` nats per token; None when none gains margin within that."""
    allowed = [s for s in scores if s.nll_change <= max_nll_change and s.margin_gain > 0]
    return max(allowed, key=lambda s: s.margin_gain, default=None)


def table(scores: Sequence[MethodScore]) -> str:
    rows = [
        "| method | examples (items) | margin gain [95 % CI] | target NLL change [95 % CI] |",
        "|---|---|---|---|",
    ]
    for s in scores:
        rows.append(
            f"| {s.method} | {s.examples} ({s.items}) | {s.margin_gain:+.3f} "
            f"[{s.margin_ci[0]:+.3f}, {s.margin_ci[1]:+.3f}] | {s.nll_change:+.4f} "
            f"[{s.nll_ci[0]:+.4f}, {s.nll_ci[1]:+.4f}] |"
        )
    return "\n".join(rows)
