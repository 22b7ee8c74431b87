"""Multi-jet processes: hepflows' tree amplitudes and pp -> 2, 3 jets against Pythia 8.

Part 1 (this version): **cross-sections against Pythia 8.317** (``pythia8mc``), hard
process only, identical settings: 13 TeV, every parton p_T > ``--pt-min`` (Pythia:
``pTHatMin``; for three partons ``pTHat3Min = pTHat5Min``), Delta R > 0.4 between the
three partons (``RsepMin``), fixed mu_R = mu_F (``renormScale = factorScale`` fixed
options), alpha_s fixed at the PDF set's value at that scale (Pythia ``alphaSorder = 0``),
NNPDF2.3 QCD+QED LO (``PDF:pSet = 13``), five massless flavours
(``HardQCD:nQuarkNew = 5``; Pythia keeps c, b masses in its phase space).
hepflows integrates its MultiJet integrand with VEGAS on the flat (tau, y, RAMBO)
variables (the multi-channel flow integrator comes next); per subprocess class for three
jets, so that any disagreement points at a class (Pythia reports sigma per process code).

And e- e+ + 1 jet against ``WeakBosonAndParton:qqbar2gmZg``/``qg2gmZq`` (60 < m_ee < 120
GeV, jet p_T > 30 GeV, mu = M_Z, Pythia's electroweak conventions read from it).

Part 2, **equal calls** (``--equal-calls TRAIN,EVAL``, default 2e4,5e4): hepflows'
NeuralIntegrator on the jet channels (one per balancing parton and, for three jets, one
per parton pair with its Delta R on a log map; mixture weights) against
the peers at the same calls: VEGAS on the flat variables (nitn=10 adapting on the
training calls, one non-adapting pass), VEGAS per jet channel (alpha_i f J_i with the
channels' Kleiss-Pittau weights) and madnis 1.0 multi-channel (the same channels and
weights as its prior, trained channel weights), the last two also on the channels without
the collinear ones (fewer channels, more calls each; the better counts): relative error and
unweighting efficiency
(max rule; 0.999 quantile with its overweight fraction), the gain over the best peer.

Part 3, **the amplitude surrogate** (``--surrogate FIT,PROPOSALS``, with jjj at equal
calls): a Bayesian network (VBLinear) regressing log(d sigma / (flat weight x parton
luminosity)) on the trained sampler's points, its pulls on held-out points (as trained and
after calibrating sigma on other held-out points), and two-stage unweighting (surrogate,
raised by a margin k sigma chosen on the calibration points, first; exact |M|^2 only for
the survivors) against one-stage at the same proposals count: exact calls per event and
the chi^2 of the two event samples. The saving cannot pass the one-stage calls per event
(a perfect surrogate needs one call per event), so it is measured on the equal-calls
sampler and on a weaker one without the collinear channels.

Part 4, **distributions** (``--distributions TRAIN_CALLS``, with the Pythia comparison):
hepflows' unweighted events against Pythia's hard-process events, chi^2 per observable
(``--plot-dir``: the histograms).

For l l + 2 jets the channels are the sequential map and the jet variables with the lepton
pair balancing (``--lljj-collinear``: also the jet pair's Delta R on a log map; it did not
pay there, ``multijet_lljj_collinear.json``).
Still to come (issue 23): channels per initial-state group with learned weights.

Usage: ``python benchmarks/multijet.py [--quick] [--out FILE.json]``; the last line of
output is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import vegas

from common import finish, madnis_channels, madnis_single, vegas_channels, vegas_run
from hepflows.generate import LOSS
from hepflows.integrate import NeuralIntegrator
from hepflows.integrate.result import weight_statistics
from hepflows.integrate.surrogate import (
    MARGIN_SIGMA_CAP,
    BayesianRegression,
    SurrogateIntegrand,
    choose_margin,
    fit_surrogate,
    pull_width,
    pulls,
)
from hepflows.integrate.unweighting import choose_wmax, two_stage_unweight, unweight
from hepflows.physics.kinematics import mass, pseudorapidity, pt, rapidity
from hepflows.physics.processes import (
    DrellYanJets,
    DrellYanJetsParameters,
    DrellYanParameters,
    MultiJet,
    MultiJetParameters,
)
from hepflows.physics.pythia import pythia_drell_yan_jet, pythia_jets, pythia_partons
from hepflows.plots import histogram_comparison
from hepflows.stats import two_sample_chi2

#: pp -> e- e+ + 2 jets at equal calls: 60 < m_ee < 120 GeV, jets p_T > 30 GeV and
#: Delta R > 0.4, mu = M_Z (alpha_s fixed at the PDF set's value there).
LLJJ = DrellYanJetsParameters(n_jets=2, pt_min=30.0, dr_min=0.4, scale=91.188,
                              electroweak=DrellYanParameters(zprime=False))
#: The 3-jet amplitude surrogate: VBLinear widths and epoch cap.
SURROGATE_HIDDEN = (64, 64, 64)
SURROGATE_EPOCHS = 150


def pythia_code(incoming: tuple[int, ...], outgoing: tuple[int, ...]) -> int:
    """Pythia's 2 -> 3 process code (131-140) of a hepflows subprocess class."""
    g = 21
    quarks_in = [p for p in incoming if p != g]
    quarks_out = [p for p in outgoing if p != g]
    if not quarks_in:
        return 131 if not quarks_out else 138
    if len(quarks_in) == 1:  # q g
        if len(quarks_out) == 1:
            return 133
        return 140 if len({abs(p) for p in quarks_out}) == 1 else 139
    a, b = quarks_in
    if a == -b:  # q qbar
        if not quarks_out:
            return 132
        return 137 if abs(quarks_out[0]) == abs(a) else 136
    return 135 if a == b else 134


