"""Pieces every benchmark script shares: call counting, VEGAS' final stratified pass, timing."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def per_shower_ms(fn, n: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of ``fn()`` divided by ``n``, in ms."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / n


class Counted:
    """Integrand wrapper counting every evaluation."""

    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.f, self.calls = f, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += len(x)
        return self.f(x)


def vegas_final_pass(integ, f, n_eval: int) -> tuple[float, float, np.ndarray]:
    """One ``adapt=False`` pass of a ``vegas.Integrator`` over its own stratified sample, by hand.

    The same weights then give the estimate, vegas' stratified variance and the
    unweighting figures.

    Args:
        integ: an adapted ``vegas.Integrator``.
        f: its batch integrand (numpy in, numpy out).
        n_eval: evaluation budget.

    Returns:
        ``(integral, variance, w)`` with w the (n,) per-point estimates of the
        integral (n * wgt * f; their mean is the integral).
    """
    ws, total, var = [], 0.0, 0.0
    integ.set(neval=n_eval, adapt=False)
    for x, wgt, hcube in integ.random_batch(yield_hcube=True):
        w = wgt * f(x)
        ws.append(w)
        total += w.sum()
        # vegas: var = sum over h-cubes of (n_h sum w^2 - (sum w)^2) / (n_h - 1)
        counts = np.bincount(hcube)
        idx = np.nonzero(counts)[0]
        s1 = np.bincount(hcube, weights=w)[idx]
        s2 = np.bincount(hcube, weights=w * w)[idx]
        n_h = counts[idx]
        ok = n_h > 1
        var += np.sum((n_h[ok] * s2[ok] - s1[ok] ** 2) / (n_h[ok] - 1))
    w = np.concatenate(ws)
    return float(total), max(float(var), 0.0), len(w) * w


def vegas_run(f, dims: int, n_train: int, n_eval: int, seed: int, keep_points: bool = False
              ) -> dict:  # fmt: skip
    """VEGAS as every benchmark runs it: ``vegas.Integrator([[0, 1]] * dims)`` adapted in
    nitn=10 iterations over ``n_train`` calls, then one :func:`vegas_final_pass` of ``n_eval``.

    Returns:
        ``integral``, ``error`` (vegas' stratified standard error), ``w`` (the per-point
        estimates, numpy), ``train_calls``, ``calls`` (training and evaluation),
        ``seconds``, ``map`` (the adapted ``vegas.AdaptiveMap``: its density at x is
        1 / jac of ``map.invmap``), and with ``keep_points`` the evaluation points ``x``.
    """
    import vegas

    cf = Counted(f)
    xs: list[np.ndarray] = []

    @vegas.lbatchintegrand
    def fv(x):
        if keep_points:
            xs.append(np.array(x))
        return cf(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    integ = vegas.Integrator([[0.0, 1.0]] * dims, ran_array_generator=rng.random)
    integ(fv, nitn=10, neval=n_train // 10)
    train_calls = cf.calls
    xs.clear()
    total, var, w = vegas_final_pass(integ, fv, n_eval)
    out = {"integral": total, "error": math.sqrt(var), "w": w, "train_calls": train_calls,
           "calls": cf.calls, "seconds": time.perf_counter() - t0,
           "map": integ.map}  # fmt: skip
    if keep_points:
        out["x"] = np.concatenate(xs)
    return out


def channel_alphas(channels, x: torch.Tensor) -> torch.Tensor:
    """(n, C) channel weights alpha_i(x), a partition of unity at x (n, d): the channels'
    prior weights where they have them, else their mapping densities 1 / |dx/du| read
    from their inverses (Kleiss-Pittau weights of the flat maps)."""
    from hepflows.integrate.channels import apply_inverse, log_priors

    logs = log_priors(channels, x)
    if logs is None:
        logs = torch.stack([-torch.log(apply_inverse(ch, i, x)[1])
                            for i, ch in enumerate(channels)], dim=1)  # fmt: skip
    return torch.softmax(logs, dim=1)


def vegas_channels(f, channels, dims: int, n_train: int, n_eval: int, seed: int,
                   nitn: int = 10) -> dict:  # fmt: skip
    """VEGAS per channel: each channel's alpha_i f J_i (:func:`channel_alphas`) on its own
    grid, the calls split evenly (``nitn`` adapting iterations, then
    :func:`vegas_final_pass`).

    Returns:
        ``integral``, ``error``, ``w`` (per-point estimates of the total, torch), ``calls``,
        ``seconds``.
    """
    import vegas

    from hepflows.integrate.channels import apply_mapping

    cf = Counted(f)
    t0 = time.perf_counter()
    total, var, weights, sizes = 0.0, 0.0, [], []
    n_ch = len(channels)
    for i, ch in enumerate(channels):

        @vegas.lbatchintegrand
        def g(u, i=i, ch=ch):
            u = torch.from_numpy(np.ascontiguousarray(u))
            x, jac = apply_mapping(ch, i, u)
            alpha = channel_alphas(channels, x)[:, i] if n_ch > 1 else 1.0
            return (cf(x) * jac * alpha).numpy()

        rng = np.random.default_rng(seed + 1000 * i)
        integ = vegas.Integrator(dims * [[0.0, 1.0]], ran_array_generator=rng.random)
        integ(g, nitn=nitn, neval=n_train // n_ch // nitn)
        total_i, var_i, w = vegas_final_pass(integ, g, n_eval // n_ch)
        total, var = total + total_i, var + var_i
        weights.append(w)  # per-point estimates of this channel's integral
        sizes.append(len(w))
    n = sum(sizes)
    w_all = torch.from_numpy(np.concatenate([w * n / k for w, k in zip(weights, sizes,
                                                                        strict=True)]))  # fmt: skip
    return {"integral": total, "error": math.sqrt(max(var, 0.0)), "w": w_all, "calls": cf.calls,
            "seconds": time.perf_counter() - t0}  # fmt: skip


def madnis_single(f, dims: int, n_train: int, n_eval: int, seed: int) -> dict:
    """madnis 1.0 on one channel (its defaults, batches of 1024): ``integral``, ``error``,
    ``w`` (per-point estimates, torch), ``calls``, ``seconds``."""
    from madnis.integrator import Integrator

    cf = Counted(f)
    torch.manual_seed(seed)  # madnis draws from torch's global stream
    t0 = time.perf_counter()
    batch = 1024
    integ = Integrator(lambda x: cf(x.to(torch.float64)).to(x.dtype), dims=dims,
                       batch_size=batch)  # fmt: skip
    integ.train(max(n_train // batch, 1))
    w = integ.sample(n_eval).weights.detach().to(torch.float64)
    return {"integral": w.mean().item(), "error": w.std().item() / math.sqrt(len(w)), "w": w,
            "calls": cf.calls, "seconds": time.perf_counter() - t0}  # fmt: skip


def madnis_channels(f, channels, dims: int, n_train: int, n_eval: int, seed: int) -> dict:
    """madnis 1.0 multi-channel, as its docs set it up: the same channel mappings as
    hepflows, their weights (:func:`channel_alphas`) as the channel-weight prior, trained
    channel weights, madnis' default loss; batches of 1024.

    Returns:
        ``integral``, ``error`` (stratified over channels, as madnis' own integrate()),
        ``w`` (per-point estimates, torch), ``calls``, ``seconds``.
    """
    from madnis.integrator import Integrand, Integrator

    from hepflows.integrate.channels import apply_mapping

    cf = Counted(f)
    torch.manual_seed(seed)  # madnis draws from torch's global stream
    t0 = time.perf_counter()

    def function(r, c):
        r = r.to(torch.float64)
        u = torch.empty_like(r)
        jac = torch.empty(len(r), dtype=r.dtype)
        for i, ch in enumerate(channels):
            m = c == i
            if bool(m.any()):
                u[m], jac[m] = apply_mapping(ch, i, r[m])
        return (cf(u) * jac).float(), u.float(), channel_alphas(channels, u).float()

    integrand = Integrand(function, input_dim=dims, channel_count=len(channels),
                          remapped_dim=dims, has_channel_weight_prior=True)  # fmt: skip
    batch = 1024
    integ = Integrator(integrand, batch_size=batch)
    integ.train(max(n_train // batch, 1))
    s = integ.sample(n_eval)
    w = s.weights.detach().to(torch.float64)
    n, var = len(w), 0.0
    for i in range(len(channels)):
        w_c = w[s.channels == i] * (s.channels == i).sum() / n  # estimates of I_c
        if len(w_c) > 1:
            var += w_c.var().item() / len(w_c)
    return {"integral": w.mean().item(), "error": math.sqrt(var), "w": w, "calls": cf.calls,
            "seconds": time.perf_counter() - t0}  # fmt: skip


def finish(result: dict, out: Path | None) -> None:
    """Write the result JSON (if asked) and print it as the last line of output."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))
