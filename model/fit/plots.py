"""A fit's pictures: the loss curve with its validation points, and β as layer × head heat
maps per level (PNG or SVG by the path's suffix)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..bias import ImportanceBias
from .fitting import Curve


def save_curve(curve: Curve, path: str | Path) -> None:
    """The loss curve as JSON, and as PNG+SVG beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(asdict(curve)) + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    window = max(1, len(curve.loss) // 20)
    ax.plot(curve.step, curve.nll, alpha=0.3, color="C0", label="train NLL (batch)")
    ax.plot(
        curve.step, _smooth(curve.nll, window), color="C0", label=f"train NLL ({window}-step mean)"
    )
    if curve.val_step:
        ax.plot(curve.val_step, curve.val_nll, "o-", color="C1", label="validation NLL")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per target token")
    handles, labels = ax.get_legend_handles_labels()
    gains = [(s, g) for s, g in zip(curve.val_step, curve.val_margin, strict=False) if g == g]
    if gains:  # the margin gain over β = 0 on held-out prompts, on its own axis
        right = ax.twinx()
        right.plot(*zip(*gains, strict=True), "s--", color="C2", label="validation margin gain")
        right.set_ylabel("margin gain (nats)")
        h, lab = right.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    ax.legend(handles, labels, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    for suffix in (".png", ".svg"):
        fig.savefig(path.with_suffix(suffix), dpi=120)
    plt.close(fig)


def _smooth(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1) : i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def heatmap(bias: ImportanceBias, path: str | Path, levels: Sequence[int] = (0, 1)) -> None:
    """β as a layer × head heat map per level (PNG+SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from salience.markup import LEVELS

    beta = bias.beta.detach()
    limit = max(1e-6, float(beta.abs().max()))
    fig, axes = plt.subplots(1, len(levels), figsize=(3.2 * len(levels), 6), squeeze=False)
    image = None
    for ax, level in zip(axes[0], levels, strict=True):
        image = ax.imshow(
            beta[level].numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto"
        )
        ax.set_title(f"β, level {LEVELS[level].value}")
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
    assert image is not None
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".svg"):
        fig.savefig(path.with_suffix(suffix), dpi=120)
    plt.close(fig)
