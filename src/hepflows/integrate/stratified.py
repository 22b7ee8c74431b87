"""Stratified sampling of the flow's latent unit cube (as VEGAS stratifies its y-space).

The flow on the unit cube has a uniform base, so splitting the *latent* cube
into m^d equal hypercubes and drawing n_h >= 2 points in each gives a
stratified sample of q itself. The estimate stays unbiased and its variance
drops to the within-hypercube variance of w = f/q, which is what lets a
trained flow beat VEGAS' own stratification in low dimensions. Where
m = floor((n/2)^(1/d)) < 2 (high d or few points) it is plain sampling.
"""

from __future__ import annotations

import torch
from torch import Tensor


def strata_per_axis(n: int, dims: int) -> int:
    """The largest m with 2 m^d <= n (at least 1)."""
    m = max(int((n / 2) ** (1.0 / dims)), 1)
    while 2 * (m + 1) ** dims <= n:
        m += 1
    while m > 1 and 2 * m**dims > n:
        m -= 1
    return m


def hypercube_assignment(
    n: int, dims: int, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, int]:
    """Assign n points to the m^d latent hypercubes, n // m^d or one more each.

    ``device`` defaults to the generator's (CPU without one).

    Returns:
        ``(cube, m)``: (n,) int64 hypercube index of each point (sorted), and m.
    """
    m = strata_per_axis(n, dims)
    cubes = m**dims
    per, extra = divmod(n, cubes)
    if device is None:
        device = generator.device if generator is not None else "cpu"
    counts = torch.full((cubes,), per, dtype=torch.int64, device=device)
    if extra:
        counts[torch.randperm(cubes, generator=generator, device=device)[:extra]] += 1
    return torch.repeat_interleave(torch.arange(cubes, device=device), counts), m


def points_in_cubes(
    cube: Tensor, m: int | Tensor, dims: int, generator: torch.Generator | None = None
) -> Tensor:
    """Uniform points inside hypercubes.

    Args:
        cube: (n,) hypercube indices.
        m: hypercubes per axis, one for all or (n,) per point.
        dims: d.
        generator: for reproducible draws.

    Returns:
        (n, d) float64 points in [0, 1)^d.
    """
    m = torch.as_tensor(m, dtype=torch.int64, device=cube.device).expand(len(cube))
    digits = torch.stack([(cube // m**k) % m for k in range(dims)], dim=1)
    u = torch.rand(len(cube), dims, generator=generator, dtype=torch.float64, device=cube.device)
    return (digits + u) / m[:, None]


def stratified_estimate(w: Tensor, cube: Tensor) -> tuple[float, float, Tensor]:
    """Integral, variance and per-point weights of a stratified sample.

    With M hypercubes of volume 1/M holding n_h points each:
    I = sum_h mean_h(w) / M and Var(I) = sum_h s_h^2 / (n_h M^2), s_h^2 the
    unbiased sample variance in h. Hypercubes with one point (only when
    unstratified, M = 1, n = 1) contribute no variance estimate.

    Args:
        w: (n,) weights f/q.
        cube: (n,) hypercube index of each point, every used index with >= 2 points.

    Returns:
        ``(value, variance, W)`` with W (n,) the per-point weights
        w n / (M n_h) whose mean is the estimate (for ESS and unweighting).
    """
    w = w.to(torch.float64)
    counts = torch.bincount(cube)
    used = counts > 0
    m_cubes = int(used.sum())
    s1 = torch.bincount(cube, weights=w)[used]
    s2 = torch.bincount(cube, weights=w * w)[used]
    n_h = counts[used].to(torch.float64)
    value = (s1 / n_h).sum().item() / m_cubes
    ok = n_h > 1
    var_h = (s2[ok] - s1[ok] ** 2 / n_h[ok]) / (n_h[ok] - 1)
    variance = (var_h.clamp_min(0) / n_h[ok]).sum().item() / m_cubes**2
    weights = w * len(w) / (m_cubes * counts[cube].to(torch.float64))
    return value, variance, weights
