"""The method registry: every way salience conveys importance to a model, one entry each.

A method is one value of ``method=`` (the API, the CLI, the proxy, the eval). Four kinds:

- ``none``: the clean prompt (``plain`` is its alias);
- text methods (``xml``, ``caps``, ``echo``, ``system``): the prompt rewritten by a rendering of
  ``markup.rendering.TEXT_METHODS``, for any model;
- bias methods (``uniform``, ``pasta``, ``learned``, ``distance``, ``share``): an additive
  attention bias β[level, layer, head] on the marked keys of a model salience runs
  (``model.steer``);
- contrastive methods (``spa``): a second pass with the marked keys masked out, combined into
  the logits (``Contrast``).

``REGISTRY`` holds one ``Entry`` per name: its kind, a line of help, what may ride in its name
after ``@`` and how it builds a ``Method``. Everything that lists or checks methods reads it (the
API's schemas and routes, the CLI's help, the page's method list, the eval's fingerprints), and
the code that runs a method reads what the ``Method`` carries, never its name. Adding a method is
adding an entry here (a text method: an entry of ``markup.rendering.TEXT_METHODS``).

A parameter can ride in the name: ``uniform@0.75`` is uniform with β = 0.75, ``spa@2`` is spa
with ω = 2 (an eval grid compares strengths side by side). A text method takes ``@raw``:
``xml@raw`` renders without defusing the rule markers typed in unmarked or untrusted text (an
ablation, to measure what the defusing buys against injected rules; EVAL.md "Injection"). A bias
file rides in the name of a method that reads one: ``learned@fits/step20.json`` (candidates side
by side in one grid; the eval's sample keys hash the file's values, not its path).

Every number in a name is finite and in its method's range (``Entry.bounds``). A name that came
over the network (``resolve(..., catalogue=…)``) names no file: what follows ``@`` is a number,
or the name of a bias file in the operator's catalogue (``learned@mine``, where the server was
started with ``SALIENCE_BIAS_FILES='{"mine": "/srv/bias/mine.json"}'``); ``@raw`` and paths are
refused, whether or not such a file exists, so the answer tells a client nothing about the disk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from salience.markup import Level
from salience.markup.errors import SalienceError
from salience.markup.rendering import TEXT_METHODS, TextMethod

if TYPE_CHECKING:  # the registry is read without torch (the CLI's help, the API's schemas)
    import torch

    from .bias import ImportanceBias
    from .prompt import Prompt
    from .steer import Steering

DATA = Path(__file__).resolve().parent / "data"
# chosen on the train split (EVAL.md): the largest margin gain whose target NLL rises by at most
# 0.05 nats per token, of 0.25, 0.5, 1, 1.5, 2 (`salience model score`)
DEFAULT_UNIFORM_BETA = 1.0
DEFAULT_SPA_OMEGA = 1.0
# the attention share `share` holds the marked keys to: what uniform's β = 1 gives a rule of the
# train split's median length (9 tokens) in a prompt of its median length at 2,048 distractor
# tokens (2,100 keys): 9e / (9e + 2,091) = 0.0116 — so `share` steers a 2k prompt about as
# uniform does and a short one not at all (the results page: `share`)
DEFAULT_SHARE = 0.0116
MASKED = -1e4  # β that removes a level's keys from attention (a contrastive method's second pass)

Kind = Literal["none", "text", "bias", "contrastive"]


class MethodError(SalienceError, ValueError):
    code = "bad-method"
    title = "Unknown method"


CATALOGUE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
"""The form of a name in the operator's catalogue of bias files (``SALIENCE_BIAS_FILES``)."""


