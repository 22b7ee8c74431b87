"""Neural importance sampling: hepflows vs vegas vs madnis at equal integrand calls.

Rule for every method (design/integration.md): every integrand evaluation
counts (VEGAS adaptation, training, the final estimate). Budgets: training
calls + evaluation calls, 1e5 + 1e5 for d <= 4 and 1e6 + 1e6 for d >= 8
(``--quick``: 5e4 + 5e4 and 1e5 + 1e5, one seed). Unweighting rule for all:
w_max = max |w| over the evaluation sample (and the 99.9 % quantile as a second
figure). Peers as their docs recommend:

* vegas 6.4.1: ``vegas.Integrator(d * [[0, 1]])``, adaptation with
  ``nitn=10`` iterations from the training budget, then one ``adapt=False``
  pass over the evaluation budget; error from vegas' stratified variance.
* madnis 1.0.0: ``madnis.integrator.Integrator(f, dims)`` with its default
  flow, ``batch_size=1024``, ``train(steps)`` with steps = training budget /
  batch size, then ``sample(n)`` for the estimate and the weights.

Figures per case and method, median over seeds: relative error sigma/I,
sigma*sqrt(N)/I with N the evaluation calls, unweighting efficiency, wall
time; and the flow's sampling + density cost per point at d = 8.
``ratio_vs_best_peer`` = best peer's relative error / hepflows'
relative error. The last line of output is one JSON object.

Usage: ``python benchmarks/integration.py [--quick] [--out benchmarks/results/integration.json]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import time
from pathlib import Path

import torch

from common import Counted, finish, vegas_run
from hepflows.integrate import NeuralIntegrator, builtin, camel
from hepflows.integrate.result import weight_statistics

CASES = [("camel", 2), ("camel", 4), ("camel", 8), ("camel", 16), ("gaussian", 8),
         ("resonances", 2)]  # fmt: skip
#: Peer settings, printed with the results.
SETTINGS = {
    "hepflows": "NeuralIntegrator defaults (variance loss, VEGAS warm start for one channel in "
    "d <= 4, 7 buffered steps, stratified latent estimate); resonances: its two Breit-Wigner "
    "channels with mixture (Kleiss-Pittau) channel weights, the default",
    "vegas": "vegas.Integrator(d * [[0, 1]]), nitn=10 adaptive iterations over the training "
    "budget, then one adapt=False pass; stratified error (vegas' own)",
    "madnis": "madnis.integrator.Integrator(f, dims, batch_size=1024), default flow and "
    "optimiser, train(training budget / 1024), sample(evaluation budget)",
}


def figures(value: float, error: float, w: torch.Tensor, n_eval: int, calls: int, t: float):
    stats = weight_statistics(w, 0.999)
    return {
        "value": value,
        "error": error,
        "relative_error": error / abs(value),
        "sigma_sqrt_n": error / abs(value) * math.sqrt(n_eval),
        "unweighting_efficiency": stats["unweighting_efficiency"],
        "unweighting_efficiency_q999": stats["unweighting_efficiency_quantile"],
        "calls": calls,
        "seconds": t,
    }


def run_hepflows(f, d, n_train, n_eval, seed):
    cf = Counted(f)
    t0 = time.perf_counter()
    channels = getattr(f, "channels", None)
    integ = NeuralIntegrator(cf, d, seed=seed, channels=channels)
    integ.train(calls=n_train, progress=False)
    r = integ.integrate(calls=n_eval, quantile=0.999)
    return {
        "value": r.value,
        "error": r.error,
        "relative_error": r.relative_error,
        "sigma_sqrt_n": r.sigma_sqrt_n,
        "unweighting_efficiency": r.unweighting_efficiency,
        "unweighting_efficiency_q999": r.unweighting_efficiency_quantile,
        "calls": cf.calls,
        "seconds": time.perf_counter() - t0,
    }


def run_vegas(f, d, n_train, n_eval, seed):
    r = vegas_run(f, d, n_train, n_eval, seed)
    return figures(r["integral"], r["error"], torch.from_numpy(r["w"]), len(r["w"]), r["calls"],
                   r["seconds"])  # fmt: skip


def run_madnis(f, d, n_train, n_eval, seed):
    from madnis.integrator import Integrator

    cf = Counted(f)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    batch = 1024
    integ = Integrator(lambda x: cf(x.to(torch.float64)).to(x.dtype), dims=d, batch_size=batch)
    integ.train(max(n_train // batch, 1))
    s = integ.sample(n_eval)
    w = s.weights.detach().to(torch.float64)
    value = w.mean().item()
    error = w.std().item() / math.sqrt(len(w))
    return figures(value, error, w, n_eval, cf.calls, time.perf_counter() - t0)


def throughput_us_per_point(d: int = 8, n: int = 100_000, repeats: int = 5) -> float:
    """Flow sampling + density cost per point (default integrator, no integrand), median."""
    integ = NeuralIntegrator(camel(d), d, seed=0)
    times = []
    with torch.no_grad():
        integ.flow.sample_and_log_prob(n)
        for _ in range(repeats):
            t0 = time.perf_counter()
            integ.flow.sample_and_log_prob(n)
            times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times) / n


METHODS = {"hepflows": run_hepflows, "vegas": run_vegas, "madnis": run_madnis}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--cases", nargs="*", default=None, help="e.g. camel:8 gaussian:8")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--methods", nargs="*", default=list(METHODS),
                    help="run only these; the others' figures come from --merge")
    ap.add_argument("--merge", type=Path, default=None,
                    help="earlier result file (same budgets and seeds) to take other figures from")
    args = ap.parse_args()
    earlier = json.loads(args.merge.read_text()) if args.merge else {"cases": {}}
    torch.set_num_threads(2)
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    cases = (
        CASES if not args.cases else [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases]
    )  # noqa: E501
    result: dict[str, object] = {"date": datetime.date.today().isoformat(), "quick": args.quick,
                                 "seeds": seeds, "settings": SETTINGS, "cases": {}}  # fmt: skip
    for method, text in SETTINGS.items():
        print(f"{method}: {text}")
    print(f"seeds {seeds}; threads {torch.get_num_threads()}")
    ratios = []
    print(f"{'case':<12} {'method':<9} {'rel.err':>9} {'s*sqrtN/I':>10} {'unw.eff':>9} "
          f"{'unw.q999':>9} {'calls':>9} {'time s':>7}")  # fmt: skip
    for name, d in cases:
        f = builtin(name, d)
        small = d <= 4
        n_train = n_eval = (
            (5 * 10**4 if small else 10**5) if args.quick else (10**5 if small else 10**6)
        )  # noqa: E501
        case = {}
        for method, run in METHODS.items():
            if method in args.methods:
                runs = [run(f, d, n_train, n_eval, s) for s in seeds]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            else:  # peers do not depend on hepflows' code: reuse an earlier run's figures
                med = dict(earlier["cases"][f"{name}_d{d}"][method])
                med["from"] = earlier.get("date", "an earlier run")
            case[method] = med
            print(f"{name + str(d):<12} {method:<9} {med['relative_error']:>9.3g} {med['sigma_sqrt_n']:>10.4g} "  # noqa: E501
                  f"{med['unweighting_efficiency']:>9.3g} {med['unweighting_efficiency_q999']:>9.3g} "  # noqa: E501
                  f"{med['calls']:>9.0f} {med['seconds']:>7.1f}", flush=True)  # fmt: skip
        best_peer = min(case["vegas"]["relative_error"], case["madnis"]["relative_error"])
        case["ratio_vs_best_peer"] = best_peer / case["hepflows"]["relative_error"]
        ratios.append(case["ratio_vs_best_peer"])
        result["cases"][f"{name}_d{d}"] = case
    result["min_ratio_vs_best_peer"] = min(ratios)
    result["throughput_us_per_point_d8"] = throughput_us_per_point()
    print(f"flow sampling + density at d = 8: {result['throughput_us_per_point_d8']:.1f} us/point")
    finish(result, args.out)


if __name__ == "__main__":
    main()
