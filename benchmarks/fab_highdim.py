"""FAB in high dimensions (imported by benchmarks/fab.py): the 8-D t tbar matrix element and
the 32-D Many-Well, at equal budgets of target evaluations.

Budgets count every density and every gradient evaluation of the target (an
HMC leapfrog step costs one of each). After training, every method draws the
same number of fresh points:

* t tbar (8-D, unit cube): ESS/N of the weights p/q on ``n_eval`` fresh flow
  points and ESS per target evaluation = ESS / (training + evaluation calls);
  the integral in pb against the reference (VEGAS in the resonant variables);
  and how each sampler covers p, from 10^6 reference points distributed like p
  (:func:`forward_reference`): the forward ESS/N, the share of sigma where
  q < 0.1 p / sigma, and the share of the fresh points on both top ridges;
* Many-Well (32-D, R^d): |log Z error| of the importance estimate on the
  fresh points, the reverse ESS/N on them, the forward ESS on exact samples
  (it sees dropped modes, the reverse ESS cannot), and the sign patterns of
  the 16 wells hit by the flow's draws vs by as many exact draws.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from common import vegas_run
from hepflows.integrate import (
    FAB,
    ManyWell,
    NeuralIntegrator,
    PathwiseKL,
    forward_ess,
    log_z_estimate,
    normalised_ess,
)

#: FAB on the Many-Well as the FAB paper: AIS with 4 intermediate distributions, 5 HMC
#: (leapfrog) steps each.
MW_FAB = {"intermediate": 4, "leapfrog": 5, "batch_size": 1024}
#: FAB on t tbar as Kofler et al.: 2 intermediate distributions, 3 leapfrog steps, batch 1000,
#: 2 replay steps per AIS pass. The library's 16 (used up to fab_ttbar_1e7.json) gave a higher
#: reverse ESS but a flow concentrated on the few points of each pass: forward ESS 2e-9 and
#: sigma 20 % low at 1e6 calls (fab_ttbar_forward.json); with 2, a one-seed probe gave forward
#: ESS 3.6e-5 and sigma within 0.1 standard errors.
TT_FAB = {"intermediate": 2, "leapfrog": 3, "batch_size": 1000, "replay_steps": 2}

SETTINGS_HD = {
    "many_well": {
        "fab": f"NeuralIntegrator(domain='real', trainer=FAB({MW_FAB})): AIS towards p^2/q with "
        "4 intermediate distributions x 5 leapfrog steps (the FAB paper), replay buffer, "
        "16 replay steps per AIS batch, lr 1e-2 cosine",
        "variance": "NeuralIntegrator(domain='real') defaults: variance loss, 7 buffered steps",
        "rkl_reparam": "NeuralIntegrator(domain='real', trainer=PathwiseKL()): reverse KL, "
        "pathwise gradient",
        "flow": "every method: RQS coupling flow, Gaussian base, splines on [-5, 5], 12 "
        "transforms, 8 bins, hidden (32, 32) (the paper: RealNVP, 10 layers of width 320)",
    },
    "ttbar": {
        "fab": f"FAB({TT_FAB}) (Kofler et al.: alpha = 2, 2 intermediate, 3 leapfrog, batch "
        "1000, 2 updates per AIS pass), lr 1e-2 cosine",
        "variance": "NeuralIntegrator defaults: variance loss, 7 buffered steps (no VEGAS in 8-D)",
        "rkl_reparam": "PathwiseKL defaults",
        "vegas": "vegas.Integrator([[0, 1]] * 8), nitn=10 over the training budget, then one "
        "adapt=False pass over the evaluation budget",
        "flow": "every flow: RQS coupling, uniform base, 8 transforms, 8 bins, hidden (32, 32)",
    },
}


def _flow(target, dims: int, method: str, seed: int, domain: str, fab: dict) -> NeuralIntegrator:
    trainer = {"fab": lambda: FAB(**fab), "rkl_reparam": PathwiseKL, "variance": lambda: None}
    made = trainer[method]()
    kw = {"seed": seed, "domain": domain}
    if made is None:
        return NeuralIntegrator(target, dims, loss="variance", vegas=False, **kw)
    return NeuralIntegrator(target, dims, trainer=made, **kw)


def _sample(integ: NeuralIntegrator, target, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n fresh flow points and their log weights log p~ - log q (without training calls)."""
    with torch.no_grad():
        xs, lws = [], []
        for i in range(0, n, 100_000):
            x, log_q = integ.flow_sample(min(100_000, n - i))
            lws.append(target.log_prob(x) - log_q)
            xs.append(x)
    return torch.cat(xs), torch.cat(lws)


