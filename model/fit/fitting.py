"""Fitting the learned bias: β per (level, layer, head) by gradient, every model weight frozen.

Objective ``nll``:
loss = mean over a batch of  NLL(target | prompt, β)            (per target token)
       + kl · KL(p_none ‖ p_β) on anchor examples                 (answers that were already
                                                                    right stay as they were)
       + l2 · mean((β − β_start)²)                                (no further than it needs)

Objective ``margin`` (a preference loss with the unsteered model as reference, DPO-style): for an
example with a ``rejected`` answer (the model's own answer without the rule, which breaks it),
−log σ((log p_β(target) − log p_β(rejected)) − (log p_0(target) − log p_0(rejected))), plus
``nll_weight`` · NLL(target); the KL and L2 terms as above. It looks only at where the two
answers differ, which is where the rule is, instead of averaging over every content token.

Prompts without hard or high marks are unchanged by construction: β acts on marked keys only,
so no term is needed for them (tests/model/test_fit.py checks it). The batch at each step is a
pure function of (seed, step), so a run resumed from a checkpoint sees exactly the batches an
uninterrupted run would. Checkpoints hold β, the optimiser's state and the loss curve.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from salience.markup import Conversation

from ..bias import ImportanceBias
from ..local import LocalModel
from ..methods import Method


class FitExample(Protocol):
    @property
    def conversation(self) -> Conversation: ...

    @property
    def target(self) -> str: ...

    @property
    def anchor(self) -> bool: ...

    @property
    def rejected(self) -> str: ...


@dataclass
class FitConfig:
    steps: int = 200
    batch: int = 4
    lr: float = 0.05
    kl: float = 0.5
    l2: float = 1e-3
    seed: int = 0
    gate: str = "after"
    max_beta: float = 6.0  # β is clamped to ±max_beta after each step
    objective: str = "nll"  # or "margin"
    nll_weight: float = 0.2  # margin objective: weight of the target's NLL
    validate_every: int = 25
    checkpoint_every: int = 10
    init_beta: float = 0.0  # start from uniform: hard β = init_beta, high init_beta / 2
    embed: bool = False  # also fit an importance embedding (a vector per level, model's width)
    embed_lr: float = 0.005  # its learning rate (embedding entries are ~0.14, β ~1)
    # also fit g(distance): β · g_level(log(1 + tokens from the nearest marked span)), its
    # values at these knots (empty: no distance scale, the distance-free model)
    distance_knots: tuple[int, ...] = ()
    distance_lr: float = 0.02


@dataclass
class Curve:
    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_nll: list[float] = field(default_factory=list)
    val_margin: list[float] = field(default_factory=list)  # mean margin gain over β = 0
    seconds: float = 0.0


EMBED_SCALE = 0.14  # standard deviation of SmolLM2-135M's embedding entries


def batch_indices(n: int, batch: int, seed: int, step: int) -> list[int]:
    """The examples of one step: a function of (seed, step) alone."""
    rng = random.Random(f"{seed}:{step}")
    return rng.sample(range(n), min(batch, n))


def _all_logprobs(
    lm: LocalModel, example: FitExample, text: str, method: Method | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(every vocabulary log-probability at each position of ``text``, those of its tokens)."""
    logits, target = lm.continuation_logits(example.conversation, text, method)
    full = torch.log_softmax(logits.float(), dim=-1)
    return full, full.gather(1, target.view(-1, 1)).squeeze(1)


def _logprobs(lm: LocalModel, example: FitExample, text: str, method: Method | str) -> torch.Tensor:
    return _all_logprobs(lm, example, text, method)[1]


def reference_margin(lm: LocalModel, example: FitExample) -> float:
    """log p_0(target) − log p_0(rejected) on the unsteered model."""
    with torch.no_grad():
        chosen = _logprobs(lm, example, example.target, "none").sum()
        rejected = _logprobs(lm, example, example.rejected, "none").sum()
    return float(chosen - rejected)


