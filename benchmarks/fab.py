"""FAB vs the reverse-KL and variance losses vs VEGAS: two three-body decays, t tbar and Many-Well.

Densities: Lambda_c+ -> p K- pi+ (LHCb amplitude model, ``polarimetry-lc2pkpi``)
and pi(1800)- -> pi- pi+ pi- (hepflows' isobar model), |M|^2 times the Dalitz
Jacobian on the unit square (:mod:`hepflows.physics.decays`).

Rule (design/integration.md): equal calls. The training budget counts every
density evaluation and, for FAB, every gradient evaluation (one call each);
then every method draws the same number of fresh points (``--n-eval``), which
give the figures:

* ESS fraction (sum w)^2 / (N sum w^2) of the fresh weights, and ESS per call
  = ESS / (training + evaluation calls): the must-reach figure;
* unweighting efficiency <w> / max w (and with the 99.9 % quantile);
* chi^2 / ndf of the weighted Dalitz plot (m^2 of the (12) pair vs the (23)
  pair, 25 x 25 bins, bins with >= 20 reference events) against a large VEGAS
  sample unweighted with w_max = max w (``--n-ref`` events drawn from).

Methods and settings (printed with the results):

* fab: :class:`hepflows.integrate.FABIntegrator` defaults (1 intermediate
  distribution, HMC with 1 leapfrog step and adapted step size, alpha = 2 AIS
  target p^2/q, prioritised replay buffer with 16 steps per AIS batch);
* variance: :class:`hepflows.integrate.NeuralIntegrator` defaults (variance
  loss, VEGAS warm start in d <= 4, 7 buffered steps);
* rkl: the same with ``loss="rkl"`` (reverse KL, score-function gradient: it
  needs no gradient of the density);
* rkl_reparam: :class:`hepflows.integrate.ReparamKLIntegrator`, reverse KL with
  the pathwise gradient through the flow's samples and grad p (uses the
  gradient like FAB; both kinds of calls counted);
* vegas: ``vegas.Integrator([[0, 1]] * 2)``, nitn=10 adaptive iterations over
  the training budget, then one ``adapt=False`` pass.

High dimensions (:mod:`fab_highdim`, the FAB paper's claim): the 8-D
e+e- -> t tbar -> W+ b W- bbar matrix element and the 32-D Many-Well, with
their own budgets (``--tt-budgets``, ``--mw-budgets``) and figures.

Usage: ``python benchmarks/fab.py [--quick] [--targets lambda_c pi1800 ttbar many_well]
[--budgets 1e4,3e4,1e5] [--tt-budgets ...] [--mw-budgets ...] [--seeds 3]
[--out benchmarks/results/fab.json] [--plot docs/fab_dalitz.png]`` (one PNG per
decay: ``docs/fab_dalitz_<decay>.png``)
The last line of output is one JSON object; ``fab_ess_gain`` is FAB's ESS per
call over the best other method's at the headline (largest) budget, per
target; ``manywell_logz_error`` and ``manywell_forward_ess`` per method.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import fab_highdim
from common import finish, vegas_run
from hepflows.integrate import FABIntegrator, NeuralIntegrator, ReparamKLIntegrator
from hepflows.physics.decays import lc2pkpi, pi1800

SETTINGS = {
    "fab": "FABIntegrator defaults: intermediate=1, HMC leapfrog=1 (step size adapted to "
    "acceptance 0.65), AIS target p^2/q, prioritised replay buffer (20 batches), 16 replay "
    "steps per AIS batch, lr 1e-2 cosine; density and gradient calls both counted",
    "variance": "NeuralIntegrator defaults: variance loss, VEGAS warm start (d <= 4), 7 buffered "
    "steps per fresh batch",
    "rkl": "NeuralIntegrator(loss='rkl'): reverse KL with a score-function gradient, VEGAS warm "
    "start, 7 buffered steps",
    "rkl_reparam": "ReparamKLIntegrator defaults: reverse KL with the pathwise gradient through "
    "the flow's samples and grad p (the FAB paper's reverse-KL baseline), batch 128, lr 1e-2 "
    "cosine; density and gradient calls both counted",
    "vegas": "vegas.Integrator([[0, 1]] * 2), nitn=10 over the training budget, then one "
    "adapt=False pass over the evaluation budget",
}
DECAYS = {"lambda_c": lambda: lc2pkpi(progress=True), "pi1800": pi1800}
BINS = 25


def run_flow(integ, budget: int, n_eval: int) -> dict:
    """Train a flow integrator on ``budget`` calls (density + gradient), draw n_eval points."""
    integ.train(calls=budget, progress=False)
    used, grads = integ.total_calls, integ.grad_calls
    x, w = integ.sample(n_eval)
    return {"x": x, "w": w, "train_calls": used, "grad_calls": grads}


def run_vegas(f, budget: int, n_eval: int, seed: int) -> dict:
    r = vegas_run(f, 2, budget, n_eval, seed, keep_points=True)
    return {"x": torch.from_numpy(r["x"]), "w": torch.from_numpy(r["w"]),
            "train_calls": r["train_calls"], "grad_calls": 0}  # fmt: skip


METHODS = {
    "fab": lambda f, b, n, s: run_flow(FABIntegrator(f, 2, seed=s), b, n),
    "variance": lambda f, b, n, s: run_flow(NeuralIntegrator(f, 2, seed=s, loss="variance"), b, n),
    "rkl": lambda f, b, n, s: run_flow(NeuralIntegrator(f, 2, seed=s, loss="rkl"), b, n),
    "rkl_reparam": lambda f, b, n, s: run_flow(ReparamKLIntegrator(f, 2, seed=s), b, n),
    "vegas": run_vegas,
}


def dalitz_hist(f, x: torch.Tensor, w: torch.Tensor, edges) -> tuple[np.ndarray, np.ndarray]:
    """Weighted 2D histogram of (s12, s23): (sum w, sum w^2) per bin."""
    inv = f.invariants(x.to(torch.float64).clamp(1e-12, 1 - 1e-12))
    a, b = inv["s12"].numpy(), inv["s23"].numpy()
    wn = w.numpy()
    h1, _, _ = np.histogram2d(a, b, bins=edges, weights=wn)
    h2, _, _ = np.histogram2d(a, b, bins=edges, weights=wn**2)
    return h1, h2


def reference(f, n_ref: int, seed: int, edges) -> tuple[np.ndarray, dict]:
    """Unweighted VEGAS events: counts per Dalitz bin, and how they were made."""
    import vegas

    @vegas.lbatchintegrand
    def fv(x):
        return f(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    rng = np.random.default_rng(seed)
    integ = vegas.Integrator([[0.0, 1.0]] * 2, ran_array_generator=rng.random)
    integ(fv, nitn=20, neval=50_000)
    info: dict = {}
    xs, ws = [], []
    integ.set(neval=n_ref, adapt=False)
    for x, wgt in integ.random_batch():
        xs.append(np.array(x))
        ws.append(wgt * fv(x))
    x, w = np.concatenate(xs), np.concatenate(ws)
    keep = rng.random(len(w)) < w / w.max()
    info.update(points=len(w), events=int(keep.sum()), efficiency=float(w.mean() / w.max()),
                integral=float(w.sum()))  # fmt: skip
    inv = f.invariants(torch.from_numpy(x[keep]))
    counts, _, _ = np.histogram2d(inv["s12"].numpy(), inv["s23"].numpy(), bins=edges)
    info["_events"] = (inv["s12"], inv["s23"], None)
    return counts, info


def chi2(h1: np.ndarray, h2: np.ndarray, ref: np.ndarray, min_ref: int = 20) -> tuple[float, int]:
    """chi^2 of a weighted histogram's shape against reference counts (bins with enough events)."""
    mask = ref >= min_ref
    total, n_ref = h1.sum(), ref.sum()
    p, var_p = h1 / total, h2 / total**2
    r, var_r = ref / n_ref, ref / n_ref**2
    c = ((p - r) ** 2 / (var_p + var_r).clip(1e-300))[mask].sum()
    return float(c), int(mask.sum()) - 1


