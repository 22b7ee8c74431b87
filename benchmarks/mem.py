"""The matrix-element method on Drell-Yan with the toy detector: exact, learned, template, truth.

theta = the Z' mass (400 GeV generated, width 0.5 GeV, narrower than the
detector's 4.4 GeV mass resolution). Per method, over toy data sets of detected
events (disjoint subsets of one sample):

* exact MEM: the toy detector's closed-form T and eps, per-event multi-channel
  importance sampling (:class:`hepflows.inference.mem.ExactTransfer`);
* learned MEM: T, eps and the sampler learned from simulated pairs
  (:class:`hepflows.inference.learned_mem.LearnedTransfer`);
* binned template fit of the reco m_ll (2 GeV bins, 370-430 GeV, plus the
  rest), templates from the simulation reweighted to each theta at truth level;
* the truth-level likelihood without smearing (the optimum).

Figures: bias / sigma and pull width of theta-hat, mean 68 % interval width,
the per-event log-likelihood-ratio error against the exact MEM, the Fisher
information (curvature of the summed -2 Delta ln L) against the exact, time
per event; per-event integration error at 1024 calls and the calls
per-event VEGAS needs for 1 %. Last line JSON. ``--quick``: smaller (under 10 min).
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import finish  # noqa: E402
from hepflows.generate import generate_pairs  # noqa: E402
from hepflows.inference import leptons, mem  # noqa: E402
from hepflows.inference.learned_mem import LearnedTransfer  # noqa: E402
from hepflows.inference.validation import validate  # noqa: E402

THETA0 = 400.0
#: Z' width of the simulation (GeV): broad, so that it can be reweighted to any mass of the
#: grid (the data have 0.5 GeV); the detector the learned pieces learn does not care.
SIM_WIDTH = 5.0
#: Z' coupling of the simulation: the data's 0.2 scaled by (SIM_WIDTH / 0.5)^(1/4), so that
#: the broad peak holds as many events as the narrow one (its cross-section goes as g^4 / Gamma).
SIM_COUPLING = 0.2 * (SIM_WIDTH / 0.5) ** 0.25
#: The fine grid of the cheap methods (truth level, template): 0.01 GeV steps.
FINE = np.linspace(395.0, 405.0, 1001)
EDGES = np.concatenate(([150.0], np.arange(370.0, 431.0, 2.0), [13000.0]))


def reco_mass(r: torch.Tensor) -> np.ndarray:
    """m_ll (n,) of reco leptons (n, 4), back to back in phi: 2 sqrt(pT- pT+) cosh(D eta / 2)."""
    return (2 * torch.sqrt(r[:, 0] * r[:, 1]) * torch.cosh((r[:, 2] - r[:, 3]) / 2)).numpy()


def smooth_templates(
    model: mem.DrellYanModel,
    exact: mem.ExactTransfer,
    grid: np.ndarray,
    n: int,
    seed: int,
    smearings: int = 4,
) -> np.ndarray:
    """Reco m_ll templates (T, B) of detected events at each mass of ``grid``.

    Truth points from one fixed importance sample: m a third each from a
    Cauchy (400 GeV, half-width 2 GeV) and a uniform in 360-440 GeV, and ~ 1/m^2
    over 150 GeV-13 TeV; eta uniform in the acceptance. Each M weights them by
    d sigma(x | M) eps(x) / g(x) (common points, so smooth in M), and each point
    is smeared ``smearings`` times by the toy detector (the detector simulation).
    """
    from hepflows.inference.detector import ToyDetector, from_pt_eta_phi

    gen = torch.Generator().manual_seed(seed + 77)
    u = torch.rand(n, 4, generator=gen, dtype=torch.float64)
    lo, hi, w_lo, w_hi, hw = 150.0, 13000.0, 360.0, 440.0, 2.0
    a, b = math.atan((w_lo - THETA0) / hw), math.atan((w_hi - THETA0) / hw)
    c = torch.floor(3 * u[:, 0])
    v = u[:, 1]
    m = torch.where(
        c == 0,
        THETA0 + hw * torch.tan(a + (b - a) * v),
        torch.where(c == 1, w_lo + (w_hi - w_lo) * v, 1 / (1 / lo - v * (1 / lo - 1 / hi))),
    )
    inside = (m >= w_lo) & (m <= w_hi)
    g_m = (
        inside * (1 / (hw * (b - a) * (1 + ((m - THETA0) / hw) ** 2)) + 1 / (w_hi - w_lo))
        + 1 / (m**2 * (1 / lo - 1 / hi))
    ) / 3
    em, ep = 5 * u[:, 2] - 2.5, 5 * u[:, 3] - 2.5
    ch = 2 * torch.cosh((em - ep) / 2)
    x = torch.stack((m / ch, em, ep), -1)
    log_g = (g_m * ch / 25.0).log()  # density of x = (pt, eta-, eta+)
    log_eps = exact.efficiency(x).clamp_min(1e-300).log()
    det = ToyDetector(seed=seed + 78)
    zero = torch.zeros(n, dtype=torch.float64)
    lep = from_pt_eta_phi(torch.stack((x[:, 0], em, zero), -1))
    anti = from_pt_eta_phi(torch.stack((x[:, 0], ep, zero + math.pi), -1))
    nb = len(EDGES) - 1
    bins = []
    for _ in range(smearings):
        r = leptons.reco_of(det.smear(lep), det.smear(anti))
        k = np.clip(np.searchsorted(EDGES, reco_mass(r), side="right") - 1, 0, nb - 1)
        bins.append(torch.as_tensor(k))
    lumi = model.luminosities(x)
    out = []
    for mass in grid:
        w = torch.exp(model.log_density(x, [mass], lumi) + log_eps - log_g)
        h = sum(torch.bincount(k, w, nb) for k in bins).numpy()
        out.append(h / h.sum())
    return np.clip(np.array(out), 1e-12, None)


def scan_fit(grid: np.ndarray, log_l: np.ndarray) -> tuple[float, float, float, float]:
    """(best, sigma, lower, upper) of a scan of summed log L (T,), parabola near the minimum."""
    nll2 = -2 * (log_l - log_l.max())
    k = int(np.argmin(nll2))
    best = float(grid[k])
    if 0 < k < len(grid) - 1:
        a, b, _ = np.polyfit(grid[k - 1 : k + 2], nll2[k - 1 : k + 2], 2)
        if a > 0:
            best = float(-b / (2 * a))
    lo, hi = mem.crossings(grid, nll2 - nll2.min(), 1.0)
    return best, (hi - lo) / 2, lo, hi


def toy_figures(
    grid: np.ndarray, per_event: np.ndarray, norm: np.ndarray, toys: int, size: int
) -> dict[str, Any]:
    """Bias, pulls, widths over toys from per-event log-likelihoods (T, N) and -log sigma (T,)."""
    fits = []
    for t in range(toys):
        log_l = per_event[:, t * size : (t + 1) * size].sum(1) + size * norm
        fits.append(scan_fit(grid, log_l))
    f = np.array(fits)
    ok = np.isfinite(f).all(1)
    best, sig = f[ok, 0], f[ok, 1]
    pulls = (best - THETA0) / sig
    return {
        "toys": int(ok.sum()),
        "mean": float(best.mean()),
        "bias": float(best.mean() - THETA0),
        "rms": float(best.std()),
        "mean_sigma": float(sig.mean()),
        "bias_over_sigma": float((best.mean() - THETA0) / best.std()),
        "pull_mean": float(pulls.mean()),
        "pull_width": float(pulls.std()),
        "mean_interval68": float((f[ok, 3] - f[ok, 2]).mean()),
    }


def fisher(grid: np.ndarray, per_event: np.ndarray, norm: np.ndarray) -> float:
    """Curvature of the summed -ln L at THETA0 per event (the Fisher information), from the
    grid points next to THETA0."""
    nll = -(per_event.sum(1) + per_event.shape[1] * norm)
    k = int(np.argmin(np.abs(grid - THETA0)))
    h = grid[k + 1] - grid[k]
    return float((nll[k + 1] - 2 * nll[k] + nll[k - 1]) / h**2 / per_event.shape[1])


def vegas_calls(
    model: mem.DrellYanModel,
    transfer: mem.ExactTransfer,
    r: torch.Tensor,
    target: float,
    rng: np.random.Generator,
) -> int:
    """Integrand calls per-event VEGAS needs for a relative error below ``target``.

    The integral over x = (pT, eta_minus, eta_plus) in the box of +-6 resolutions
    around the measured values (pT from the mean measured pT, eta from each
    measured eta): 1000 calls per iteration, adapting, until the cumulative
    estimate's relative error is below target (at most 200 iterations).
    """
    import vegas

    sig_pt = float(r[0] * transfer.detector.resolution(r[0:1]))
    ref = float((r[0] + r[1]) / 2)
    s_eta = transfer.detector.settings.eta_sigma
    box = [
        [max(1.0, ref - 6 * sig_pt), ref + 6 * sig_pt],
        [float(r[2]) - 6 * s_eta, float(r[2]) + 6 * s_eta],
        [float(r[3]) - 6 * s_eta, float(r[3]) + 6 * s_eta],
    ]
    theta = [THETA0]

    @vegas.lbatchintegrand
    def f(x: np.ndarray) -> np.ndarray:
        xt = torch.as_tensor(x, dtype=torch.float64)
        log_f = model.log_density(xt, theta) + transfer.efficiency(xt).clamp_min(1e-300).log()
        log_f = log_f + transfer.log_transfer(r[None].expand(len(xt), -1), xt)
        return torch.exp(log_f).numpy()

    integ = vegas.Integrator(box, ran_array_generator=rng.random)
    integ(f, nitn=5, neval=1000)  # adapt the grid (counted)
    calls, weights, values = 5000, [], []
    for _ in range(200):  # then iterations of 1000 calls, combined by inverse variance
        r1 = integ(f, nitn=1, neval=1000)
        calls += 1000
        if r1.sdev > 0:
            weights.append(1 / r1.sdev**2)
            values.append(r1.mean)
        w = np.array(weights)
        if len(w) and (np.sum(w) ** -0.5) < target * np.dot(w, values) / np.sum(w):
            break
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    q = args.quick
    toys, size = (100, 100) if q else (100, 1000)
    n_sim, steps = (40_000, 2000) if q else (200_000, 6000)
    if args.smoke:  # a few seconds, for debugging the script
        toys, size, n_sim, steps = 4, 40, 6000, 200
    points_exact, points_learned = (256, 256) if q else (512, 512)
    grid = np.linspace(395.0, 405.0, 11) if q else np.linspace(397.0, 403.0, 25)
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "quick": q,
        "toys": toys,
        "events_per_toy": size,
        "sim_pairs": n_sim,
        "steps": steps,
        "grid": grid.tolist(),
        "theta0": THETA0,
        "points_exact": points_exact,
        "points_learned": points_learned,
        "sim_width": SIM_WIDTH,
        "sim_coupling": SIM_COUPLING,
        "fine_grid_step": float(FINE[1] - FINE[0]),
    }
    print("settings:", result, flush=True)

    print("\n== Simulation (training and templates) and data (Z' at 400 GeV, width 0.5 GeV)")
    t0 = time.perf_counter()
    sim = generate_pairs(
        n_sim, True, seed=args.seed, names=leptons.RECO, wzp=SIM_WIDTH, zprime_coupling=SIM_COUPLING
    )
    need = toys * size
    data = generate_pairs(int(need / 0.85) + 3000, True, seed=args.seed + 1000, names=leptons.RECO)
    reco, truth = data.reco[data.passed][:need], data.truth[data.passed][:need][:, [0, 2, 3]]
    if len(reco) < need:
        raise SystemExit(f"only {len(reco)} detected events, {need} needed")
    result["generation_seconds"] = time.perf_counter() - t0
    print(f"{len(sim)} simulated pairs, {need} data events ({result['generation_seconds']:.0f} s)")

    print("\n== Learned transfer (T, eps, sampling flows)")
    t0 = time.perf_counter()
    learned = LearnedTransfer.train(sim.truth, sim.reco, sim.passed, steps=steps, seed=args.seed)
    result["learned_train_seconds"] = time.perf_counter() - t0
    print(
        f"trained in {result['learned_train_seconds']:.0f} s; relative pT resolution read off "
        f"the flow: {learned.rho:.4f}"
    )

    print("\n== Validation of the learned flows on held-out pairs (the data's; nabu tests)")
    held = data.passed.clone()
    held[torch.nonzero(held)[:need, 0]] = False  # not the events the toys use
    checks = {
        "transfer T(reco | truth)": (learned.transfer, data.reco[held], data.truth[held]),
        "sampling flow q(truth | reco)": (
            learned.proposal,
            data.truth[held][:, [0, 2, 3]],
            leptons.truth_reference(data.reco[held]),
        ),
    }
    result["validation"] = {}
    for label, (density, x, c) in checks.items():
        report = validate(density, x, c)
        result["validation"][label] = report.to_dict()
        print(f"{label}: {report.summary()}")

    model = mem.DrellYanModel(("mzp",))
    exact = mem.ExactTransfer()
    thetas = torch.tensor(grid, dtype=torch.float64)[:, None]
    per_event: dict[str, np.ndarray] = {}
    norms: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for name, transfer, points in (
        ("exact", exact, points_exact),
        ("learned", learned, points_learned),
    ):
        print(f"\n== {name} MEM: {need} events x {len(grid)} masses x {points} points", flush=True)
        t0 = time.perf_counter()
        integrals = mem.event_integrals(model, transfer, reco, thetas, points, seed=args.seed)
        sig = model.sigma_fid(thetas, transfer.efficiency)
        seconds[name] = time.perf_counter() - t0
        per_event[name] = integrals.value.clamp_min(1e-300).log().numpy()
        norms[name] = -sig.log().numpy()
        rel = integrals.relative_error
        result[f"{name}_median_event_rel_error"] = float(rel.median())
        print(f"{seconds[name]:.0f} s; median per-event error {float(rel.median()):.2%}")

    print("\n== Truth-level likelihood (no smearing) and the binned template fit")
    t0 = time.perf_counter()
    lumi = model.luminosities(truth)
    log_eps = exact.efficiency(truth).log()
    per_event["truth"] = np.stack(
        [(model.log_density(truth, [m], lumi) + log_eps).numpy() for m in FINE]
    )
    # sigma_fid is smooth in the mass (second differences < 1e-5): interpolated on the fine grid
    norms["truth"] = np.interp(FINE, grid, -model.sigma_fid(thetas, exact.efficiency).log().numpy())
    seconds["truth"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tgrid = FINE[::20]  # 0.2 GeV steps
    templates = smooth_templates(model, exact, tgrid, 1_000_000, args.seed)
    data_m = reco_mass(reco)
    bins = np.clip(np.searchsorted(EDGES, data_m, side="right") - 1, 0, len(EDGES) - 2)
    per_event["template"] = np.log(templates[:, bins])  # multinomial: per-event bin probability
    norms["template"] = np.zeros(len(tgrid))
    seconds["template"] = time.perf_counter() - t0

    methods: dict[str, Any] = {}
    for name in ("exact", "learned", "template", "truth"):
        g = {"exact": grid, "learned": grid, "template": tgrid, "truth": FINE}[name]
        methods[name] = toy_figures(g, per_event[name], norms[name], toys, size)
        methods[name]["fisher_per_event"] = fisher(g, per_event[name], norms[name])
        methods[name]["seconds_per_event"] = seconds[name] / need
    for name in ("learned", "template", "truth"):
        methods[name]["fisher_ratio_vs_exact"] = (
            methods[name]["fisher_per_event"] / methods["exact"]["fisher_per_event"]
        )
    # per-event log-likelihood ratios between the grid's ends against the exact MEM
    llr = {k: per_event[k][-1] - per_event[k][0] for k in ("exact", "learned")}
    result["learned_llr_rms_error"] = float(np.sqrt(np.mean((llr["learned"] - llr["exact"]) ** 2)))
    result["exact_llr_rms"] = float(np.sqrt(np.mean(llr["exact"] ** 2)))
    result["methods"] = methods

    print(
        "\n| method | mean θ̂ − 400 | σ(θ̂) | mean σ | bias/σ | pull width | Fisher/event | "
        "ratio vs exact | s/event |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, m in methods.items():
        print(
            f"| {name} | {m['bias']:+.3f} | {m['rms']:.3f} | {m['mean_sigma']:.3f} | "
            f"{m['bias_over_sigma']:+.2f} | {m['pull_width']:.2f} | {m['fisher_per_event']:.4f} | "
            f"{m.get('fisher_ratio_vs_exact', 1.0):.3f} | {m['seconds_per_event']:.2e} |"
        )

    print("\n== Per-event integration: calls for 1 % (learned flow vs per-event VEGAS)")
    sample = reco[:: max(1, need // 20)][:20]
    near = sample[torch.as_tensor(np.abs(reco_mass(sample) - THETA0) < 30)]
    probe = torch.cat((near, sample))[:20]
    one = mem.event_integrals(
        model, learned, probe, thetas[len(grid) // 2 : len(grid) // 2 + 1], 1024, seed=args.seed + 1
    )
    rng = np.random.default_rng(args.seed)
    calls = [vegas_calls(model, exact, r, 0.01, rng) for r in probe]
    result["learned_rel_error_1024_median"] = float(one.relative_error.median())
    result["learned_rel_error_1024_max"] = float(one.relative_error.max())
    result["vegas_calls_for_1pct_median"] = float(np.median(calls))
    result["call_saving_vs_vegas"] = float(np.median(calls)) / 1024
    print(
        f"learned, 1024 calls: median error {result['learned_rel_error_1024_median']:.2%}, "
        f"max {result['learned_rel_error_1024_max']:.2%}; VEGAS per event for 1 %: median "
        f"{np.median(calls):.0f} calls (x{result['call_saving_vs_vegas']:.1f})"
    )

    result |= {
        "max_abs_bias_over_sigma": abs(methods["learned"]["bias_over_sigma"]),
        "pull_width_min": methods["learned"]["pull_width"],
        "pull_width_max": methods["learned"]["pull_width"],
        "min_fisher_ratio": methods["learned"]["fisher_ratio_vs_exact"],
        "median_event_rel_error": result["learned_median_event_rel_error"],
        "template_interval_ratio": methods["learned"]["mean_interval68"]
        / methods["template"]["mean_interval68"],
        "parameters": ["mzp"],
        "total_seconds": time.perf_counter() - start,
        "machine": f"{torch.get_num_threads()} threads",
    }
    finish(result, args.out)


if __name__ == "__main__":
    main()