def example_loss(
    lm: LocalModel,
    bias: ImportanceBias,
    example: FitExample,
    config: FitConfig,
    reference: float | None = None,
) -> tuple[torch.Tensor, float, float | None]:
    """(differentiable loss, NLL per target token, margin gain over β = 0 or None)."""
    # every layer takes the folded path, so that β = 0 still has a gradient
    method = Method("learned-fit", bias=bias, gate=config.gate, layers=set(range(lm.n_layers)))
    logprobs, chosen = _all_logprobs(lm, example, example.target, method)
    nll = -chosen.mean()
    gain = None
    if config.objective == "margin":
        loss = config.nll_weight * nll
        if example.rejected:
            ref = reference_margin(lm, example) if reference is None else reference
            rejected = _logprobs(lm, example, example.rejected, method)
            margin = chosen.sum() - rejected.sum()
            loss = loss - torch.nn.functional.logsigmoid(margin - ref)
            gain = float(margin.detach()) - ref
    elif config.objective == "nll":
        loss = nll
    else:
        raise ValueError(f"objective must be 'nll' or 'margin', not {config.objective!r}")
    if example.anchor and config.kl > 0:
        with torch.no_grad():
            ref_logits, _ = lm.continuation_logits(example.conversation, example.target, "none")
            ref_logprobs = torch.log_softmax(ref_logits.float(), dim=-1)
        kl = (ref_logprobs.exp() * (ref_logprobs - logprobs)).sum(-1).mean()
        loss = loss + config.kl * kl
    return loss, float(nll.detach()), gain


def validate(
    lm: LocalModel,
    bias: ImportanceBias,
    examples: Sequence[FitExample],
    config: FitConfig,
    references: dict[int, float] | None = None,
) -> tuple[float, float | None]:
    """(mean NLL per target token, mean margin gain over β = 0 where there is a rejected)."""
    nlls: list[float] = []
    gains: list[float] = []
    margin = FitConfig(**{**asdict(config), "objective": "margin", "kl": 0.0})
    with torch.no_grad():
        for i, e in enumerate(examples):
            ref = None if references is None else references.get(i)
            if e.rejected and ref is None:
                ref = reference_margin(lm, e)
                if references is not None:
                    references[i] = ref
            _, nll, gain = example_loss(lm, bias, e, margin, ref)
            nlls.append(nll)
            if gain is not None:
                gains.append(gain)
    mean_gain = sum(gains) / len(gains) if gains else None
    return sum(nlls) / max(1, len(nlls)), mean_gain


