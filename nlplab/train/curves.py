"""Training curves: loss and the selection metric per epoch, train against validation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nlplab.io import atomic_write


def plot_history(history: Sequence[dict], path: str | Path, metric: str = "accuracy", title: str | None = None,
                 best_epoch: int | None = None) -> Path:
    """Two panels (loss, metric) with one line per split, the selected epoch marked by a dashed line, under
    `title`; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", metric)):
        for split in ("train", "val"):
            name = f"{split}_{key}"
            if all(name in h for h in history):
                ax.plot(epochs, [h[name] for h in history], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)