# ------------------------------------------------------------------ Many-Well
def many_well_run(method: str, budget: int, n_eval: int, seed: int, exact: torch.Tensor) -> dict:
    mw = ManyWell(32)
    t = time.perf_counter()
    integ = _flow(mw, 32, method, seed, "real", MW_FAB)
    integ.train(calls=budget, progress=False)
    train_s = time.perf_counter() - t
    x, lw = _sample(integ, mw, n_eval)
    with torch.no_grad():
        log_q_exact = integ.flow.log_prob(exact.to(integ.flow.dtype)).double()
    return {
        "log_z_error": log_z_estimate(lw) - mw.log_z,
        "ess_fraction": normalised_ess(lw),
        "forward_ess": forward_ess(mw.log_prob(exact), log_q_exact),
        "modes_hit": int(mw.modes(x).unique().numel()),
        "train_calls": integ.total_calls,
        "grad_calls": integ.grad_calls,
        "train_seconds": train_s,
        "seconds": time.perf_counter() - t,
    }


#: The methods trained on the Many-Well.
MW_METHODS = ("fab", "variance", "rkl_reparam")
#: The methods run on t tbar.
TT_METHODS = ("fab", "variance", "rkl_reparam", "vegas")


def many_well(budgets: list[int], seeds: list[int], n_eval: int,
              saved: Callable[[dict], None] = lambda block: None,
              methods: tuple[str, ...] = MW_METHODS) -> dict:  # fmt: skip
    """The methods at every budget and seed on the 32-D Many-Well; medians over seeds.
    ``saved(block)`` after each method and budget (a partial result survives a cut-off
    run)."""
    mw = ManyWell(32)
    exact = mw.sample(n_eval, torch.Generator().manual_seed(2024))
    block: dict = {"log_z": mw.log_z, "n_eval": n_eval,
                   "modes_hit_exact": int(mw.modes(exact).unique().numel()),
                   "budgets": {}}  # fmt: skip
    print(f"many_well: log Z = {mw.log_z:.4f}; {n_eval:,} exact draws hit "
          f"{block['modes_hit_exact']:,} of 65,536 sign patterns")  # fmt: skip
    print(f"{'budget':>8} {'method':<12} {'|dlogZ|':>8} {'ESS/N':>7} {'fwd ESS':>8} "
          f"{'modes':>6} {'time s':>7}")  # fmt: skip
    for budget in budgets:
        rows = {}
        for method in methods:
            runs = [many_well_run(method, budget, n_eval, s, exact) for s in seeds]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            med["abs_log_z_error"] = statistics.median(abs(r["log_z_error"]) for r in runs)
            med["per_seed"] = runs
            rows[method] = med
            block["budgets"][str(budget)] = rows  # a cut-off run keeps the methods done
            saved(block)
            print(f"{budget:>8.0e} {method:<12} {med['abs_log_z_error']:>8.4f} "
                  f"{med['ess_fraction']:>7.3f} {med['forward_ess']:>8.3f} "
                  f"{med['modes_hit']:>6.0f} {med['seconds']:>7.0f}", flush=True)  # fmt: skip
    return block


# ------------------------------------------------------------------ t tbar
def ttbar_target() -> Callable[[torch.Tensor], torch.Tensor]:
    from hepflows.physics.processes import EEToTTbarWWbb

    return EEToTTbarWWbb()