@dataclass(frozen=True)
class Contrast:
    """A contrastive method's behaviour: a second pass over the same tokens with the marked
    (hard and high) keys masked out of attention, and each step's logits l + ω·(l − l_masked)
    (Selective Prompt Anchoring, Tian & Zhang 2024). A prompt with nothing marked needs no
    second pass (it would equal the first)."""

    omega: float

    def applies(self, prompt: Prompt) -> bool:
        return bool(prompt.marked().any())

    def steering(self, prompt: Prompt, n_layers: int, n_heads: int, device: Any) -> Steering:
        """The second pass's steering: the marked keys masked on every layer and head."""
        from .bias import ImportanceBias
        from .steer import Steering

        masked = {Level.HARD: MASKED, Level.HIGH: MASKED}
        bias = ImportanceBias.uniform(n_layers, n_heads, masked).to(device)
        return Steering(bias, prompt.level_one_hot())

    def combine(self, logits: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        return logits + self.omega * (logits - masked)


@dataclass
class Method:
    """A resolved method: what running it takes. ``text`` rewrites the prompt, ``bias`` steers
    attention (on the queries ``gate`` picks: "after" the last marked token, or "all"),
    ``contrast`` adds a masked second pass."""

    name: str
    text: TextMethod | None = None
    bias: ImportanceBias | None = None
    gate: str = "after"
    contrast: Contrast | None = None
    layers: set[int] | None = None  # layers a bias runs on (default: those with non-zero β)
    options: dict[str, Any] = field(default_factory=dict)
    safe: bool = True  # a rendering defuses typed rule markers (False: ``xml@raw`` and kin)

    @property
    def kind(self) -> Kind:
        if self.text is not None:
            return "text"
        if self.bias is not None:
            return "bias"
        return "contrastive" if self.contrast is not None else "none"

    def signature(self) -> list[Any]:
        """What the method does beyond its name, as plain values (the eval hashes them into its
        sample keys, so a changed value never reuses a stored sample): a bias's gate and values,
        the layers it is limited to, a contrast's ω. Empty for none and the text methods."""
        parts: list[Any] = []
        if self.bias is not None:
            parts += [self.gate, *self.bias.signature()]
        if self.layers is not None:
            parts.append(sorted(self.layers))
        if self.contrast is not None:
            parts.append(self.contrast.omega)
        return parts


Build = Callable[[str, int, int, dict[str, Any]], Method]


@dataclass(frozen=True)
class Entry:
    """One method of the registry. ``at`` says what may follow ``@`` in its name: "raw" (a
    rendering without defusing), "FILE.json" (another bias file), or the option a number sets
    ("beta", "omega")."""

    name: str
    kind: Kind
    help: str
    build: Build
    at: str | None = None
    default_file: Path | None = None
    # the range of the number that rides in the name, and whether its ends are allowed
    bounds: tuple[float, float] | None = None
    open_bounds: bool = False

    @property
    def at_form(self) -> str | None:
        """How the name carries a parameter, for help texts: "uniform@β", "xml@raw"…"""
        if self.at is None:
            return None
        symbols = {"beta": "β", "omega": "ω", "share": "s", "raw": "raw", "FILE.json": "FILE.json"}
        return f"{self.name}@{symbols[self.at]}"

    def options_from(
        self, name: str, value: str, catalogue: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The options ``value`` (what follows ``@``) stands for; MethodError if it may not.
        With a ``catalogue`` (a name from the network) a file method takes only a catalogue
        name, and nothing takes ``raw``."""
        if self.at in ("beta", "omega", "share"):
            return {self.at: self.number(name, value)}
        if catalogue is not None:
            if self.at == "FILE.json":
                if value in catalogue:
                    return {"bias_path": catalogue[value], "bias_name": value}
                offered = ", ".join(sorted(catalogue)) or "none (SALIENCE_BIAS_FILES is empty)"
                raise MethodError(
                    f"{name!r}: over HTTP a bias file is chosen by its name in the server's "
                    f"catalogue, never by a path; the catalogue holds: {offered}"
                )
            raise MethodError(
                f"{name!r}: over HTTP a method is a name, optionally with a number "
                f"({', '.join(f for e in REGISTRY.values() if e.bounds and (f := e.at_form))}) "
                "or a bias file's catalogue name"
            )
        if self.at == "raw" and value == "raw":
            return {"safe": False}
        if self.at == "FILE.json" and value.lower().endswith(".json"):
            return {"bias_path": value}
        forms = ", ".join(f for e in REGISTRY.values() if (f := e.at_form))
        raise MethodError(f"only {forms} carry a parameter in the name, not {name!r}")

    def number(self, name: str, value: str | float) -> float:
        """``value`` as this method's number, finite and within ``bounds``; MethodError if not."""
        try:
            number = float(value)
        except ValueError:
            raise MethodError(f"{name!r}: {value!r} is not a number") from None
        assert self.bounds is not None, f"{self.name} takes a number but declares no range"
        low, high = self.bounds
        inside = low < number < high if self.open_bounds else low <= number <= high
        if not math.isfinite(number) or not inside:
            ends = f"({low:g}, {high:g})" if self.open_bounds else f"[{low:g}, {high:g}]"
            raise MethodError(f"{name!r}: {self.at} must be a finite number in {ends}")
        return number


def _none(name: str, n_layers: int, n_heads: int, options: dict[str, Any]) -> Method:
    return Method(name)


def _text(name: str, n_layers: int, n_heads: int, options: dict[str, Any]) -> Method:
    base = name.partition("@")[0]
    safe = bool(options.get("safe", True))
    return Method(name, text=TEXT_METHODS[base], safe=safe)


def _gate(options: dict[str, Any]) -> str:
    gate = str(options.get("gate", "after"))
    if gate not in ("after", "all"):
        raise MethodError(f"gate must be 'after' or 'all', not {gate!r}")
    return gate


def _uniform(name: str, n_layers: int, n_heads: int, options: dict[str, Any]) -> Method:
    from .bias import ImportanceBias, level_strengths

    beta = REGISTRY["uniform"].number(name, options.get("beta", DEFAULT_UNIFORM_BETA))
    meta = {"method": "uniform", "beta": beta}
    bias = ImportanceBias.uniform(n_layers, n_heads, level_strengths(beta), meta)
    return Method(name, bias=bias, gate=_gate(options), options={"beta": beta})


def _share(name: str, n_layers: int, n_heads: int, options: dict[str, Any]) -> Method:
    from .bias import ImportanceBias

    share = REGISTRY["share"].number(name, options.get("share", DEFAULT_SHARE))
    meta = {"method": "share", "share": share}
    bias = ImportanceBias.share(n_layers, n_heads, share, meta)
    return Method(name, bias=bias, gate=_gate(options), options={"share": share})


def _from_file(how: str) -> Build:
    """A bias method that reads an ImportanceBias file (``bias_path``, or the shipped one);
    ``how`` says how to make one where it is missing."""

    def build(name: str, n_layers: int, n_heads: int, options: dict[str, Any]) -> Method:
        from .bias import ImportanceBias

        base = name.partition("@")[0]
        path = Path(options.get("bias_path") or REGISTRY[base].default_file or "")
        # a file from the operator's catalogue is named by its catalogue name, never its path
        shown = (
            f"the server's bias file {options['bias_name']!r}" if "bias_name" in options else path
        )
        if not path.is_file():
            raise MethodError(f"no {base} bias file at {shown}: {how}, or pass bias_path")
        try:
            bias = ImportanceBias.load(path)
        except Exception as error:  # any file that is not one: the caller's error, not a bug
            raise MethodError(f"{shown} is not a bias file ({type(error).__name__})") from None
        if (bias.n_layers, bias.n_heads) != (n_layers, n_heads):
            raise MethodError(
                f"{shown} is for {bias.n_layers} layers × {bias.n_heads} heads; "
                f"the model has {n_layers} × {n_heads}"
            )
        gate = _gate(options)
        return Method(name, bias=bias, gate=gate, options={"bias_path": str(path)})

    return build


def _spa(name: str, n_layers: int, n_heads: int, options: dict[str, Any]) -> Method:
    omega = REGISTRY["spa"].number(name, options.get("omega", DEFAULT_SPA_OMEGA))
    return Method(name, contrast=Contrast(omega))


_FIT = "fit one with `salience model fit` (--distance for a distance scale)"
REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry("none", "none", "the clean prompt, nothing else", _none),
        *(Entry(m.name, "text", m.help, _text, at="raw") for m in TEXT_METHODS.values()),
        Entry(
            "uniform",
            "bias",
            "β on every layer and head (InstABoost-like): hard β, high β/2; the queries after "
            "the last marked token and every generated token are steered",
            _uniform,
            at="beta",
            bounds=(-10.0, 10.0),
        ),
        Entry(
            "pasta",
            "bias",
            "β on the heads PASTA's profiling picked",
            _from_file("profile heads with `salience model profile-pasta`"),
            at="FILE.json",
            default_file=DATA / "pasta-smollm2-135m.json",
        ),
        Entry(
            "learned",
            "bias",
            "the fitted β per level, layer and head",
            _from_file(_FIT),
            at="FILE.json",
            default_file=DATA / "learned-smollm2-135m.json",
        ),
        Entry(
            "distance",
            "bias",
            "the fitted β scaled by g(distance from the query to the rule)",
            _from_file(_FIT),
            at="FILE.json",
            default_file=DATA / "distance-smollm2-135m.json",
        ),
        Entry(
            "share",
            "bias",
            "β that holds the marked keys to a share s of attention whatever the length: hard "
            "max(0, logit(s) + log(unmarked/marked keys seen)), high half",
            _share,
            at="share",
            bounds=(0.0, 1.0),
            open_bounds=True,
        ),
        Entry(
            "spa",
            "contrastive",
            "Selective Prompt Anchoring: logits + ω·(logits − logits with the marked text masked)",
            _spa,
            at="omega",
            bounds=(0.0, 10.0),
        ),
    )
}
METHODS: tuple[str, ...] = tuple(REGISTRY)
ALIASES = {"plain": "none"}


