"""The matrix-element method on Drell-Yan with the toy detector: exact, learned, template, truth.

Two parameters, each fitted alone with the other at its generated value:
the Z' mass (400 GeV generated, width 0.5 GeV, narrower than the detector's
4.4 GeV mass resolution) and sin^2 theta_W (0.2222 generated, the default
1 - mW^2 / mZ^2; it enters through the forward-backward asymmetry). Per
method, over toy data sets of detected events (disjoint subsets of one sample):

* exact MEM: the toy detector's closed-form T and eps, per-event multi-channel
  importance sampling (:class:`hepflows.inference.mem.ExactTransfer`);
* learned MEM: T, eps and the sampler learned from simulated pairs
  (:class:`hepflows.inference.learned_mem.LearnedTransfer`);
* binned template fit: of the reco m_ll for the mass (2 GeV bins, 370-430 GeV,
  plus the rest), of m_ll x the signed cos theta* (the forward-backward
  asymmetry: 7 m_ll bins x 10 bins of tanh(Delta eta / 2) sign(y)) for
  sin^2 theta_W; templates from one importance sample reweighted to each
  theta at truth level and smeared by the toy detector;
* the truth-level likelihood without smearing (the optimum).

Figures: bias / sigma and pull width of theta-hat, mean 68 % interval width,
the per-event log-likelihood-ratio error against the exact MEM, the Fisher
information (curvature of the summed -2 Delta ln L) against the exact, time
per event; per-event integration error at 1000 calls and the calls
per-event VEGAS needs for 1 % (Z' mass at 400 GeV). Last line JSON.
``--quick``: smaller (under 10 min).
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
from scipy.interpolate import CubicSpline

sys.path.insert(0, str(Path(__file__).parent))
from common import finish  # noqa: E402
from hepflows.generate import generate_pairs  # noqa: E402
from hepflows.inference import leptons, mem  # noqa: E402
from hepflows.inference.learned_mem import LearnedTransfer  # noqa: E402
from hepflows.inference.validation import validate  # noqa: E402

THETA0 = 400.0
#: The generated sin^2 theta_W: DrellYanParameters' default 1 - mW^2 / mZ^2.
SW0 = 1 - 80.419**2 / 91.188**2
#: Z' width of the simulation (GeV): broad, so that it can be reweighted to any mass of the
#: grid (the data have 0.5 GeV); the detector the learned pieces learn does not care.
SIM_WIDTH = 5.0
#: Z' coupling of the simulation: the data's 0.2 scaled by (SIM_WIDTH / 0.5)^(1/4), so that
#: the broad peak holds as many events as the narrow one (its cross-section goes as g^4 / Gamma).
SIM_COUPLING = 0.2 * (SIM_WIDTH / 0.5) ** 0.25
EDGES = np.concatenate(([150.0], np.arange(370.0, 431.0, 2.0), [13000.0]))
#: m_ll bins of the forward-backward template fit, each split in COS_BINS of signed cos theta*.
AFB_MASS_EDGES = np.array([150.0, 200.0, 250.0, 300.0, 380.0, 420.0, 500.0, 13000.0])
COS_BINS = 10
#: Calls per event of the per-event accuracy probe (the bar: 1 % with at most 10^3), its
#: events (evenly spread over the data) and how many of them per-event VEGAS integrates.
PROBE_CALLS, PROBE_EVENTS, VEGAS_EVENTS = 1000, 200, 20


def mass_bins(r: torch.Tensor) -> np.ndarray:
    """Bin index (n,) of reco (n, 4) in the m_ll template (EDGES)."""
    return np.clip(np.searchsorted(EDGES, reco_mass(r), side="right") - 1, 0, len(EDGES) - 2)


def afb_bins(r: torch.Tensor) -> np.ndarray:
    """Bin index (n,) of reco (n, 4) in m_ll x signed cos theta* (AFB_MASS_EDGES x COS_BINS).

    cos theta* = tanh((eta_minus - eta_plus) / 2) of back-to-back leptons, signed by the
    pair's rapidity (the quark's direction is more often the boost's).
    """
    m = np.clip(np.searchsorted(AFB_MASS_EDGES, reco_mass(r), side="right") - 1, 0,
                len(AFB_MASS_EDGES) - 2)  # fmt: skip
    cos = (torch.tanh((r[:, 2] - r[:, 3]) / 2) * torch.sign(r[:, 2] + r[:, 3])).numpy()
    c = np.clip(((cos + 1) / 2 * COS_BINS).astype(int), 0, COS_BINS - 1)
    return m * COS_BINS + c


#: The two parameters (sin^2 theta_W in the vector couplings T3 - Q sin^2 theta_W only: the
#: overall 1 / (sin cos) stays at SW0, as for an effective mixing angle from A_FB):
#: generated value, scan grids (quick, full), the truth-level fine grid,
#: the template binning (function, number of bins) and the template grid's step in fine steps.
PARAMETERS: dict[str, dict[str, Any]] = {
    "mzp": {
        "theta0": THETA0,
        "grid": (np.linspace(395.0, 405.0, 11), np.linspace(397.0, 403.0, 13)),
        "fine": np.linspace(395.0, 405.0, 1001),
        "bins": (mass_bins, len(EDGES) - 1),
        "template_every": 20,
    },
    "sin2w": {  # sigma(theta-hat) at truth level: 0.16 for 100 events, 0.05 for 1000
        "theta0": SW0,
        "grid": (SW0 + np.linspace(-0.6, 0.6, 13), SW0 + np.linspace(-0.2, 0.2, 11)),
        "fine": SW0 + np.linspace(-0.6, 0.6, 1201),
        "bins": (afb_bins, (len(AFB_MASS_EDGES) - 1) * COS_BINS),
        "template_every": 50,
    },
}


def reco_mass(r: torch.Tensor) -> np.ndarray:
    """m_ll (n,) of reco leptons (n, 4), back to back in phi: 2 sqrt(pT- pT+) cosh(D eta / 2)."""
    return (2 * torch.sqrt(r[:, 0] * r[:, 1]) * torch.cosh((r[:, 2] - r[:, 3]) / 2)).numpy()


def smooth_templates(
    model: mem.DrellYanModel,
    exact: mem.ExactTransfer,
    grid: np.ndarray,
    n: int,
    seed: int,
    bins: tuple[Any, int],
    smearings: int = 4,
) -> np.ndarray:
    """Reco templates (T, B) of detected events at each value of ``grid`` (the model's parameter).

    Truth points from one fixed importance sample: m a third each from a
    Cauchy (400 GeV, half-width 2 GeV) and a uniform in 360-440 GeV, and ~ 1/m^2
    over 150 GeV-13 TeV; eta uniform in the acceptance. Each theta weights them by
    d sigma(x | theta) eps(x) / g(x) (common points, so smooth in theta), and each
    point is smeared ``smearings`` times by the toy detector (the detector
    simulation) and binned by ``bins`` = (function of reco (n, 4), number of bins).
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
    binner, nb = bins
    index = [
        torch.as_tensor(binner(leptons.reco_of(det.smear(lep), det.smear(anti))))
        for _ in range(smearings)
    ]
    lumi = model.luminosities(x)
    out = []
    for theta in grid:
        w = torch.exp(model.log_density(x, [theta], lumi) + log_eps - log_g)
        h = sum(torch.bincount(k, w, nb) for k in index).numpy()
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
    grid: np.ndarray, per_event: np.ndarray, norm: np.ndarray, toys: int, size: int, theta0: float
) -> dict[str, Any]:
    """Bias, pulls, widths over toys from per-event log-likelihoods (T, N) and -log sigma (T,)."""
    fits = []
    for t in range(toys):
        log_l = per_event[:, t * size : (t + 1) * size].sum(1) + size * norm
        fits.append(scan_fit(grid, log_l))
    f = np.array(fits)
    ok = np.isfinite(f).all(1)
    best, sig = f[ok, 0], f[ok, 1]
    pulls = (best - theta0) / sig
    return {
        "toys": int(ok.sum()),
        "mean": float(best.mean()),
        "bias": float(best.mean() - theta0),
        "rms": float(best.std()),
        "mean_sigma": float(sig.mean()),
        "bias_over_sigma": float((best.mean() - theta0) / best.std()),
        "pull_mean": float(pulls.mean()),
        "pull_width": float(pulls.std()),
        "mean_interval68": float((f[ok, 3] - f[ok, 2]).mean()),
    }


