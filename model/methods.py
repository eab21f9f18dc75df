"""The steering methods, each one value of ``method=``; what each does to a prompt.

none     the clean prompt, nothing else
plain    alias of none
xml      text rendering (markup.render): hard spans in <rule>…</rule>, high in <important>
caps     text rendering: IMPORTANT: before each hard span
echo     text rendering: the hard rules restated after the prompt
system   text rendering: the hard rules moved into the system message
uniform  β on every layer and head (InstABoost-like): hard β, high β/2; queries after the
         last marked token and every generated token are steered
pasta    β on the heads that PASTA's profiling picked (an ImportanceBias file)
learned  the fitted ImportanceBias file (per level, layer and head)
distance the fitted ImportanceBias file whose β is scaled by g(distance from the rule) (issue 15)
spa      Selective Prompt Anchoring: logits + ω·(logits − logits with the marked text masked)

A parameter can ride in the name: ``uniform@0.75`` is uniform with β = 0.75, ``spa@2`` is spa
with ω = 2 (so an eval grid can compare strengths side by side). A text rendering takes ``@raw``:
``xml@raw`` renders without defusing the rule markers typed in unmarked or untrusted text (an
ablation, to measure what the defusing buys against injected rules; EVAL.md "Injection"). A bias
file rides in the name of a method that reads one: ``learned@fits/step20.json`` (candidates
side by side in one grid; the eval's sample keys hash the file's values, not its path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markup.errors import SalienceError
from markup.rendering import TEXT_METHODS

from .bias import ImportanceBias, level_strengths

BIAS_METHODS = ("uniform", "pasta", "learned", "distance")
METHODS = ("none", *TEXT_METHODS, *BIAS_METHODS, "spa")
DATA = Path(__file__).resolve().parent / "data"
DEFAULT_FILES = {
    "pasta": DATA / "pasta-smollm2-135m.json",
    "learned": DATA / "learned-smollm2-135m.json",
    "distance": DATA / "distance-smollm2-135m.json",
}
# chosen on the train split (EVAL.md): the largest margin gain whose target NLL rises by at most
# 0.05 nats per token, of 0.25, 0.5, 1, 1.5, 2 (`salience model score`)
DEFAULT_UNIFORM_BETA = 1.0
DEFAULT_SPA_OMEGA = 1.0


class MethodError(SalienceError, ValueError):
    code = "bad-method"


_AT_ONLY = (
    "only uniform@β, spa@ω, a rendering's @raw (xml@raw) and a bias file (learned@FILE.json) go "
    "in the name, not {name!r}"
)


@dataclass
class Method:
    name: str
    render: str | None = None  # a markup.render style
    bias: ImportanceBias | None = None
    gate: str = "after"  # which prompt queries a bias steers: "after" the last marked token, "all"
    spa_omega: float | None = None
    layers: set[int] | None = None  # layers a bias runs on (default: those with non-zero β)
    options: dict[str, Any] = field(default_factory=dict)
    safe: bool = True  # a rendering defuses typed rule markers (False: ``xml@raw`` and kin)


def check_name(name: str) -> None:
    """Raise ``MethodError`` (a ValueError too) unless ``name`` names a method, ``uniform@β`` and
    ``spa@ω`` and ``xml@raw`` included: the check ``resolve`` makes, without a model."""
    base, at, value = name.partition("@")
    base = "none" if base == "plain" else base
    if base not in METHODS:
        raise MethodError(f"unknown method {name!r} (use {', '.join(METHODS)})")
    if at:
        if base in TEXT_METHODS and value == "raw":
            return
        if base in DEFAULT_FILES and value.endswith(".json"):
            return
        if base not in ("uniform", "spa"):
            raise MethodError(_AT_ONLY.format(name=name))
        try:
            float(value)
        except ValueError:
            raise MethodError(f"{name!r}: {value!r} is not a number") from None


def resolve(name: str, n_layers: int, n_heads: int, **options: Any) -> Method:
    """The method ``name`` for a model of this shape. Options: ``beta`` (uniform), ``bias_path``
    (pasta, learned), ``gate`` ("after" or "all"), ``omega`` (spa)."""
    name = "none" if name == "plain" else name
    if "@" in name:
        base, _, value = name.partition("@")
        if base in TEXT_METHODS and value == "raw":
            return Method(name, render=base, safe=False)
        if base in DEFAULT_FILES and value.endswith(".json"):
            method = resolve(base, n_layers, n_heads, **{**options, "bias_path": value})
            method.name = name
            return method
        key = {"uniform": "beta", "spa": "omega"}.get(base)
        if key is None:
            raise MethodError(_AT_ONLY.format(name=name))
        try:
            options = {**options, key: float(value)}
        except ValueError:
            raise MethodError(f"{name!r}: {value!r} is not a number") from None
        method = resolve(base, n_layers, n_heads, **options)
        method.name = name
        return method
    gate = str(options.get("gate", "after"))
    if gate not in ("after", "all"):
        raise MethodError(f"gate must be 'after' or 'all', not {gate!r}")
    if name == "none":
        return Method(name)
    if name in TEXT_METHODS:
        return Method(name, render=name)
    if name == "uniform":
        beta = float(options.get("beta", DEFAULT_UNIFORM_BETA))
        bias = ImportanceBias.uniform(
            n_layers,
            n_heads,
            level_strengths(beta),
            {"method": "uniform", "beta": beta},
        )
        return Method(name, bias=bias, gate=gate, options={"beta": beta})
    if name in DEFAULT_FILES:
        path = Path(options.get("bias_path") or DEFAULT_FILES[name])
        if not path.is_file():
            how = (
                "profile heads with `salience model profile-pasta`"
                if name == "pasta"
                else "fit one with `salience model fit` (--distance for a distance scale)"
            )
            raise MethodError(f"no {name} bias file at {path}: {how}, or pass bias_path")
        bias = ImportanceBias.load(path)
        if (bias.n_layers, bias.n_heads) != (n_layers, n_heads):
            raise MethodError(
                f"{path} is for {bias.n_layers} layers × {bias.n_heads} heads; "
                f"the model has {n_layers} × {n_heads}"
            )
        return Method(name, bias=bias, gate=gate, options={"bias_path": str(path)})
    if name == "spa":
        return Method(name, spa_omega=float(options.get("omega", DEFAULT_SPA_OMEGA)))
    raise MethodError(f"unknown method {name!r}; use one of: {', '.join(METHODS)}")
