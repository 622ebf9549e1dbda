"""Loss curves as PNG: what people look at first after a training stage."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training nodes have no display
import matplotlib.pyplot as plt  # noqa: E402


def plot_losses(losses: list[dict], out: Path, title: str) -> Path:
    """Training loss (and a moving average) against the optimizer step."""
    steps = [entry["step"] for entry in losses]
    values = [entry["loss"] for entry in losses]
    window = max(1, len(values) // 20)
    smooth = [sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
              for i in range(len(values))]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, values, alpha=0.35, label="loss")
    ax.plot(steps, smooth, label=f"moving average ({window})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