def integrate(mj: MultiJet | DrellYanJets, n_adapt: int, n_eval: int, seed: int) -> dict:
    """VEGAS on the flat variables: sigma (pb), its error, and sigma per class."""
    k = len(mj.classes)

    @vegas.lbatchintegrand
    def f(y: np.ndarray) -> np.ndarray:
        per = mj.class_contributions(torch.from_numpy(np.ascontiguousarray(y)))
        return np.ascontiguousarray(torch.cat((per.sum(0, keepdim=True), per)).T.numpy())

    rng = np.random.default_rng(seed)
    integ = vegas.Integrator([[0, 1]] * mj.dims, ran_array_generator=rng.random)
    t0 = time.perf_counter()
    integ(f, nitn=5, neval=n_adapt // 5)
    result = integ(f, nitn=5, neval=n_eval // 5, adapt=False)
    seconds = time.perf_counter() - t0
    print(integ.settings())
    total = result[0]
    classes = {mj.classes[i].label: (result[i + 1].mean, result[i + 1].sdev) for i in range(k)}
    return {"sigma_pb": total.mean, "error_pb": total.sdev,
            "relative_error": total.sdev / total.mean, "calls": n_adapt + n_eval,
            "seconds": seconds, "by_class": classes,
            "q_value": result.Q}  # fmt: skip


def compare(label: str, params: MultiJetParameters, n_pythia: int, n_adapt: int, n_eval: int,
            seed: int, dist_train: int = 0, plot: Path | None = None) -> dict:
    print(f"\n== {label}: {params}")
    t0 = time.perf_counter()
    pythia, settings = pythia_jets(params, seed=seed + 1)
    ref = pythia_partons(pythia, n_pythia, settings)
    t_py = time.perf_counter() - t0
    print("Pythia settings:", ", ".join(settings))
    print(f"Pythia sigma {ref.sigma_pb:.6g} +- {ref.sigma_err_pb:.3g} pb ({ref.accepted} events, "
          f"{ref.tries} tries, {t_py:.0f} s)")  # fmt: skip
    mj = MultiJet(params)
    print(mj)
    ours = integrate(mj, n_adapt, n_eval, seed)
    pull = (ours["sigma_pb"] - ref.sigma_pb) / math.hypot(ours["error_pb"], ref.sigma_err_pb)
    print(f"hepflows sigma {ours['sigma_pb']:.6g} +- {ours['error_pb']:.3g} pb "
          f"({ours['relative_error']:.2%}, {ours['calls']} calls, {ours['seconds']:.0f} s); "
          f"pull {pull:+.2f}")  # fmt: skip
    out = {"pythia_sigma_pb": ref.sigma_pb, "pythia_error_pb": ref.sigma_err_pb,
           "pythia_events": ref.accepted, "pythia_tries": ref.tries, "pythia_seconds": t_py,
           "pythia_settings": settings, **ours, "pythia_pull": pull}  # fmt: skip
    if params.n_jets == 3:
        table = {}
        codes: dict[int, list[str]] = {}
        for cls in mj.classes:
            code = pythia_code(cls.amplitude.incoming, cls.amplitude.outgoing)
            codes.setdefault(code, []).append(cls.label)
        for code in sorted(set(codes) | set(ref.by_process)):
            labels = codes.get(code, [])
            name, s_py, e_py = ref.by_process.get(code, ("?", 0.0, 0.0))
            s = sum(ours["by_class"][lab][0] for lab in labels)
            e = math.sqrt(sum(ours["by_class"][lab][1] ** 2 for lab in labels))
            p = (s - s_py) / math.hypot(e, e_py) if e or e_py else 0.0
            table[code] = {"process": name, "classes": labels, "pythia_pb": s_py,
                           "pythia_error_pb": e_py,
                           "hepflows_pb": s, "hepflows_error_pb": e, "pull": p}  # fmt: skip
            print(f"  {code} {name:34s} Pythia {s_py:10.5g} +- {e_py:8.3g}  hepflows "
                  f"{s:10.5g} +- {e:8.3g}  pull {p:+.2f}")  # fmt: skip
        out["by_pythia_process"] = table
    if dist_train:
        title = (f"pp -> {params.n_jets} jets, 13 TeV, LO, p_T > {params.pt_min:g} GeV "
                 "(hard process)")  # fmt: skip
        out["distributions"] = distributions(mj, ref, dist_train, seed, plot, title)
    return out


def compare_llj(params: DrellYanJetsParameters, n_pythia: int, n_adapt: int, n_eval: int,
                seed: int, dist_train: int = 0, plot: Path | None = None) -> dict:
    """sigma(pp -> e- e+ + 1 jet) against Pythia's WeakBosonAndParton, per process too."""
    print(f"\n== llj: {params}")
    t0 = time.perf_counter()
    pythia, settings, ew = pythia_drell_yan_jet(params, seed=seed + 1)
    ref = pythia_partons(pythia, n_pythia, settings)
    t_py = time.perf_counter() - t0
    print("Pythia settings:", ", ".join(settings))
    print(f"Pythia sigma {ref.sigma_pb:.6g} +- {ref.sigma_err_pb:.3g} pb ({ref.accepted} events, "
          f"{t_py:.0f} s); electroweak: {ew}")  # fmt: skip
    dy = DrellYanJets(replace(params, electroweak=ew))
    print(dy)
    ours = integrate(dy, n_adapt, n_eval, seed)
    pull = (ours["sigma_pb"] - ref.sigma_pb) / math.hypot(ours["error_pb"], ref.sigma_err_pb)
    print(f"hepflows sigma {ours['sigma_pb']:.6g} +- {ours['error_pb']:.3g} pb "
          f"({ours['relative_error']:.2%}, {ours['calls']} calls, {ours['seconds']:.0f} s); "
          f"pull {pull:+.2f}")  # fmt: skip
    table = {}
    for code, (name, s_py, e_py) in ref.by_process.items():
        gluon_in = "q g" in name
        picked = [c.label for c in dy.classes if (21 in c.amplitude.incoming) == gluon_in]
        s = sum(ours["by_class"][lab][0] for lab in picked)
        e = math.sqrt(sum(ours["by_class"][lab][1] ** 2 for lab in picked))
        p = (s - s_py) / math.hypot(e, e_py)
        table[code] = {"process": name, "pythia_pb": s_py, "pythia_error_pb": e_py,
                       "hepflows_pb": s, "hepflows_error_pb": e, "pull": p}  # fmt: skip
        print(f"  {code} {name:30s} Pythia {s_py:9.5g} +- {e_py:7.3g}  hepflows {s:9.5g} "
              f"+- {e:7.3g}  pull {p:+.2f}")  # fmt: skip
    out = {"pythia_sigma_pb": ref.sigma_pb, "pythia_error_pb": ref.sigma_err_pb,
           "pythia_events": ref.accepted, "pythia_seconds": t_py, "pythia_settings": settings,
           **ours, "pythia_pull": pull, "by_pythia_process": table}  # fmt: skip
    if dist_train:
        title = ("pp -> e+e- + 1 jet, 13 TeV, LO, 60 < m_ee < 120 GeV, jet p_T > 30 GeV "
                 "(hard process)")  # fmt: skip
        out["distributions"] = distributions(dy, ref, dist_train, seed, plot, title)
    return out


def peer_gains(table: dict, peers: list[str]) -> dict:
    """hepflows' unweighting efficiency over the best peer's (max rule and 0.999 quantile,
    each against the peer best under that rule) and the relative-error ratio."""
    ours = table["hepflows"]
    best = max(peers, key=lambda k: table[k]["unweighting_efficiency"])
    best_q = max(peers, key=lambda k: table[k]["unweighting_efficiency_quantile"])
    gain = ours["unweighting_efficiency"] / table[best]["unweighting_efficiency"]
    gain_q = (ours["unweighting_efficiency_quantile"]
              / table[best_q]["unweighting_efficiency_quantile"])  # fmt: skip
    lowest_error = min(table[k]["relative_error"] for k in peers)
    print(f"  unweighting vs the best peer: {gain:.1f}x ({best}, max rule), {gain_q:.1f}x "
          f"({best_q}, 0.999 quantile); relative error vs the best peer's: "
          f"{ours['relative_error'] / lowest_error:.2f}")  # fmt: skip
    return {"best_peer": best, "unweighting_gain_vs_best_peer": gain,
            "best_peer_quantile_rule": best_q, "unweighting_gain_vs_best_peer_quantile": gain_q,
            "error_ratio_vs_best_peer": lowest_error / ours["relative_error"]}


def group_channel_run(mj: MultiJet, n_train: int, n_eval: int, seed: int, weights: str
                      ) -> dict:
    """hepflows on the jet channels once per initial-state group (``MultiJet.group_channels``:
    78 for three jets) with ``weights`` ("prior" or "learned") and channel dropping below
    0.1 % of the integral, at the same calls (docs/multijet.md: not usable at 7e4 calls)."""
    channels = mj.group_channels()
    t0 = time.perf_counter()
    ni = NeuralIntegrator(mj, mj.dims, seed=seed, channels=channels, loss=LOSS, weights=weights,
                          drop_channels=1e-3, **mj.training_options)  # fmt: skip
    ni.train(n_train, progress=False)
    res = ni.integrate(n_eval)
    dropped = list(ni.dropped_channels)
    out = {"channels": len(channels), "weights": weights, "dropped": len(dropped),
           "dropped_channels": [[name, share] for name, share in dropped],
           "sigma_pb": res.value, "error_pb": res.error,
           "relative_error": res.error / res.value,
           "unweighting_efficiency": res.unweighting_efficiency,
           "unweighting_efficiency_quantile": res.unweighting_efficiency_quantile,
           "calls": res.total_calls, "seconds": time.perf_counter() - t0}  # fmt: skip
    print(f"  hepflows, {len(channels)} group channels ({weights} weights, {len(dropped)} "
          f"dropped): sigma {res.value:.6g} +- {res.error:.3g} ({out['relative_error']:.3%}), "
          f"unweighting {res.unweighting_efficiency:.4f} (max) / "
          f"{res.unweighting_efficiency_quantile:.4f} (0.999 quantile), {out['seconds']:.0f} s")
    return out


def equal_calls(label: str, mj: MultiJet | DrellYanJets, n_train: int, n_eval: int,
                seed: int, surrogate: tuple[int, int] | None = None,
                with_peers: bool = True, group_weights: tuple[str, ...] = (),
                with_collinear: bool | None = None) -> dict:
    """hepflows multi-channel NIS (jet channels, mixture weights) against VEGAS on the flat
    variables, same calls (training + evaluation, all counted); sigma, relative error and
    the unweighting efficiency of the evaluation sample (w_max = max; the 0.999 quantile
    with its overweight fraction)."""
    print(f"\n== {label} at equal calls: {n_train} training + {n_eval} evaluation")
    t0 = time.perf_counter()
    channels = mj.jet_channels() if with_collinear is None else mj.jet_channels(
        collinear=with_collinear)  # fmt: skip
    collinear = any("collinear" in ch.name for ch in channels)
    ni = NeuralIntegrator(mj, mj.dims, seed=seed, channels=channels, loss=LOSS,
                          weights="mixture", **mj.training_options)  # fmt: skip
    print(f"  hepflows: {len(channels)} channels ({', '.join(ch.name for ch in channels)}), "
          f"mixture weights, {ni.trainer.describe()}")  # fmt: skip
    ni.train(n_train, progress=False)
    res = ni.integrate(n_eval)
    ours = {"sigma_pb": res.value, "error_pb": res.error, "relative_error": res.error / res.value,
            "unweighting_efficiency": res.unweighting_efficiency,
            "unweighting_efficiency_quantile": res.unweighting_efficiency_quantile,
            "overweight_fraction": res.overweight_fraction, "calls": res.total_calls,
            "channels": [ch.name for ch in ni.channels], "trainer": ni.trainer.describe(),
            "seconds": time.perf_counter() - t0}
    print(res.summary())
    peers = {"vegas": lambda: vegas_run(mj, mj.dims, n_train, n_eval, seed)}
    if len(channels) > 1:
        peers["vegas_per_channel"] = lambda: vegas_channels(mj, channels, mj.dims, n_train,
                                                            n_eval, seed)  # fmt: skip
        peers["madnis_multichannel"] = lambda: madnis_channels(mj, channels, mj.dims, n_train,
                                                               n_eval, seed)  # fmt: skip
        if collinear:  # the peers also on the fewer channels without
            basic = mj.jet_channels(collinear=False)  # the collinear ones: their best counts
            peers["vegas_per_channel_basic"] = lambda: vegas_channels(
                mj, basic, mj.dims, n_train, n_eval, seed)  # fmt: skip
            peers["madnis_multichannel_basic"] = lambda: madnis_channels(
                mj, basic, mj.dims, n_train, n_eval, seed)  # fmt: skip
    else:  # one channel: the process' own map (l l + jets: the Z Breit-Wigner and 1/s)
        peers["madnis"] = lambda: madnis_single(mj, mj.dims, n_train, n_eval, seed)
    table = {"hepflows": ours}
    if not with_peers:  # the surrogate study alone (--skip-peers)
        peers = {}
    for name, run in peers.items():
        peer = run()
        w = peer["w"] if isinstance(peer["w"], torch.Tensor) else torch.from_numpy(peer["w"])
        st = weight_statistics(w, 0.999)
        table[name] = {"sigma_pb": peer["integral"], "error_pb": peer["error"],
                       "relative_error": peer["error"] / peer["integral"],
                       "unweighting_efficiency": st["unweighting_efficiency"],
                       "unweighting_efficiency_quantile": st["unweighting_efficiency_quantile"],
                       "overweight_fraction": st["overweight_fraction"], "calls": peer["calls"],
                       "seconds": peer["seconds"]}  # fmt: skip
    for name, r in table.items():
        print(f"  {name:19s} sigma {r['sigma_pb']:.6g} +- {r['error_pb']:.3g} "
              f"({r['relative_error']:.3%}), unweighting {r['unweighting_efficiency']:.4f} "
              f"(max) / {r['unweighting_efficiency_quantile']:.4f} (0.999 quantile, "
              f"{r['overweight_fraction']:.2%} over), {r['calls']} calls, "
              f"{r['seconds']:.0f} s")  # fmt: skip
    out: dict = {**table}
    if peers:
        out.update(peer_gains(table, list(peers)))
    for mode in group_weights if isinstance(mj, MultiJet) else ():
        out[f"group_channels_{mode}"] = group_channel_run(mj, n_train, n_eval, seed, mode)
    if surrogate is not None:
        out["surrogate"] = two_stage(ni, mj, *surrogate, seed)
        if collinear:
            # the saving cannot pass the one-stage calls per event: the same study on the
            # weaker sampler without the collinear channels (same training calls)
            print("\n  the same on a sampler without the collinear channels:")
            plain = NeuralIntegrator(mj, mj.dims, seed=seed, channels=mj.jet_channels(
                collinear=False), loss=LOSS, weights="mixture", **mj.training_options)
            plain.train(n_train, progress=False)
            out["surrogate_without_collinear_channels"] = two_stage(plain, mj, *surrogate, seed)
    return out


def observables(jets: torch.Tensor, leptons: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Per-event observables of (N, k, 4) jets ordered by p_T (and (N, 2, 4) l-, l+): the
    leading jet's p_T; two jets (equal p_T: "leading" is arbitrary, so only symmetric
    functions): the pair's rapidity (y_1 + y_2) / 2 and |y_1 - y_2|; else the leading
    jet's eta; three: the smallest Delta R and the third jet's p_T; leptons: m_ll."""
    out = {"lead_pt": pt(jets[:, 0])}
    k = jets.shape[1]
    if k == 2:
        y1, y2 = rapidity(jets[:, 0]), rapidity(jets[:, 1])
        out["pair_y"] = 0.5 * (y1 + y2)
        out["abs_dy"] = (y1 - y2).abs()
    else:
        out["lead_eta"] = pseudorapidity(jets[:, 0])
    if k == 3:
        eta, phi = pseudorapidity(jets), torch.atan2(jets[..., 2], jets[..., 1])
        dr = []
        for i, j in ((0, 1), (0, 2), (1, 2)):
            dphi = torch.remainder(phi[:, i] - phi[:, j] + math.pi, 2 * math.pi) - math.pi
            dr.append(torch.hypot(eta[:, i] - eta[:, j], dphi))
        out["min_dr"] = torch.stack(dr, 1).min(1).values
        out["third_pt"] = pt(jets[:, 2])
    if leptons is not None:
        out["m_ll"] = mass(leptons[:, 0] + leptons[:, 1])
    return out


def _edges(name: str, pt_min: float) -> np.ndarray:
    """Bins of an observable: p_T from the cut to 6 times it (log), eta in [-3, 3], the
    pair's y in [-2.5, 2.5], |dy| in [0, 5], Delta R in [0.4, 4], m_ll in [60, 120] GeV."""
    if name.endswith("_pt"):
        return np.geomspace(pt_min, 6 * pt_min, 16)
    return {"lead_eta": np.linspace(-3, 3, 13), "pair_y": np.linspace(-2.5, 2.5, 11),
            "abs_dy": np.linspace(0, 5, 11),
            "min_dr": np.linspace(0.4, 4.0, 13), "m_ll": np.linspace(60, 120, 16)}[name]


#: Most hepflows events compared with Pythia's (all of Pythia's count).
DISTRIBUTION_EVENTS = 50_000


#: Axis labels of the observables in the plots.
LABELS = {"lead_pt": "leading jet $p_T$ [GeV] [log]", "lead_eta": "leading jet $\\eta$",
          "pair_y": "$(y_1 + y_2) / 2$", "abs_dy": "$|y_1 - y_2|$",
          "min_dr": "smallest $\\Delta R$", "third_pt": "third jet $p_T$ [GeV] [log]",
          "m_ll": "$m_{ee}$ [GeV]"}  # fmt: skip


def distributions(process: MultiJet | DrellYanJets, reference: object, n_train: int,
                  seed: int, plot: Path | None = None, title: str = "") -> dict:
    """hepflows' unweighted events (NeuralIntegrator on the process' jet channels, mixture
    weights, its training options) against Pythia's hard-process events ``reference``
    (:class:`~hepflows.physics.pythia.PythiaPartons`; as many events, at most
    :data:`DISTRIBUTION_EVENTS`): chi^2 per observable (weighted: our overweights count)."""
    n_ref = len(reference.partons)
    n = min(n_ref, DISTRIBUTION_EVENTS)
    t0 = time.perf_counter()
    ni = NeuralIntegrator(process, process.dims, seed=seed + 11, channels=process.jet_channels(),
                          loss=LOSS, weights="mixture", **process.training_options)  # fmt: skip
    ni.train(n_train, progress=False)
    events = ni.generate(n, progress=False)
    p, _ = process.momenta(events.x)
    seconds = time.perf_counter() - t0
    if isinstance(process, MultiJet):
        jets, leptons = p[:, 2:], None
    else:
        jets, leptons = p[:, 4:], p[:, 2:4]
    jets = jets.gather(1, pt(jets).argsort(1, descending=True)[..., None].expand(-1, -1, 4))
    ours = observables(jets, leptons)
    theirs = observables(reference.partons, reference.leptons)
    pt_min = float(process.params.pt_min)
    out: dict = {"events": n, "pythia_events": n_ref, "train_calls": n_train, "calls": events.calls,
                 "efficiency": events.efficiency, "seconds": seconds, "chi2": {}}  # fmt: skip
    for name in ours:
        c2, ndf, pv = two_sample_chi2(ours[name], theirs[name], _edges(name, pt_min),
                                      events.weights.abs().double(),
                                      torch.ones(n_ref, dtype=torch.float64))  # fmt: skip
        out["chi2"][name] = {"chi2": c2, "ndf": ndf, "chi2_per_ndf": c2 / ndf, "p_value": pv}
    out["worst_chi2_per_ndf"] = max(v["chi2_per_ndf"] for v in out["chi2"].values())
    if plot is not None:
        binning = {k: (float(_edges(k, pt_min)[0]), float(_edges(k, pt_min)[-1]),
                       len(_edges(k, pt_min)) - 1, LABELS[k]) for k in ours}  # fmt: skip
        histogram_comparison({"Pythia 8.317": theirs, "hepflows": ours}, binning, plot,
                             title=title, chi2={k: (v["chi2"], v["ndf"])
                                                for k, v in out["chi2"].items()})  # fmt: skip
        out["plot"] = str(plot)
    print(f"  distributions, {n} hepflows events ({events.calls} calls + {n_train} training, "
          f"{seconds:.0f} s) vs {n_ref} Pythia events: " + ", ".join(
              f"{k} {v['chi2']:.1f}/{v['ndf']}" for k, v in out["chi2"].items()))
    return out


def lead_jet(mj: MultiJet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Leading-parton p_T and eta of flat points x (N, dims): two (N,)."""
    p = mj.momenta(x)[0][:, 2:]
    pts = pt(p)
    i = pts.argmax(1, keepdim=True)
    return {"pt": pts.gather(1, i)[:, 0], "eta": pseudorapidity(p).gather(1, i)[:, 0]}


def two_stage(ni: NeuralIntegrator, mj: MultiJet, n_fit: int, n_eval: int, seed: int) -> dict:
    """Bayesian surrogate of log(f / base) on the trained sampler's points (70 % to train,
    15 % to calibrate its uncertainties, 15 % to test the pulls); then one-stage against
    two-stage unweighting of two independent sets of ``n_eval`` proposals, under the 0.999
    quantile rule and the max rule (the same rule in each stage): exact |M|^2 calls per
    accepted event and the chi^2 of the two event samples' leading-parton p_T and eta."""
    print(f"\n== surrogate: {n_fit} exact points from the trained sampler, "
          f"{n_eval} proposals to unweight")  # fmt: skip
    t0 = time.perf_counter()
    x, log_q_fit = ni.propose(n_fit)
    feat, base = mj.factorised(x)
    f = mj(x)
    ok = (base > 0) & (f > 0)
    y = torch.log(f[ok] / base[ok])
    feat = feat[ok]
    log_w = torch.log(base[ok]) - log_q_fit[ok]  # log(base / q): the first stage's odds
    n_tr, n_cal = int(0.7 * len(y)), int(0.85 * len(y))  # train, calibrate, test
    model = BayesianRegression(feat.shape[1], hidden=SURROGATE_HIDDEN, seed=seed)
    fit = fit_surrogate(model, feat[:n_tr], y[:n_tr], epochs=SURROGATE_EPOCHS, seed=seed)
    t_fit = time.perf_counter() - t0
    test_x, test_y = feat[n_cal:], y[n_cal:]
    raw = pull_width(pulls(model, test_x, test_y))
    factor = model.calibrate(feat[n_tr:n_cal], y[n_tr:n_cal])
    p = pulls(model, test_x, test_y)
    mean, sigma = model.predict(test_x)
    resid = (mean - test_y).abs()
    width = pull_width(p)
    print(f"  surrogate {SURROGATE_HIDDEN}, {fit.epochs_run} epochs ({t_fit:.0f} s with the "
          f"exact calls); on {len(test_y)} test points: pull width {raw:.3f} as trained, "
          f"{width:.3f} after calibrating on {n_cal - n_tr} others (sigma x {factor:.3f}); "
          f"pull std {float(p.std()):.3f}, median |residual| {float(resid.median()):.4f}, "
          f"median sigma {float(sigma.median()):.4f}")  # fmt: skip

    # the margin k sigma of the surrogate, chosen on the calibration points (not the test ones)
    margin, expected = choose_margin(model, feat[n_tr:n_cal], y[n_tr:n_cal],
                                     log_w[n_tr:n_cal])  # fmt: skip
    print(f"  margin k = {margin:g} sigma (cap {MARGIN_SIGMA_CAP:g}) chosen on the calibration "
          "points; expected stage-2 acceptance " + ", ".join(
              f"{k:g}: {v:.3f}" for k, v in expected.items()))  # fmt: skip
    g = torch.Generator().manual_seed(seed + 7)
    x, log_q = ni.propose(n_eval)  # one-stage; two-stage on an independent draw (chi^2)
    t0 = time.perf_counter()
    f = mj(x)
    t_exact = time.perf_counter() - t0
    w = f * torch.exp(-log_q)
    x2, log_q2 = ni.propose(n_eval)
    surrogate = SurrogateIntegrand(mj.factorised, model, margin)
    edges = {"pt": np.linspace(mj.params.pt_min, 4 * mj.params.pt_min, 16),
             "eta": np.linspace(-2.5, 2.5, 11)}  # fmt: skip
    by_rule = {}
    for rule in ("quantile", "max"):  # the same two proposal sets under each w_max rule
        one_x, one_w = unweight(x, w, choose_wmax(w, rule, 0.999), g)
        t0 = time.perf_counter()
        two = two_stage_unweight(x2, log_q2, surrogate, mj, rule=rule, quantile=0.999,
                                 generator=g)  # fmt: skip
        t_two = time.perf_counter() - t0
        one_calls = n_eval / len(one_x)
        saving = one_calls / two.exact_calls_per_event
        chi2 = {}
        a, b = lead_jet(mj, one_x), lead_jet(mj, two.x)
        for k, e in edges.items():
            c2, ndf, pv = two_sample_chi2(a[k], b[k], e, one_w.abs(), two.weights)
            chi2[k] = {"chi2": c2, "ndf": ndf, "chi2_per_ndf": c2 / ndf, "p_value": pv}
        name = "0.999 quantile" if rule == "quantile" else "max"
        print(f"  [{name} rule] one-stage: {len(one_x)} events from {n_eval} exact calls "
              f"({one_calls:.1f} per event, efficiency {len(one_x) / n_eval:.4f}; {t_exact:.0f} s "
              f"of |M|^2)")  # fmt: skip
        print(f"  [{name} rule] two-stage: {len(two.x)} events from {two.exact_calls} exact "
              f"calls ({two.exact_calls_per_event:.2f} per event; stage 1 "
              f"{two.efficiency_surrogate:.4f}, stage 2 {two.efficiency_correction:.3f}, "
              f"{two.overweight_fraction:.2%} over; {t_two:.0f} s): exact-call saving "
              f"{saving:.2f}x (a perfect surrogate: {one_calls:.2f}x)")  # fmt: skip
        print(f"  [{name} rule] two-stage vs one-stage events: " + ", ".join(
            f"{k} chi2/ndf {v['chi2']:.1f}/{v['ndf']} (p {v['p_value']:.2f})"
            for k, v in chi2.items()))  # fmt: skip
        by_rule[rule] = {
            "one_stage": {"events": len(one_x), "exact_calls": n_eval,
                          "exact_calls_per_event": one_calls,
                          "overweight_fraction": float((one_w.abs() > 1).double().mean())},
            "two_stage": {"events": len(two.x), "exact_calls": two.exact_calls,
                          "exact_calls_per_event": two.exact_calls_per_event,
                          "efficiency_surrogate": two.efficiency_surrogate,
                          "efficiency_correction": two.efficiency_correction,
                          "overweight_fraction": two.overweight_fraction, "seconds": t_two},
            "saving_of_a_perfect_surrogate": one_calls,
            "stage2_acceptance_needed_for_5x": 5 / one_calls,
            "exact_call_saving": saving, "chi2_two_vs_one_stage": chi2}  # fmt: skip
    # the same proposals without the margin (0.999 quantile rule): what the margin adds
    plain = two_stage_unweight(x2, log_q2, SurrogateIntegrand(mj.factorised, model),
                               mj, rule="quantile", quantile=0.999,
                               generator=torch.Generator().manual_seed(seed + 8))  # fmt: skip
    one_calls = by_rule["quantile"]["saving_of_a_perfect_surrogate"]
    needed = 5 / one_calls
    print(f"  without the margin: {plain.exact_calls_per_event:.2f} per event (stage 2 "
          f"{plain.efficiency_correction:.3f}): saving "
          f"{one_calls / plain.exact_calls_per_event:.2f}x. A perfect surrogate saves at most "
          f"{one_calls:.2f}x here (one exact call per event): "
          + (f"5x needs a stage-2 acceptance >= {needed:.3f}" if needed <= 1
             else "5x is out of reach of any surrogate"))  # fmt: skip
    return {"fit_points": int(len(y)), "hidden": list(SURROGATE_HIDDEN),
            "epochs_run": fit.epochs_run, "fit_seconds": t_fit, "pull_width": width,
            "pull_width_uncalibrated": raw, "sigma_calibration_factor": factor,
            "train_calibrate_test": [n_tr, n_cal - n_tr, len(test_y)],
            "pull_std": float(p.std()), "median_abs_residual": float(resid.median()),
            "median_sigma": float(sigma.median()), "proposals": n_eval,
            **by_rule["quantile"], "max_rule": by_rule["max"],
            "margin_sigma": margin, "margin_cap": MARGIN_SIGMA_CAP,
            "expected_stage2_acceptance_by_margin": expected,
            "without_margin": {"exact_calls_per_event": plain.exact_calls_per_event,
                               "efficiency_correction": plain.efficiency_correction,
                               "exact_call_saving": one_calls / plain.exact_calls_per_event}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer events and calls")
    ap.add_argument("--pt-min", type=float, default=100.0)
    ap.add_argument("--scale", type=float, default=100.0, help="fixed mu_R = mu_F (GeV)")
    ap.add_argument("--processes", default="jj,jjj,llj,lljj",
                    help="which of jj, jjj, llj (e+ e- + 1 jet: 60 < m_ee < 120, jet p_T > 30 GeV, "
                         "mu = M_Z), lljj (+ 2 jets, Delta R > 0.4: equal calls only)")
    ap.add_argument("--equal-calls", default="20000,50000",
                    help="training,evaluation calls of the NIS-vs-VEGAS comparison ('' to skip)")
    ap.add_argument("--distributions", type=float, default=2e4,
                    help="training calls of the flow whose events are compared with Pythia's "
                         "(as many events as Pythia's; 0 to skip)")
    ap.add_argument("--plot-dir", type=Path, default=None,
                    help="write multijet_<process>.png there: hepflows' events against Pythia's")
    ap.add_argument("--surrogate", default="50000,200000",
                    help="exact points to fit the 3-jet surrogate on, proposals for two-stage "
                         "unweighting ('' to skip; needs jjj in --processes and --equal-calls)")
    ap.add_argument("--skip-pythia", action="store_true",
                    help="only the equal-call comparison (no sigma against Pythia)")
    ap.add_argument("--skip-peers", action="store_true",
                    help="hepflows alone at equal calls (e.g. to repeat the surrogate study "
                         "with another --seed); no gain over the peers is reported")
    ap.add_argument("--lljj-collinear", action="store_true",
                    help="l l + 2 jets also with the jet pair's collinear channel (off by "
                         "default: measured not to pay, docs/multijet.md)")
    ap.add_argument("--group-channels", default="",
                    help="also run hepflows on the jet channels per initial-state group with "
                         "these channel weights (comma list of prior, learned; '' to skip)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result: dict = {"date": datetime.date.today().isoformat(), "quick": args.quick,
                    "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                               f"torch {torch.__version__}", "seed": args.seed}  # fmt: skip
    # alpha_s from the PDF set at the fixed scale, handed to Pythia as its fixed value
    alpha_s = float(MultiJet(n_jets=2, alpha_s=0.1).pdf.alpha_s(args.scale**2))
    result["alpha_s"] = alpha_s
    print(f"alpha_s(mu = {args.scale} GeV) = {alpha_s:.5f} (NNPDF2.3 LO grid), fixed in both")
    # (Pythia events, VEGAS adapting calls, VEGAS final calls)
    budgets = {"jj": (2e4, 4e4, 2e4) if args.quick else (2e5, 1e5, 5e5),
               "jjj": (1e3, 5e4, 5e4) if args.quick else (2e4, 2e5, 8e5),
               "llj": (2e4, 4e4, 4e4) if args.quick else (2e5, 2e5, 8e5)}  # fmt: skip
    keys = args.processes.split(",")
    def plot_path(key: str) -> Path | None:
        return None if args.plot_dir is None else args.plot_dir / f"multijet_{key}.png"

    unknown = set(keys) - {*budgets, "lljj"}
    if unknown:
        raise SystemExit(f"unknown process {sorted(unknown)}: choose from jj, jjj, llj, lljj")
    for key in [] if args.skip_pythia else keys:
        if key not in budgets:
            continue  # lljj: equal calls only
        n_py, n_adapt, n_eval = (int(v) for v in budgets[key])
        if key == "llj":
            mz = 91.188
            a_z = float(MultiJet(n_jets=2, alpha_s=0.1).pdf.alpha_s(mz**2))
            params = DrellYanJetsParameters(n_jets=1, pt_min=30.0, scale=mz, alpha_s=a_z,
                                            electroweak=DrellYanParameters(zprime=False))
            result[key] = compare_llj(params, n_py, n_adapt, n_eval, args.seed,
                                      int(args.distributions), plot_path(key))  # fmt: skip
            continue
        n = {"jj": 2, "jjj": 3}[key]
        params = MultiJetParameters(n_jets=n, pt_min=args.pt_min, scale=args.scale,
                                    alpha_s=alpha_s, dr_min=0.4 if n == 3 else 0.0)  # fmt: skip
        result[key] = compare(key, params, n_py, n_adapt, n_eval, args.seed,
                              int(args.distributions), plot_path(key))  # fmt: skip
    if args.equal_calls:
        n_train, n_eval = (int(v) for v in args.equal_calls.split(","))
        for key in ("jj", "jjj", "lljj"):
            if key not in keys:
                continue
            if key == "lljj":
                process = DrellYanJets(LLJJ, alpha_s=float(MultiJet(n_jets=2).pdf.alpha_s(
                    LLJJ.scale**2)))  # fmt: skip
            else:
                n = {"jj": 2, "jjj": 3}[key]
                process = MultiJet(MultiJetParameters(n_jets=n, pt_min=args.pt_min,
                                                      scale=args.scale, alpha_s=alpha_s,
                                                      dr_min=0.4 if n == 3 else 0.0))
            sur = (tuple(int(float(v)) for v in args.surrogate.split(","))
                   if args.surrogate and key == "jjj" else None)  # fmt: skip
            result[f"{key}_equal_calls"] = equal_calls(key, process, n_train, n_eval,
                                                       args.seed, sur,
                                                       not args.skip_peers,
                                                       tuple(filter(None, args.group_channels
                                                                    .split(","))),
                                                       True if key == "lljj"
                                                       and args.lljj_collinear
                                                       else None)  # fmt: skip
    result["unweighting_gain_vs_best_peer"] = {
        k: result[f"{k}_equal_calls"]["unweighting_gain_vs_best_peer"]
        for k in ("jj", "jjj", "lljj")
        if "unweighting_gain_vs_best_peer" in result.get(f"{k}_equal_calls", {})}  # fmt: skip
    if "jjj_equal_calls" in result and "surrogate" in result["jjj_equal_calls"]:
        sur_out = result["jjj_equal_calls"]["surrogate"]
        result["surrogate_pull_width"] = sur_out["pull_width"]  # calibrated, on test points
        result["surrogate_pull_width_uncalibrated"] = sur_out["pull_width_uncalibrated"]
        result["two_stage_exact_call_saving"] = sur_out["exact_call_saving"]
        result["two_stage_saving_of_a_perfect_surrogate"] = sur_out[
            "saving_of_a_perfect_surrogate"]
        result["two_stage_exact_call_saving_max_rule"] = sur_out["max_rule"]["exact_call_saving"]
        weaker = result["jjj_equal_calls"].get("surrogate_without_collinear_channels")
        if weaker is not None:
            result["two_stage_exact_call_saving_without_collinear_channels"] = weaker[
                "exact_call_saving"]
            result["two_stage_exact_call_saving_without_collinear_channels_max_rule"] = weaker[
                "max_rule"]["exact_call_saving"]
    done = [k for k in ("jj", "jjj", "llj") if k in result]
    result["pythia_pull"] = {k: result[k]["pythia_pull"] for k in done}
    result["relative_error"] = {k: result[k]["relative_error"] for k in done}
    result["worst_chi2_per_ndf"] = {k: result[k]["distributions"]["worst_chi2_per_ndf"]
                                    for k in done if "distributions" in result[k]}
    finish(result, args.out)


if __name__ == "__main__":
    main()
