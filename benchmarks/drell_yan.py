"""Drell-Yan pp -> e+ e- via gamma/Z/Z': hepflows against Pythia 8, VEGAS and madnis.

Two parts, one process (design note physics.md):

1. **Pythia 8 cross-check** (Z' off, m_ll > 60 GeV, gamma*/Z): Pythia 8.317
   (``pythia8mc``) generates hard-process events and gives sigma; hepflows
   integrates the same process configured with Pythia's own conventions read
   from the Pythia object (running alpha_EM, sin^2 theta_W(-bar), Z mass and
   running width, four quark flavours, mu_F = M_Z, the same NNPDF2.3 LO grid)
   and generates unweighted events. Reported: both sigmas and the pull; chi^2
   of the m_ll, y_ll and cos theta* histograms; a PNG of them side by side.
2. **Equal matrix-element calls** (MadNIS set-up, Z' on): training +
   evaluation budget for every method, all calls counted:
   hepflows multi-channel (photon, Z, Z' channels, mixture weights) on the
   folded integrand (``DrellYan.folded()``: phi flat, beam swap folded, one
   call per point; what ``hepflows generate`` integrates) and unfolded,
   hepflows single-channel (folded); the peers on the 4-D integrand and, for
   the multi-channel ones, on the same folded integrand too; VEGAS per channel
   (classic multi-channel weights,
   calls split evenly, ``nitn=10`` adaptive iterations then one
   ``adapt=False`` pass), VEGAS on one channel, and madnis 1.0 twice:
   one channel (``Integrator(f, dims=4, batch_size=1024)``, its default flow)
   and multi-channel as its docs set it up (``Integrand(..., channel_count=3,
   remapped_dim=4, has_channel_weight_prior=True)`` with hepflows' channel
   mappings and prior weights, trained channel weights, its default
   stratified-variance loss).
   Relative error and unweighting efficiency (w_max = max over the
   evaluation sample; the 99.9 % quantile second). sigma is also checked
   against a high-precision VEGAS integration of the same matrix element.

Budgets: 2e5 + 2e5 calls (``--quick``: 5e4 + 5e4; ``--budget N``: N + N);
Pythia 2e5 events (5e4). Part 2 runs every method with ``--seeds`` seeds
(default 3): the max-rule unweighting efficiency hangs on one point of the
sample and moves by a factor 2 between seeds, so the summary figures and the
ratios are medians over seeds (per-seed figures are kept in ``per_seed``).
The last line of output is one JSON object.

Usage: ``python benchmarks/drell_yan.py [--quick] [--out FILE.json] [--plot FILE.png]``
"""

from __future__ import annotations

import argparse
import datetime
import math
import time
from pathlib import Path

import numpy as np
import torch

import common
from common import Counted, finish
from hepflows.generate import LOSS
from hepflows.integrate import NeuralIntegrator
from hepflows.integrate.result import weight_statistics
from hepflows.physics import DrellYan, pythia_parameters
from hepflows.physics.kinematics import cos_theta_star, mass, rapidity
from hepflows.physics.pythia import pythia_drell_yan, pythia_events
from hepflows.plots import histogram_comparison
from hepflows.stats import two_sample_chi2

BINNING = {
    "m_ll": (60.0, 1000.0, 40, "$m_{ll}$ [GeV] [log]"),
    "y_ll": (-5.0, 5.0, 40, "$y_{ll}$"),
    "cos_theta": (-1.0, 1.0, 40, "cos $\\theta^*$"),
}


def observables(lepton: torch.Tensor, anti: torch.Tensor) -> dict[str, torch.Tensor]:
    pair = lepton + anti
    return {"m_ll": mass(pair), "y_ll": rapidity(pair),
            "cos_theta": cos_theta_star(lepton, anti)}  # fmt: skip


def figures(value, error, w, calls, seconds):
    st = weight_statistics(w, 0.999)
    return {"sigma_pb": value, "error_pb": error, "relative_error": error / abs(value),
            "unweighting_efficiency": st["unweighting_efficiency"],
            "unweighting_efficiency_q999": st["unweighting_efficiency_quantile"],
            "calls": calls, "seconds": seconds}  # fmt: skip