def figures(run: dict, n_eval: int, f, edges, ref) -> dict:
    w = run["w"].to(torch.float64)
    s1, s2 = w.sum().item(), (w**2).sum().item()
    ess = s1**2 / s2
    wmax = w.abs().max().item()
    wq = torch.quantile(w.abs(), 0.999).item()
    h1, h2 = dalitz_hist(f, run["x"], w, edges)
    c, ndf = chi2(h1, h2, ref)
    total = run["train_calls"] + n_eval
    return {
        "ess_fraction": ess / len(w),
        "ess_per_call": ess / total,
        "unweighting_efficiency": w.abs().mean().item() / wmax,
        "unweighting_efficiency_q999": min(w.abs().mean().item() / wq, 1.0),
        "integral": w.mean().item(),
        "chi2": c,
        "ndf": ndf,
        "train_calls": run["train_calls"],
        "grad_calls": run["grad_calls"],
        "total_calls": total,
    }


def plot(path: Path, decay: str, f, panels: dict) -> None:
    """One PNG per decay: the reference and each method's weighted Dalitz plot."""
    from hepflows.plots import dalitz_plots

    d = f.dalitz
    pair = (d.names[0] + d.names[1], d.names[1] + d.names[2])
    out = path.with_name(f"{path.stem}_{decay}{path.suffix}")
    dalitz_plots(panels, (d.bounds("12"), d.bounds("23")),
                 (f"m²({pair[0]}) [GeV²]", f"m²({pair[1]}) [GeV²]"), out,
                 title=f"{f.name}: reference and samples, largest budget, seed 0")  # fmt: skip
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one budget (3e4), one seed, 5e4 eval")
    ap.add_argument("--budgets", default=None, help="training budgets, e.g. 1e4,3e4,1e5")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--n-eval", type=float, default=None)
    ap.add_argument("--n-ref", type=float, default=None)
    ap.add_argument("--targets", "--decays", nargs="*", default=[*DECAYS, *HIGH_DIM],
                    help=f"any of {', '.join([*DECAYS, *HIGH_DIM])}")
    ap.add_argument("--tt-budgets", default=None, help="t tbar budgets (default 1e5,3e5,1e6)")
    ap.add_argument("--mw-budgets", default=None, help="Many-Well budgets (default 1e5,3e5,1e6)")
    ap.add_argument("--mw-methods", default=",".join(fab_highdim.MW_METHODS),
                    help="Many-Well methods (default all: fab,variance,rkl_reparam)")
    ap.add_argument("--tt-methods", default=",".join(fab_highdim.TT_METHODS),
                    help="t tbar methods (default all: fab,variance,rkl_reparam,vegas)")
    ap.add_argument("--tt-eval", type=float, default=None, help="fresh t tbar points (1e6)")
    ap.add_argument("--tt-others", type=Path, default=None,
                    help="an earlier t tbar result JSON (same seeds): its rows of the methods "
                         "not in --tt-methods join the comparison, marked with the file")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*jax.*")
    torch.set_num_threads(args.threads)
    budgets = [int(float(b)) for b in (args.budgets or ("3e4" if args.quick else "1e4,3e4,1e5"))
               .split(",")]  # fmt: skip
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    n_eval = int(args.n_eval or (5e4 if args.quick else 1e5))
    n_ref = int(args.n_ref or (5e5 if args.quick else 2e6))
    unknown = set(args.targets) - {*DECAYS, *HIGH_DIM}
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}: use {', '.join([*DECAYS, *HIGH_DIM])}")
    decays = [t for t in args.targets if t in DECAYS]
    if decays:
        for method, text in SETTINGS.items():
            print(f"{method}: {text}")
        print(f"budgets {budgets}, seeds {seeds}, n_eval {n_eval}, reference from {n_ref} "
              "VEGAS points")
    result: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "quick": args.quick, "budgets": budgets, "seeds": seeds, "n_eval": n_eval,
        "settings": SETTINGS, "decays": {}, "fab_ess_gain": {}, "fab_ess_gain_by_budget": {},
    }  # fmt: skip
    header = (f"{'decay':<9} {'budget':>7} {'method':<9} {'ESS/N':>7} {'ESS/call':>9} "
              f"{'unw':>6} {'unw.q999':>8} {'chi2/ndf':>11} {'time s':>7}")  # fmt: skip
    for decay in decays:
        f = DECAYS[decay]()
        d = f.dalitz
        edges = (np.linspace(*d.bounds("12"), BINS + 1), np.linspace(*d.bounds("23"), BINS + 1))
        t0 = time.perf_counter()
        ref, info = reference(f, n_ref, 12345, edges)
        print(f"{decay}: reference {info['events']:,} unweighted VEGAS events "
              f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
        print(header)
        panels = {"reference (VEGAS, unweighted)": info.pop("_events")}
        block = {"reference": info, "budgets": {}}
        for budget in budgets:
            rows = {}
            for method, run in METHODS.items():
                runs = []
                for seed in seeds:
                    t = time.perf_counter()
                    r = run(f, budget, n_eval, seed)
                    fig = figures(r, n_eval, f, edges, ref)
                    fig["seconds"] = time.perf_counter() - t
                    runs.append(fig)
                    if budget == budgets[-1] and seed == 0:
                        inv = f.invariants(r["x"].to(torch.float64).clamp(1e-12, 1 - 1e-12))
                        panels[method] = (inv["s12"], inv["s23"], r["w"])
                med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
                med["per_seed_ess_per_call"] = [x["ess_per_call"] for x in runs]
                rows[method] = med
                print(f"{decay:<9} {budget:>7.0e} {method:<9} {med['ess_fraction']:>7.4f} "
                      f"{med['ess_per_call']:>9.4f} {med['unweighting_efficiency']:>6.3f} "
                      f"{med['unweighting_efficiency_q999']:>8.3f} "
                      f"{med['chi2']:>6.1f}/{med['ndf']:<4d} {med['seconds']:>7.1f}",
                      flush=True)  # fmt: skip
            best = max(v["ess_per_call"] for k, v in rows.items() if k != "fab")
            rows["fab_ess_gain"] = rows["fab"]["ess_per_call"] / best
            per_seed = [
                rows["fab"]["per_seed_ess_per_call"][i]
                / max(rows[m]["per_seed_ess_per_call"][i] for m in METHODS if m != "fab")
                for i in range(len(seeds))
            ]
            rows["fab_ess_gain_per_seed"] = per_seed
            print(f"{decay:<9} {budget:>7.0e} FAB ESS per call / best other: "
                  f"{rows['fab_ess_gain']:.3f} (per seed {[round(g, 3) for g in per_seed]})")
            block["budgets"][str(budget)] = rows
            gains = result["fab_ess_gain_by_budget"].setdefault(decay, {})
            gains[str(budget)] = rows["fab_ess_gain"]
        result["decays"][decay] = block
        result["fab_ess_gain"][decay] = block["budgets"][str(budgets[-1])]["fab_ess_gain"]
        # The ESS of the untrained (uniform) sampler bounds every gain from above.
        u = torch.rand(200_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        w = f(u)
        block["ess_fraction_uniform"] = (w.sum() ** 2 / (w**2).sum() / len(w)).item()
        print(f"{decay}: ESS fraction of uniform sampling {block['ess_fraction_uniform']:.3f}: "
              f"no method can beat another trained one by more than 1 / that = "
              f"{1 / block['ess_fraction_uniform']:.2f}x")
        if args.plot:
            plot(args.plot, decay, f, panels)
    high_dim(args, result, seeds)
    finish(result, args.out)


#: The high-dimensional targets (benchmarks/fab_highdim.py).
HIGH_DIM = ("ttbar", "many_well")


def _budgets(text: str | None, quick: str, full: str, is_quick: bool) -> list[int]:
    return [int(float(b)) for b in (text or (quick if is_quick else full)).split(",")]


def _methods(text: str, known: tuple[str, ...], option: str) -> tuple[str, ...]:
    methods = tuple(text.split(","))
    unknown = set(methods) - set(known)
    if unknown:
        raise SystemExit(f"unknown {option} {sorted(unknown)}: choose from {known}")
    return methods


def _saver(args: argparse.Namespace, result: dict, target: str):
    """After each budget: ``--out`` holds what is measured so far, marked ``"partial"``."""

    def save(block: dict) -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            partial = {**result, target: block, "partial": True}
            tmp = args.out.with_suffix(".partial.tmp")
            tmp.write_text(json.dumps(partial, indent=1) + "\n")
            tmp.replace(args.out)

    return save


def _earlier(path: Path | None, seeds: list[int]) -> dict | None:
    """The t tbar rows of an earlier result file run with the same seeds (``--tt-others``)."""
    if path is None:
        return None
    earlier = json.loads(path.read_text())
    if earlier.get("seeds") != seeds or "ttbar" not in earlier:
        raise SystemExit(f"--tt-others {path}: needs a t tbar result run with seeds {seeds}, "
                         f"it has {earlier.get('seeds')}")  # fmt: skip
    return {"source": path.name, "budgets": earlier["ttbar"]["budgets"]}


def high_dim(args: argparse.Namespace, result: dict, seeds: list[int]) -> None:
    """t tbar and the 32-D Many-Well into ``result`` (their figures and the headline keys)."""
    for target, text in fab_highdim.SETTINGS_HD.items():
        if target in args.targets:
            for method, line in text.items():
                print(f"{target} {method}: {line}")
    result["settings_high_dim"] = fab_highdim.SETTINGS_HD
    if "ttbar" in args.targets:
        budgets = _budgets(args.tt_budgets, "1e5", "1e5,3e5,1e6", args.quick)
        n_eval = int(args.tt_eval or (2e5 if args.quick else 1e6))
        methods = _methods(args.tt_methods, fab_highdim.TT_METHODS, "--tt-methods")
        block = fab_highdim.ttbar(budgets, seeds, n_eval, _saver(args, result, "ttbar"),
                                  methods, _earlier(args.tt_others, seeds))  # fmt: skip
        result["ttbar"] = block
        top = block["budgets"][str(budgets[-1])]
        if "fab_ess_gain" in top:
            result["fab_ess_gain"]["ttbar"] = top["fab_ess_gain"]
        result["fab_ess_gain_by_budget"]["ttbar"] = block["fab_ess_gain_by_budget"]
        # sigma from VEGAS in the resonant variables (the flat-variable estimates of every
        # method are in the block, with their pulls against it)
        result["ttbar_integral_pb"] = block["reference"]["pb"]
        result["ttbar_integral_error_pb"] = block["reference"]["error_pb"]
        result["ttbar_nwa_pb"] = block["nwa_pb"]
    if "many_well" in args.targets:
        budgets = _budgets(args.mw_budgets, "1e5", "1e5,3e5,1e6", args.quick)
        n_eval = int(2e4 if args.quick else 1e5)
        methods = _methods(args.mw_methods, fab_highdim.MW_METHODS, "--mw-methods")
        block = fab_highdim.many_well(budgets, seeds, n_eval,
                                      _saver(args, result, "many_well"), methods)  # fmt: skip
        result["many_well"] = block
        top = block["budgets"][str(budgets[-1])]
        result["manywell_logz_error"] = {m: v["abs_log_z_error"] for m, v in top.items()}
        result["manywell_forward_ess"] = {m: v["forward_ess"] for m, v in top.items()}


if __name__ == "__main__":
    main()
