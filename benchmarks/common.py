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


def finish(result: dict, out: Path | None) -> None:
    """Write the result JSON (if asked) and print it as the last line of output."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))