def median_figures(runs: list[dict]) -> dict:
    """The median over seeds of every numeric figure of one method (per-channel table dropped)."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: float(np.median([r[k] for r in runs])) for k in keys}


# ------------------------------------------------------------------ methods
def run_hepflows(dy, n_train, n_eval, seed, multichannel):
    """hepflows on ``dy`` (a DrellYan, or its ``folded()`` integrand, as `hepflows generate`)."""
    f = Counted(dy)
    t0 = time.perf_counter()
    integ = NeuralIntegrator(f, dy.dims, seed=seed,
                             channels=dy.channels() if multichannel else None,
                             loss=LOSS)  # fmt: skip
    integ.train(n_train, progress=False)
    r = integ.integrate(n_eval)
    out = {"sigma_pb": r.value, "error_pb": r.error, "relative_error": r.relative_error,
           "unweighting_efficiency": r.unweighting_efficiency,
           "unweighting_efficiency_q999": r.unweighting_efficiency_quantile,
           "calls": f.calls, "seconds": time.perf_counter() - t0}  # fmt: skip
    if r.channels:
        out["channels"] = {c.name: [c.value, c.error, c.calls] for c in r.channels}
    return out, integ


def vegas_channels(dy, channels, n_train, n_eval, seed, nitn=10):
    """VEGAS on each channel's alpha_i f J_i (alpha_i: prior weights), calls split evenly."""
    r = common.vegas_channels(dy, channels, dy.dims, n_train, n_eval, seed, nitn)
    return figures(r["integral"], r["error"], r["w"], r["calls"], r["seconds"])


def run_madnis(dy, n_train, n_eval, seed):
    """madnis 1.0 on one channel (:func:`common.madnis_single`)."""
    r = common.madnis_single(dy, dy.dims, n_train, n_eval, seed)
    return figures(r["integral"], r["error"], r["w"], r["calls"], r["seconds"])


def run_madnis_channels(dy, n_train, n_eval, seed):
    """madnis 1.0 multi-channel, as its docs set it up: the same channel mappings and
    prior weights as hepflows, trained channel weights (:func:`common.madnis_channels`)."""
    r = common.madnis_channels(dy, dy.channels(), dy.dims, n_train, n_eval, seed)
    return figures(r["integral"], r["error"], r["w"], r["calls"], r["seconds"])