def reference_integral(f, seed: int = 1) -> dict:
    """sigma by VEGAS in the resonant variables (hepflows.physics.processes.ttbar_resonant),
    where the density is nearly flat: the reference each method's integral is compared to."""
    import vegas

    from hepflows.physics.processes.ttbar_resonant import resonant_density

    @vegas.lbatchintegrand
    def g(y):
        return resonant_density(f, torch.from_numpy(np.ascontiguousarray(y))).numpy()

    rng = np.random.default_rng(seed)
    integ = vegas.Integrator([[0.0, 1.0]] * 8, ran_array_generator=rng.random)
    integ(g, nitn=5, neval=20_000)  # adapt
    res = integ(g, nitn=10, neval=20_000)
    return {"pb": res.mean, "error_pb": res.sdev, "Q": res.Q,
            "method": "vegas in the resonant variables, 5 + 10 iterations x 2e4"}  # fmt: skip


def uniform_ess(f, n: int = 2_000_000, seed: int = 123) -> dict:
    """ESS/N and max/mean weight of uniform points: the untrained baseline."""
    g = torch.Generator().manual_seed(seed)
    w = torch.cat([f(torch.rand(200_000, 8, dtype=torch.float64, generator=g))
                   for _ in range(n // 200_000)])  # fmt: skip
    return {"ess_fraction": normalised_ess(w.log()), "max_over_mean": float(w.max() / w.mean()),
            "points": len(w)}  # fmt: skip


#: A point is "on both top ridges" when m(W+ b) and m(W- bbar) lie within this of m_t (GeV).
RIDGE_GEV = 3.0


def on_ridges(f, x: torch.Tensor) -> torch.Tensor:
    """(n, 8) unit-cube points -> (n,) bool: both top candidates within RIDGE_GEV of m_t."""
    from hepflows.physics.kinematics import mass

    p, _ = f.momenta(x)
    mt = f.params.mt
    return (((mass(p[:, 2] + p[:, 3]) - mt).abs() < RIDGE_GEV)
            & ((mass(p[:, 4] + p[:, 5]) - mt).abs() < RIDGE_GEV))  # fmt: skip


def forward_reference(f, n: int = 1_000_000, seed: int = 5) -> dict:
    """Points distributed like p, to see where a sampler under-covers it (the reverse ESS
    on its own draws cannot): n uniform points y of the resonant variables, where p is
    nearly flat, carry weights W = p(y) (pb); mapped to the flat variables u of ``f``
    (:meth:`EEToTTbarWWbb.inverse`) they are a weighted sample of p(u), with f(u) there.
    Costs n target calls, once per benchmark run (not charged to any method)."""
    from hepflows.physics.processes.ttbar_resonant import resonant_density, resonant_final_state

    g = torch.Generator().manual_seed(seed)
    parts = []
    for i in range(0, n, 100_000):
        y = torch.rand(min(100_000, n - i), 8, dtype=torch.float64, generator=g)
        final, _ = resonant_final_state(y, f)
        em, ep = f.beams(len(y))
        u = f.inverse(torch.cat((em[:, None], ep[:, None], final), 1))
        parts.append((u, resonant_density(f, y), f(u)))
    u, w, fu = (torch.cat(t) for t in zip(*parts, strict=True))
    keep = (fu > 0) & torch.isfinite(fu)
    u, w, fu = u[keep], w[keep], fu[keep]
    ridge = on_ridges(f, u)
    return {"u": u, "w": w, "f": fu, "sigma_pb": w.sum().item() / n,
            "ridge_share": (w[ridge].sum() / w.sum()).item()}  # fmt: skip


def forward_check(log_q: torch.Tensor, ref: dict, sigma: float) -> dict:
    """How a sampler of density q covers p, from the reference points of
    :func:`forward_reference` (log_q (n,) at them): the forward ESS/N = sigma / E_p[p/q]
    (it sees regions q misses), and the share of sigma where q < 0.1 p / sigma."""
    w, fu = ref["w"], ref["f"]
    ratio = log_q.exp() * sigma / fu  # 1 where q = p / sigma
    mean_pq = (w * fu / log_q.exp()).sum() / w.sum()  # E_p[p / q]
    return {"forward_ess": (sigma / mean_pq).item(),
            "sigma_share_undercovered": (w[ratio < 0.1].sum() / w.sum()).item()}  # fmt: skip


def ttbar_run(method: str, f, budget: int, n_eval: int, seed: int, ref: dict | None = None,
              sigma: float | None = None) -> dict:  # fmt: skip
    """One method at one budget and seed: ESS/N, sigma, calls, time; with the forward
    reference ``ref`` and sigma, also :func:`forward_check` and the share of the fresh
    points on both top ridges (``ridge_share_q``; p's is ``ref["ridge_share"]``)."""
    if method == "vegas":
        r = vegas_run(f, 8, budget, n_eval, seed)
        out = {"ess_fraction": normalised_ess(torch.from_numpy(r["w"]).log()),
               "integral": r["integral"], "integral_error": r["error"],
               "train_calls": r["train_calls"], "grad_calls": 0,
               "seconds": r["seconds"]}  # fmt: skip
        if ref is not None:
            xr = ref["u"].numpy()
            y, jac = np.empty_like(xr), np.empty(len(xr))
            r["map"].invmap(xr, y, jac)  # the map's density at x is 1 / (dx/dy)
            out |= forward_check(-torch.from_numpy(np.log(jac)), ref, sigma)
            # VEGAS's final pass draws y uniformly (stratified): its points are the map's
            x = np.empty_like(xr[:100_000])
            r["map"].map(np.random.default_rng(seed).random(x.shape), x, np.empty(len(x)))
            out["ridge_share_q"] = on_ridges(f, torch.from_numpy(x)).double().mean().item()
    else:
        t = time.perf_counter()
        integ = _flow(f, 8, method, seed, "unit", TT_FAB)
        history = integ.train(calls=budget, progress=False)
        used, grads = integ.total_calls, integ.grad_calls
        x, w = integ.sample(n_eval)
        lw = w.log()
        mean, std = w.mean().item(), w.std().item()
        out = {"ess_fraction": normalised_ess(lw), "integral": mean,
               "integral_error": std / math.sqrt(len(w)), "train_calls": used,
               "grad_calls": grads, "seconds": time.perf_counter() - t}  # fmt: skip
        if hasattr(history, "ess_ais"):  # FAB: how many AIS passes, how many useful points
            tail = history.ess_ais[-max(1, len(history.ess_ais) // 5):]
            out |= {"ais_iterations": len(history.ess_ais),
                    "ais_ess_last_fifth": statistics.fmean(tail)}  # fmt: skip
        if ref is not None:
            with torch.no_grad():
                log_q = torch.cat([integ.flow.log_prob(u.to(integ.flow.dtype), None).double()
                                   for u in ref["u"].split(100_000)])  # fmt: skip
            out |= forward_check(log_q, ref, sigma)
            out["ridge_share_q"] = on_ridges(f, x[:100_000]).double().mean().item()
    ess = out["ess_fraction"] * n_eval
    out["ess_per_call"] = ess / (out["train_calls"] + n_eval)
    return out


def ttbar(budgets: list[int], seeds: list[int], n_eval: int,
          saved: Callable[[dict], None] = lambda block: None,
          methods: tuple[str, ...] = TT_METHODS, others: dict | None = None) -> dict:  # fmt: skip
    """The methods at every budget and seed on t tbar; medians over seeds, FAB's gains over
    the best other method run. ``saved(block)`` after each method and budget (a partial
    result survives a cut-off run). ``others``: {"source": path, "budgets": {budget:
    {method: row}}} of an earlier run with the same seeds; its rows of methods not run
    here join the comparison, marked ``"from": source`` (the other methods' code and
    seeds are unchanged, so they would give the same figures)."""
    f = ttbar_target()
    block: dict = {"nwa_pb": f.narrow_width_cross_section(), "n_eval": n_eval, "budgets": {},
                   "fab_ess_gain_by_budget": {}, "methods": list(methods)}  # fmt: skip
    block["uniform"] = uniform_ess(f)
    block["reference"] = reference_integral(f)
    ref = block["reference"]
    print(f"ttbar: reference sigma {ref['pb']:.5g} +- {ref['error_pb']:.2g} pb (VEGAS in the "
          f"resonant variables, Q = {ref['Q']:.2f})")  # fmt: skip
    print(f"ttbar: narrow-width sigma = {block['nwa_pb']:.5g} pb; uniform sampling: ESS/N "
          f"{block['uniform']['ess_fraction']:.2e}, max/mean weight "
          f"{block['uniform']['max_over_mean']:.3g}")  # fmt: skip
    forward = forward_reference(f)
    block["forward_reference"] = {
        "points": len(forward["w"]), "sigma_pb": forward["sigma_pb"],
        "ridge_share": forward["ridge_share"], "ridge_gev": RIDGE_GEV,
        "method": "uniform points of the resonant variables weighted by p, mapped to the "
                  "flat variables: forward ESS/N = sigma / E_p[p/q], sigma share where "
                  "q < 0.1 p / sigma, share of points on both top ridges"}  # fmt: skip
    print(f"ttbar: forward reference {len(forward['w'])} points, sigma "
          f"{forward['sigma_pb']:.5g} pb, {forward['ridge_share']:.3f} of it on both top "
          f"ridges (|m - m_t| < {RIDGE_GEV} GeV)")  # fmt: skip
    print(f"{'budget':>8} {'method':<12} {'ESS/N':>9} {'ESS/call':>9} {'sigma pb':>12} "
          f"{'pull':>7} {'fwd ESS':>9} {'undercov':>8} {'ridge q':>8} {'time s':>7}")
    for budget in budgets:
        rows = {}
        for method in methods:
            runs = [ttbar_run(method, f, budget, n_eval, s, forward, ref["pb"]) for s in seeds]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            med["per_seed"] = runs
            med["pull_vs_reference"] = (med["integral"] - ref["pb"]) / math.hypot(
                med["integral_error"], ref["error_pb"])  # fmt: skip
            rows[method] = med
            block["budgets"][str(budget)] = rows  # a cut-off run keeps the methods done
            saved(block)
            print(f"{budget:>8.0e} {method:<12} {med['ess_fraction']:>9.2e} "
                  f"{med['ess_per_call']:>9.2e} {med['integral']:>12.5g} "
                  f"{med['pull_vs_reference']:>+7.1f} {med['forward_ess']:>9.2e} "
                  f"{med['sigma_share_undercovered']:>8.3f} {med['ridge_share_q']:>8.4f} "
                  f"{med['seconds']:>7.0f}", flush=True)  # fmt: skip
        earlier = (others or {}).get("budgets", {}).get(str(budget), {})
        for method, row in earlier.items():
            if isinstance(row, dict) and method not in rows and method != "fab":
                rows[method] = row | {"from": others["source"]}
                print(f"{budget:>8.0e} {method:<12} {row['ess_fraction']:>9.2e} "
                      f"{row['ess_per_call']:>9.2e} {row['integral']:>12.5g} "
                      f"{row['pull_vs_reference']:>+7.1f}   (from {others['source']})")
        rivals = [v["ess_per_call"] for k, v in rows.items() if k != "fab"]
        if "fab" in rows and rivals:
            best = max(rivals)
            rows["fab_ess_gain"] = rows["fab"]["ess_per_call"] / best if best > 0 else math.inf
            block["fab_ess_gain_by_budget"][str(budget)] = rows["fab_ess_gain"]
            print(f"{budget:>8.0e} FAB ESS per call / best other: {rows['fab_ess_gain']:.3f}")
        block["budgets"][str(budget)] = rows
        saved(block)
    return block


# ------------------------------------------------------------------ profile
def profile_fab(budget: int = 100_000, seed: int = 0) -> dict:
    """Where FAB's time goes on t tbar: cProfile of a training run, shares of the wall time
    spent in the target (|M|^2 and its gradient), the flow inside AIS (log q and its
    gradient) and the replay steps (optimiser updates)."""
    import cProfile
    import pstats

    f = ttbar_target()
    _flow(f, 8, "fab", seed, "unit", TT_FAB).train(calls=14_000, progress=False)  # imports
    integ = _flow(f, 8, "fab", seed, "unit", TT_FAB)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    integ.train(calls=budget, progress=False)
    prof.disable()
    wall = time.perf_counter() - t
    stats = pstats.Stats(prof)
    cumulative = {f"{k[0].split('/')[-1]}:{k[2]}": v[3] for k, v in stats.stats.items()}
    total = cumulative["fab.py:iteration"]  # the training iterations, without set-up

    def share(name: str) -> float:
        return sum(v for k, v in cumulative.items() if k.endswith(name)) / total

    out = {"budget": budget, "seconds": wall, "iteration_seconds": total, "settings": TT_FAB,
           "target_share": share("fab.py:log_density_and_gradient"),
           "flow_in_ais_share": share("fab.py:_log_q"),
           "replay_share": share("fab.py:_replay_step"),
           "ais_share": share("ais.py:annealed_importance_sampling")}  # fmt: skip
    print(f"FAB on t tbar, {budget:.0e} calls in {total:.0f} s: target (|M|^2 + gradient) "
          f"{out['target_share']:.0%}, flow in AIS {out['flow_in_ais_share']:.0%}, AIS in all "
          f"{out['ais_share']:.0%}, replay steps {out['replay_share']:.0%}")  # fmt: skip
    return out


# ------------------------------------------------------------------ curves
def plot_curves(results: list[dict], out) -> None:
    """The measured curves: t tbar ESS/N and ESS per call vs budget, Many-Well |log Z error| and
    forward ESS vs budget, per method (medians over seeds; one point per budget)."""
    from hepflows.plots import pyplot

    plt, _ = pyplot("Plotting the FAB curves")
    # one block per target, its budgets merged over the files (e.g. the Many-Well at 3e5 and
    # 1e6 with every method in one file, at 3e6 with FAB and reverse KL in another)
    blocks: dict[str, dict] = {}
    for res in results:
        for target in ("ttbar", "many_well"):
            if target in res:
                merged = blocks.setdefault(target, {**res[target], "budgets": {}})
                merged["budgets"].update(res[target]["budgets"])
    panels = []
    if "ttbar" in blocks:
        panels += [("ttbar", "ess_fraction", "t tbar: ESS / N (fresh flow points)"),
                   ("ttbar", "ess_per_call", "t tbar: ESS per target evaluation")]  # fmt: skip
    if "many_well" in blocks:
        panels += [("many_well", "abs_log_z_error", "Many-Well 32-D: |log Z error|"),
                   ("many_well", "forward_ess", "Many-Well 32-D: forward ESS")]  # fmt: skip
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 5.5 * rows), squeeze=False)
    for ax, (target, key, title) in zip(axes.flat, panels, strict=False):
        block = blocks[target]
        budgets = sorted(block["budgets"], key=float)
        methods = dict.fromkeys(m for b in budgets for m, v in block["budgets"][b].items()
                                if isinstance(v, dict))  # fmt: skip
        for m in methods:
            have = [b for b in budgets if isinstance(block["budgets"][b].get(m), dict)]
            ax.plot([float(b) for b in have], [block["budgets"][b][m][key] for b in have],
                    "o-", label=m)  # fmt: skip
        if target == "ttbar" and key == "ess_fraction" and "uniform" in block:
            ax.axhline(block["uniform"]["ess_fraction"], ls=":", color="grey", label="uniform")
        ax.set_xscale("log")
        if key != "forward_ess":
            ax.set_yscale("log")
        ax.set_xlabel("training calls (density + gradient)", fontsize=14)
        ax.set_title(title, fontsize=13)
        ax.legend(fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    import argparse
    import json
    from pathlib import Path

    ap = argparse.ArgumentParser(description="Plot the curves of benchmarks/fab.py's JSON files")
    ap.add_argument("results", nargs="*", type=Path, help="fab JSON files (ttbar, many_well)")
    ap.add_argument("--out", type=Path, default=Path("docs/fab_highdim.png"))
    ap.add_argument("--profile", type=float, default=None,
                    help="profile FAB on t tbar at this budget instead (last line JSON)")
    ap.add_argument("--json", type=Path, default=None, help="with --profile: write it here")
    args = ap.parse_args()
    if args.profile:
        from common import finish

        torch.set_num_threads(1)
        finish(profile_fab(int(args.profile)), args.json)
    else:
        plot_curves([json.loads(p.read_text()) for p in args.results], args.out)
