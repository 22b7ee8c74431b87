"""Plots a person would rather look at than read (matplotlib + mplhep style)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from hepflows.files import atomic_write  # noqa: E402


def density_comparison(
    target: Tensor,
    samples: Tensor,
    log_prob_grid: Tensor,
    extent: tuple[float, float, float, float],
    path: str | os.PathLike,
    title: str = "",
) -> None:
    """Three panels: target samples, flow samples, flow density on a grid.

    Args:
        target: (N, 2) samples of the target.
        samples: (M, 2) samples of the flow.
        log_prob_grid: (G, G) flow log-density on the grid spanning ``extent``
            (rows along y).
        extent: (xmin, xmax, ymin, ymax).
        path: PNG file to write (atomically).
        title: figure title.
    """
    plt.style.use(mplhep.style.ROOT)
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), constrained_layout=True)
    bins = 120
    rng = [extent[:2], extent[2:]]
    axes[0].hist2d(*target.T.numpy(), bins=bins, range=rng, cmap="viridis")
    axes[0].set_title("target samples")
    axes[1].hist2d(*samples.T.numpy(), bins=bins, range=rng, cmap="viridis")
    axes[1].set_title("flow samples")
    axes[2].imshow(
        torch.exp(log_prob_grid).numpy(), origin="lower", extent=extent, cmap="viridis",
        aspect="auto",
    )  # fmt: skip
    axes[2].set_title("flow density")
    for ax in axes:
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    if title:
        fig.suptitle(title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