# -------------------------------------------------------------------- parts
def pythia_part(n_pythia, n_train, n_eval, n_events, seed, plot):
    pythia, settings = pythia_drell_yan(seed=seed + 1)
    t0 = time.perf_counter()
    sample = pythia_events(pythia, n_pythia)
    t_py = time.perf_counter() - t0
    params = pythia_parameters(pythia)
    print("Pythia 8:", "; ".join(settings))
    print(f"hepflows with Pythia's conventions: alpha_EM(M_Z^2) = {params.alpha_em(torch.tensor([params.mz**2], dtype=torch.float64)).item():.6g} (running), "  # noqa: E501
          f"sin2thetaW = {params.sin2w_norm}, sin2thetaWbar = {params.sin2w}, M_Z = {params.mz}, "
          f"Gamma_Z = {params.wz:.6g} (running width), flavours {params.flavours}, "
          f"mu_F = {params.mu_f:.4f}, m_ll > {params.sqrt_s_hat_min}")  # fmt: skip
    dy = DrellYan(params)
    folded = dy.folded()
    res, integ = run_hepflows(folded, n_train, n_eval, seed, multichannel=True)
    pull = (res["sigma_pb"] - sample.sigma_pb) / math.hypot(res["error_pb"], sample.sigma_err_pb)
    ev = integ.generate(n_events, progress=False)
    _, _, lep, anti = dy.momenta(folded.expand(ev.x, torch.Generator().manual_seed(seed)))
    ours = observables(lep, anti)
    theirs = observables(sample.lepton, sample.antilepton)
    chi2 = {}
    for name, (lo, hi, bins, label) in BINNING.items():
        edges = np.geomspace(lo, hi, bins + 1) if label.endswith("[log]") else np.linspace(lo, hi, bins + 1)  # noqa: E501
        chi2[name] = two_sample_chi2(ours[name], theirs[name], edges)
    if plot:
        histogram_comparison(
            {"Pythia 8.317": theirs, "hepflows": ours}, BINNING, plot,
            title="pp -> e+e- via gamma*/Z, 13 TeV, LO, m_ll > 60 GeV (hard process)",
            chi2={k: v[:2] for k, v in chi2.items()},
        )  # fmt: skip
    return {
        "pythia_sigma_pb": sample.sigma_pb, "pythia_sigma_err_pb": sample.sigma_err_pb,
        "pythia_events": sample.accepted, "pythia_tries": sample.tries, "pythia_seconds": t_py,
        "hepflows_sigma_pb": res["sigma_pb"], "hepflows_sigma_err_pb": res["error_pb"],
        "pythia_pull": pull, "hepflows_events": len(ev),
        "chi2": {k: {"chi2": v[0], "ndf": v[1], "p_value": v[2]} for k, v in chi2.items()},
        "settings": settings,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3,
                    help="seeds of part 2 (figures are medians over them; default 3)")
    ap.add_argument("--budget", type=float, default=None,
                    help="training = evaluation calls per method (default 2e5; --quick 5e4)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_train = n_eval = int(args.budget or (5 * 10**4 if args.quick else 2 * 10**5))
    n_pythia = 5 * 10**4 if args.quick else 2 * 10**5
    seed = args.seed
    result: dict[str, object] = {"date": datetime.date.today().isoformat(), "quick": args.quick,
                                 "budget": [n_train, n_eval], "seed": seed}  # fmt: skip

    print("== Part 1: Pythia 8 cross-check (Z' off, m_ll > 60 GeV)")
    part1 = pythia_part(n_pythia, n_train, n_eval, 20_000, seed, args.plot)
    result["pythia"] = part1
    print(f"sigma Pythia   = {part1['pythia_sigma_pb']:.2f} +- {part1['pythia_sigma_err_pb']:.2f} pb "  # noqa: E501
          f"({part1['pythia_events']} events, {part1['pythia_tries']} tries)")  # fmt: skip
    print(f"sigma hepflows = {part1['hepflows_sigma_pb']:.2f} +- {part1['hepflows_sigma_err_pb']:.2f} pb"  # noqa: E501
          f"  pull {part1['pythia_pull']:+.2f}")
    for name, c in part1["chi2"].items():
        print(f"  {name:<10} chi2/ndf = {c['chi2']:.1f}/{c['ndf']}  p = {c['p_value']:.3f}")

    print("\n== Part 2: equal matrix-element calls, MadNIS set-up with the Z'")
    dy = DrellYan()
    fy = dy.folded()  # phi flat, beam swap folded: what `hepflows generate` integrates
    methods = {
        "hepflows": lambda s: run_hepflows(fy, n_train, n_eval, s, True)[0],
        "hepflows_unfolded": lambda s: run_hepflows(dy, n_train, n_eval, s, True)[0],
        "hepflows_single_channel": lambda s: run_hepflows(fy, n_train, n_eval, s, False)[0],
        "vegas_per_channel": lambda s: vegas_channels(dy, dy.channels(), n_train, n_eval, s),
        "vegas_per_channel_folded": lambda s: vegas_channels(fy, fy.channels(), n_train, n_eval, s),  # noqa: E501
        "vegas_single_channel": lambda s: vegas_channels(dy, dy.channels()[:1], n_train, n_eval, s),  # noqa: E501
        "madnis": lambda s: run_madnis(dy, n_train, n_eval, s),
        "madnis_multichannel": lambda s: run_madnis_channels(dy, n_train, n_eval, s),
        "madnis_multichannel_folded": lambda s: run_madnis_channels(fy, n_train, n_eval, s),
    }
    seeds = [seed + k for k in range(args.seeds)]
    runs: dict[str, list[dict]] = {name: [] for name in methods}
    print(f"seeds {seeds}; every figure below is per seed, the summary the median over seeds")
    print(f"{'method':<24} {'seed':>4} {'sigma pb':>12} {'rel.err':>9} {'unw.eff':>9} "
          f"{'unw.q999':>9} {'calls':>9} {'time s':>7}")  # fmt: skip
    for s in seeds:
        for name, run in methods.items():
            r = run(s)
            runs[name].append(r)
            print(f"{name:<24} {s:>4} {r['sigma_pb']:>12.5g} {r['relative_error']:>9.3g} "
                  f"{r['unweighting_efficiency']:>9.3g} {r['unweighting_efficiency_q999']:>9.3g} "
                  f"{r['calls']:>9} {r['seconds']:>7.1f}", flush=True)  # fmt: skip
    table = {name: median_figures(rs) for name, rs in runs.items()}
    print(f"\nmedian over {len(seeds)} seeds:")
    print(f"{'method':<24} {'rel.err':>9} {'unw.eff':>9} {'unw.q999':>9}")
    for name, r in table.items():
        print(f"{name:<24} {r['relative_error']:>9.3g} {r['unweighting_efficiency']:>9.3g} "
              f"{r['unweighting_efficiency_q999']:>9.3g}")  # fmt: skip
    result["methods"] = table
    result["seeds"] = seeds
    result["per_seed"] = runs
    peers = ["vegas_per_channel", "vegas_per_channel_folded", "vegas_single_channel", "madnis",
             "madnis_multichannel", "madnis_multichannel_folded"]
    best = min(peers, key=lambda k: table[k]["relative_error"])
    best_unw = max(peers, key=lambda k: table[k]["unweighting_efficiency"])
    ref = vegas_channels(dy, dy.channels(), 3 * 10**6 if not args.quick else 6 * 10**5,
                         3 * 10**6 if not args.quick else 6 * 10**5, seed + 7)  # fmt: skip
    h = runs["hepflows"][0]
    ref_pull = (h["sigma_pb"] - ref["sigma_pb"]) / math.hypot(h["error_pb"], ref["error_pb"])
    print(f"VEGAS reference (per channel, {ref['calls']:,} calls): {ref['sigma_pb']:.6g} +- "
          f"{ref['error_pb']:.3g} pb; hepflows (seed {seed}) pull {ref_pull:+.2f}")  # fmt: skip
    m = table["hepflows"]
    per_seed_unw = [a["unweighting_efficiency"] / max(runs[k][i]["unweighting_efficiency"]
                                                       for k in peers)
                    for i, a in enumerate(runs["hepflows"])]  # fmt: skip
    result.update({
        "sigma_pb": h["sigma_pb"], "sigma_err_pb": h["error_pb"],
        "vegas_reference_sigma_pb": ref["sigma_pb"], "vegas_reference_err_pb": ref["error_pb"],
        "reference_pull": ref_pull,
        "pythia_sigma_pb": part1["pythia_sigma_pb"], "pythia_pull": part1["pythia_pull"],
        "unweighting_efficiency": m["unweighting_efficiency"],
        "peer_unweighting_efficiency": table[best_unw]["unweighting_efficiency"],
        "best_unweighting_peer": best_unw,
        "unweighting_ratio_vs_best_peer": m["unweighting_efficiency"]
        / table[best_unw]["unweighting_efficiency"],
        "unweighting_ratio_vs_best_peer_per_seed": per_seed_unw,
        "unweighting_q999_ratio_vs_best_peer": m["unweighting_efficiency_q999"]
        / max(table[k]["unweighting_efficiency_q999"] for k in peers),
        "best_peer": best,
        "ratio_vs_best_peer": table[best]["relative_error"] / m["relative_error"],
        "ratio_vs_best_peer_per_seed": [
            min(runs[k][i]["relative_error"] for k in peers) / a["relative_error"]
            for i, a in enumerate(runs["hepflows"])],
    })  # fmt: skip
    finish(result, args.out)


if __name__ == "__main__":
    main()