def entry(name: str) -> Entry:
    """The registry's entry for ``name`` (``uniform@0.5`` → uniform's); MethodError if none."""
    base = name.partition("@")[0].strip().lower()
    found = REGISTRY.get(ALIASES.get(base, base))
    if found is None:
        raise MethodError(f"unknown method {name!r} (use {', '.join(METHODS)})")
    return found


def default_file(name: str) -> Path:
    """The bias file a method reads unless given another (pasta, learned, distance)."""
    found = entry(name).default_file
    if found is None:
        raise MethodError(f"{name!r} reads no bias file")
    return found


def of_kind(*kinds: Kind) -> tuple[str, ...]:
    """The registry's names of these kinds, in its order."""
    return tuple(e.name for e in REGISTRY.values() if e.kind in kinds)


def help_text() -> str:
    """One line for a CLI's help: the names, then what may ride in them."""
    forms = [f for e in REGISTRY.values() if (f := e.at_form)]
    return f"{', '.join(METHODS)}; with a parameter: {', '.join(forms)}"


def normal_name(name: str) -> str:
    """``name`` with its method part in the registry's spelling (case and space ignored; an
    alias resolves to its method) and what follows ``@`` as written: a file keeps its case."""
    found = entry(name)
    _, at, value = name.strip().partition("@")
    return f"{found.name}@{value}" if at else found.name


def check_name(name: str, catalogue: Mapping[str, str] | None = None) -> str:
    """``name`` in its normal spelling, or ``MethodError`` (a ValueError too) unless it names a
    method with what may ride in it (``catalogue``: as a network client may name it): the
    check ``resolve`` makes, without a model."""
    name = normal_name(name)
    _, at, value = name.partition("@")
    if at:
        entry(name).options_from(name, value, catalogue)
    return name


def resolve(
    name: str,
    n_layers: int,
    n_heads: int,
    *,
    catalogue: Mapping[str, str] | None = None,
    **options: Any,
) -> Method:
    """The method ``name`` for a model of this shape. Options: ``beta`` (uniform), ``bias_path``
    (pasta, learned, distance), ``share`` (share), ``gate`` ("after" or "all"), ``omega``
    (spa). ``catalogue``: the name came from a network client, who may name a bias file only
    by its name in this catalogue (name → path), and no path at all."""
    name = normal_name(name)
    found = entry(name)
    _gate(options)
    _, at, value = name.partition("@")
    if at:
        options = {**options, **found.options_from(name, value, catalogue)}
    return found.build(name, n_layers, n_heads, options)
