"""Smoothing and the two training plots (``loss.png``, ``scores.png``).

Smoothing is a *centred moving average*, like the smoothed accuracy curve of the paper:
``smooth(x, w)[i] = mean(x[max(0, i - h) : min(n, i + h + 1)])`` with ``h = w // 2`` (the
window shrinks, symmetric or not, at the ends; ``w = 1`` is the identity). The loss plot
uses a trailing moving average instead (``mean(x[max(0, i - w + 1) : i + 1])``), so the
curve at step ``i`` only reflects steps up to ``i``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from affectgpt.io import atomic_write


def centred_moving_average(values: Sequence[float], window: int) -> list[float]:
    """Centred moving average with a window shrinking at both ends (see module doc)."""
    if window < 1:
        raise ValueError("window must be >= 1")
    n, h = len(values), window // 2
    out = []
    for i in range(n):
        chunk = [v for v in values[max(0, i - h):min(n, i + h + 1)] if _finite(v)]
        out.append(sum(chunk) / len(chunk) if chunk else math.nan)
    return out


def trailing_moving_average(values: Sequence[float], window: int) -> list[float]:
    if window < 1:
        raise ValueError("window must be >= 1")
    out, total, count, queue = [], 0.0, 0, []
    for v in values:
        v = float(v) if _finite(v) else math.nan
        queue.append(v)
        if _finite(v):
            total, count = total + v, count + 1
        if len(queue) > window:
            old = queue.pop(0)
            if _finite(old):
                total, count = total - old, count - 1
        out.append(total / count if count else math.nan)
    return out


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write(path, buf.getvalue())


def plot_loss(steps: Sequence[int], losses: Sequence[float], path: str | Path, *,
              window: int | None = None, title: str = "training loss") -> Path:
    """Loss per step (thin) and its trailing moving average (window ~ 2 % of the steps,
    at least 1, at most 200, unless given)."""
    plt = _pyplot()
    if window is None:
        window = max(1, min(200, len(losses) // 50))
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        ax.plot(steps, losses, lw=0.6, alpha=0.45, label="loss")
        if len(losses):
            ax.plot(steps, trailing_moving_average(losses, window), lw=1.6,
                    label=f"moving average ({window} steps)")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def plot_scores(epochs: Sequence[int], scores: Mapping[str, Sequence[float]], path: str | Path,
                *, window: int = 5, title: str = "evaluation") -> Path:
    """Each score per evaluated epoch (markers) and its centred moving average (line)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        for i, (name, values) in enumerate(sorted(scores.items())):
            color = f"C{i % 10}"
            ax.plot(epochs, values, "o", ms=3, alpha=0.5, color=color, label=f"{name}")
            ax.plot(epochs, centred_moving_average(values, window), "-", lw=1.6, color=color,
                    label=f"{name} (centred mean, {window})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("score")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if scores:
            ax.legend(fontsize=8)
        return _save(fig, Path(path))
    finally:
        plt.close(fig)


def plot_series(steps: Sequence[int], series: Mapping[str, Sequence[float]], path: str | Path,
                *, window: int | None = None, ylabel: str = "value",
                title: str = "training") -> Path:
    """Several per-step curves on one plot (thin) with their trailing moving averages
    (window as in :func:`plot_loss`); non-finite values are gaps."""
    plt = _pyplot()
    n = max((len(v) for v in series.values()), default=0)
    if window is None:
        window = max(1, min(200, n // 50))
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        for i, (name, values) in enumerate(sorted(series.items())):
            color = f"C{i % 10}"
            values = [float(v) if _finite(v) else math.nan for v in values]
            ax.plot(steps, values, lw=0.6, alpha=0.4, color=color)
            ax.plot(steps, trailing_moving_average(values, window), lw=1.6, color=color,
                    label=name if window == 1 else f"{name} ({window}-step mean)")
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=8)
        return _save(fig, Path(path))
    finally:
        plt.close(fig)