def fisher(grid: np.ndarray, per_event: np.ndarray, norm: np.ndarray, theta0: float) -> float:
    """Curvature of the summed -ln L at theta0 per event (the Fisher information), from the
    grid points next to theta0."""
    nll = -(per_event.sum(1) + per_event.shape[1] * norm)
    k = int(np.argmin(np.abs(grid - theta0)))
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


def measure(
    name: str,
    spec: dict[str, Any],
    grid: np.ndarray,
    data: tuple[torch.Tensor, torch.Tensor],
    learned: LearnedTransfer,
    points: int,
    toys: int,
    size: int,
    seed: int,
) -> dict[str, Any]:
    """Every method's figures for one parameter (the others at their generated values).

    Args:
        name: the parameter; spec: its entry of PARAMETERS; grid: (T,) the MEM scan grid.
        data: (N, 4) reco and (N, 3) truth of the toys' events.
        learned: the learned transfer; points: sampler points per event and theta.
    """
    reco, truth = data
    theta0, fine = spec["theta0"], spec["fine"]
    model = mem.DrellYanModel((name,), sin2w_norm=SW0)
    exact = mem.ExactTransfer()
    thetas = torch.tensor(grid, dtype=torch.float64)[:, None]
    out: dict[str, Any] = {"grid": grid.tolist(), "theta0": theta0, "points": points}
    per_event: dict[str, np.ndarray] = {}
    norms: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for method, transfer in (("exact", exact), ("learned", learned)):
        print(f"\n== {name}: {method} MEM, {len(reco)} events x {len(grid)} values x {points} "
              "points", flush=True)  # fmt: skip
        t0 = time.perf_counter()
        integrals = mem.event_integrals(model, transfer, reco, thetas, points, seed=seed)
        sig = model.sigma_fid(thetas, transfer.efficiency)
        seconds[method] = time.perf_counter() - t0
        per_event[method] = integrals.value.clamp_min(1e-300).log().numpy()
        norms[method] = -sig.log().numpy()
        rel = float(integrals.relative_error.median())
        out[f"{method}_median_event_rel_error"] = rel
        print(f"{seconds[method]:.0f} s; median per-event error {rel:.2%} at {points} calls")

    print(f"\n== {name}: truth-level likelihood (no smearing) and the binned template fit")
    t0 = time.perf_counter()
    lumi = model.luminosities(truth)
    log_eps = exact.efficiency(truth).log()
    per_event["truth"] = np.stack(
        [(model.log_density(truth, [v], lumi) + log_eps).numpy() for v in fine]
    )
    # sigma_fid is smooth in theta: a cubic spline through the template grid's values
    tgrid = fine[:: spec["template_every"]]
    log_sig = model.sigma_fid(torch.tensor(tgrid)[:, None], exact.efficiency).log().numpy()
    norms["truth"] = -CubicSpline(tgrid, log_sig)(fine)
    seconds["truth"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    templates = smooth_templates(model, exact, tgrid, 1_000_000, seed, spec["bins"])
    per_event["template"] = np.log(templates[:, spec["bins"][0](reco)])  # multinomial
    norms["template"] = np.zeros(len(tgrid))
    seconds["template"] = time.perf_counter() - t0

    grids = {"exact": grid, "learned": grid, "template": tgrid, "truth": fine}
    methods: dict[str, Any] = {}
    for method, g in grids.items():
        methods[method] = toy_figures(g, per_event[method], norms[method], toys, size, theta0)
        methods[method]["fisher_per_event"] = fisher(g, per_event[method], norms[method], theta0)
        methods[method]["seconds_per_event"] = seconds[method] / len(reco)
    for method in ("learned", "template", "truth"):
        methods[method]["fisher_ratio_vs_exact"] = (
            methods[method]["fisher_per_event"] / methods["exact"]["fisher_per_event"]
        )
    # per-event log-likelihood ratios between the grid's ends against the exact MEM
    llr = {k: per_event[k][-1] - per_event[k][0] for k in ("exact", "learned")}
    out["learned_llr_rms_error"] = float(np.sqrt(np.mean((llr["learned"] - llr["exact"]) ** 2)))
    out["exact_llr_rms"] = float(np.sqrt(np.mean(llr["exact"] ** 2)))
    out["methods"] = methods
    out["template_interval_ratio"] = (
        methods["learned"]["mean_interval68"] / methods["template"]["mean_interval68"]
    )
    print(
        f"\n{name} (generated {theta0:.4f})\n| method | mean θ̂ − θ0 | σ(θ̂) | mean σ | bias/σ | "
        "pull width | Fisher/event | ratio vs exact | s/event |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for method, m in methods.items():
        print(
            f"| {method} | {m['bias']:+.4f} | {m['rms']:.4f} | {m['mean_sigma']:.4f} | "
            f"{m['bias_over_sigma']:+.2f} | {m['pull_width']:.2f} | {m['fisher_per_event']:.4g} | "
            f"{m.get('fisher_ratio_vs_exact', 1.0):.3f} | {m['seconds_per_event']:.2e} |"
        )
    print(
        f"per-event LLR between the grid's ends: RMS {out['exact_llr_rms']:.3f} (exact), "
        f"learned - exact RMS {out['learned_llr_rms_error']:.3f}; learned / template interval "
        f"{out['template_interval_ratio']:.3f}"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parameters", default="mzp,sin2w", help="comma-separated, of PARAMETERS")
    ap.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    q = args.quick
    names = args.parameters.split(",")
    if bad := [n for n in names if n not in PARAMETERS]:
        raise SystemExit(f"unknown parameters {bad}: choose among {list(PARAMETERS)}")
    toys, size = (100, 100) if q else (100, 1000)
    n_sim, steps = (40_000, 2000) if q else (200_000, 6000)
    if args.smoke:  # a few seconds, for debugging the script
        toys, size, n_sim, steps = 4, 40, 6000, 200
    points = 256
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "quick": q,
        "toys": toys,
        "events_per_toy": size,
        "sim_pairs": n_sim,
        "steps": steps,
        "points": points,
        "sim_width": SIM_WIDTH,
        "sim_coupling": SIM_COUPLING,
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

    per_parameter = {}
    for name in names:
        grid = PARAMETERS[name]["grid"][0 if q else 1]
        per_parameter[name] = measure(
            name, PARAMETERS[name], grid, (reco, truth), learned, points, toys, size, args.seed
        )
    result["per_parameter"] = per_parameter

    print("\n== Per-event integration: calls for 1 % (learned flow vs per-event VEGAS)")
    model = mem.DrellYanModel(("mzp",))
    probe = reco[:: max(1, need // PROBE_EVENTS)][:PROBE_EVENTS]  # evenly spread over the data
    near = np.abs(reco_mass(probe) - THETA0) < 30
    theta0 = torch.tensor([[THETA0]], dtype=torch.float64)
    one = mem.event_integrals(model, learned, probe, theta0, PROBE_CALLS, seed=args.seed + 1)
    rel = one.relative_error[0].numpy()
    rng = np.random.default_rng(args.seed)
    every = PROBE_EVENTS // VEGAS_EVENTS
    calls = [vegas_calls(model, mem.ExactTransfer(), r, 0.01, rng) for r in probe[::every]]
    result |= {
        "probe_calls": PROBE_CALLS,
        "probe_events": len(probe),
        "probe_events_near_zprime": int(near.sum()),
        "learned_rel_error_probe_median": float(np.median(rel)),
        "learned_rel_error_probe_median_near_zprime": float(np.median(rel[near])),
        "learned_rel_error_probe_p90": float(np.quantile(rel, 0.9)),
        "learned_rel_error_probe_max": float(rel.max()),
        "vegas_events": len(calls),
        "vegas_calls_for_1pct_median": float(np.median(calls)),
    }
    print(
        f"learned, {PROBE_CALLS} calls on {len(probe)} events: median error {np.median(rel):.2%} "
        f"({np.median(rel[near]):.2%} on the {int(near.sum())} within 30 GeV of the Z'), 90 % "
        f"below {np.quantile(rel, 0.9):.2%}, max {rel.max():.2%}; VEGAS per event for 1 %: "
        f"median {np.median(calls):.0f} calls ({len(calls)} events)"
    )

    learned_figures = [p["methods"]["learned"] for p in per_parameter.values()]
    result |= {
        "max_abs_bias_over_sigma": max(abs(m["bias_over_sigma"]) for m in learned_figures),
        "pull_width_min": min(m["pull_width"] for m in learned_figures),
        "pull_width_max": max(m["pull_width"] for m in learned_figures),
        "min_fisher_ratio": min(m["fisher_ratio_vs_exact"] for m in learned_figures),
        "median_event_rel_error": result["learned_rel_error_probe_median"],
        # calls the learned sampler needs for 1 % (error ~ 1 / sqrt(calls)) against VEGAS'
        "call_saving_vs_vegas": float(np.median(calls))
        / (PROBE_CALLS * (result["learned_rel_error_probe_median"] / 0.01) ** 2),
        "template_interval_ratio": max(
            p["template_interval_ratio"] for p in per_parameter.values()
        ),
        "parameters": names,
        "total_seconds": time.perf_counter() - start,
        "machine": f"{torch.get_num_threads()} threads",
    }
    finish(result, args.out)


if __name__ == "__main__":
    main()