def fit(
    lm: LocalModel,
    examples: Sequence[FitExample],
    config: FitConfig,
    validation: Sequence[FitExample] = (),
    checkpoint: str | Path | None = None,
    meta: dict[str, Any] | None = None,
    progress: Callable[[int, Curve], None] | None = None,
) -> tuple[ImportanceBias, Curve]:
    """Fit β on ``examples``; resumes from ``checkpoint`` when it exists."""
    if not examples:
        raise ValueError("no training examples")
    for p in lm.model.parameters():
        p.requires_grad_(False)
    hidden = int(lm.model.config.hidden_size) if config.embed else None
    knots = tuple(config.distance_knots) or None
    bias = ImportanceBias(lm.n_layers, lm.n_heads, hidden=hidden, distance=knots).to(lm.device)
    if config.init_beta:
        bias.set_strength(config.init_beta)
    origin = bias.beta.detach().clone()  # the L2 term pulls toward where the fit started
    groups: list[dict[str, Any]] = [{"params": [bias.beta], "lr": config.lr}]
    if bias.embed is not None:
        groups.append({"params": [bias.embed], "lr": config.embed_lr})
    if bias.distance is not None:
        groups.append({"params": [bias.distance.values], "lr": config.distance_lr})
    optimiser = torch.optim.Adam(groups)
    curve = Curve()
    start_step = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.is_file():
        state = torch.load(path, weights_only=False, map_location=lm.device)
        # settings added since a checkpoint was written take their defaults
        saved = {
            k: v for k, v in {**asdict(FitConfig()), **state["config"]}.items() if k != "steps"
        }
        wanted = {k: v for k, v in asdict(config).items() if k != "steps"}
        if saved != wanted:  # more steps is fine: the batches of later steps do not change
            raise ValueError(
                f"{path} was written with other settings ({state['config']}); "
                "remove it or use the same settings"
            )
        bias.load_state_dict(state["bias"])
        optimiser.load_state_dict(state["optimiser"])
        curve = Curve(**state["curve"])
        start_step = int(state["step"])

    references: dict[int, float] = {}  # reference margins of training examples, by index
    val_references: dict[int, float] = {}

    def record_validation(step: int) -> None:
        nll, gain = validate(lm, bias, validation, config, val_references)
        curve.val_step.append(step)
        curve.val_nll.append(round(nll, 5))
        curve.val_margin.append(round(gain, 5) if gain is not None else float("nan"))

    began = time.perf_counter() - curve.seconds
    if validation and start_step == 0:
        record_validation(0)  # where the fit starts: what it has to beat
    for step in range(start_step, config.steps):
        optimiser.zero_grad()
        indices = batch_indices(len(examples), config.batch, config.seed, step)
        total, nlls = 0.0, []
        for i in indices:
            example = examples[i]
            if config.objective == "margin" and example.rejected and i not in references:
                references[i] = reference_margin(lm, example)
            loss, nll, _ = example_loss(lm, bias, example, config, references.get(i))
            (loss / len(indices)).backward()  # type: ignore[no-untyped-call]
            total += float(loss.detach()) / len(indices)
            nlls.append(nll)
        if config.l2 > 0:
            reg = config.l2 * (bias.beta - origin).pow(2).mean()
            if bias.embed is not None:  # relative to the embeddings' own scale
                reg = reg + config.l2 * bias.embed.pow(2).mean() / EMBED_SCALE**2
            if bias.distance is not None:  # toward g ≡ 1, and smooth from knot to knot
                values = bias.distance.values
                reg = reg + config.l2 * (values - 1).pow(2).mean()
                reg = reg + config.l2 * values.diff(dim=-1).pow(2).mean()
            reg.backward()  # type: ignore[no-untyped-call]
            total += float(reg.detach())
        optimiser.step()
        with torch.no_grad():
            bias.beta.clamp_(-config.max_beta, config.max_beta)
            if bias.distance is not None:  # g stays a non-negative share of β, at most 4 β
                bias.distance.values.clamp_(0.0, 4.0)
        curve.step.append(step + 1)
        curve.loss.append(round(total, 5))
        curve.nll.append(round(sum(nlls) / len(nlls), 5))
        last = step + 1 == config.steps
        if validation and ((step + 1) % config.validate_every == 0 or last):
            record_validation(step + 1)
        curve.seconds = time.perf_counter() - began
        if path is not None and ((step + 1) % config.checkpoint_every == 0 or last):
            _save_checkpoint(path, bias, optimiser, curve, step + 1, config)
        if progress is not None:
            progress(step + 1, curve)
    bias.meta = {
        **(meta or {}),
        "method": "learned",
        "fit": asdict(config),
        "final_loss": _tail_mean(curve.loss),
        "final_nll": _tail_mean(curve.nll),
        "val_nll": curve.val_nll[-1] if curve.val_nll else None,
        # at step 0: the unsteered model, or uniform's β when the fit started there
        "val_nll_start": curve.val_nll[0] if curve.val_step[:1] == [0] else None,
        "val_margin_gain": curve.val_margin[-1] if curve.val_margin else None,
        "seconds": round(curve.seconds, 1),
        "created": time.strftime("%Y-%m-%d"),
    }
    return bias, curve


def _tail_mean(values: list[float], n: int = 10) -> float | None:
    tail = values[-n:]
    return round(sum(tail) / len(tail), 5) if tail else None


def _save_checkpoint(
    path: Path,
    bias: ImportanceBias,
    optimiser: torch.optim.Optimizer,
    curve: Curve,
    step: int,
    config: FitConfig,
) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "bias": bias.state_dict(),
            "optimiser": optimiser.state_dict(),
            "curve": asdict(curve),
            "step": step,
            "config": asdict(config),
        },
        tmp,
    )
    tmp.replace(path)  # atomic: a kill mid-write leaves the previous checkpoint


__all__ = [
    "Curve",
    "FitConfig",
    "batch_indices",
    "example_loss",
    "fit",
    "validate",
]
