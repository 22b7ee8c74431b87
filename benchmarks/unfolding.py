"""Unbinned unfolding of Drell-Yan dileptons: cINN, SPINUP and IBU (pyunfold) side by side.

Set-up (``../shared/design/inference.md``, :data:`hepflows.inference.SETUP`):
m_ll > 150 GeV, a weak 400 GeV Z' (coupling 0.2), the toy detector of the
design note, observables m_ll, y_ll and cos theta* (Collins-Soper).

* Training simulation: Z' **off** (prior P0).
* Measured data, statistically independent: (a) P0; (b) P1 = Z' **on**.
* cINN: an ensemble of conditional flows q(truth | reco), bootstrap members.
* SPINUP: the forward model T(reco | truth), the learned efficiency, the
  cINN's first member as the proposal, and an EM fit to the measured events.
* IBU: pyunfold per observable in the same bins, response from the training
  simulation, its own KS stopping rule.

For every method and data set, each observable's unfolded histogram is
compared with the truth of the same events (all events, detected or not):
chi^2 / ndf, each method with its own covariance. Also measured:

* the cINN's calibration on P0 (PIT per coordinate, worst |curve - diagonal|)
  and its TARP area;
* the Z' peak on P1: unfolded minus true events in 395-405 GeV, over the
  method's error;
* the apply time for 50k events;
* the nabu validation (r^2 KS test, pulls) of every trained flow on the P0 data's pairs.

Last line JSON. ``--quick``: 40k training pairs, 10k events per data set, short
training (under 10 minutes on 2 cores).
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
from hepflows.inference import (  # noqa: E402
    calibration_deviation,
    histogram_chi2,
    pit,
    read_pairs,
    tarp,
    write_pairs,
)
from hepflows.inference.ibu import SETTINGS as IBU_SETTINGS  # noqa: E402
from hepflows.inference.ibu import ibu  # noqa: E402
from hepflows.inference.plots import plot_unfolded  # noqa: E402
from hepflows.inference.unfolding import UnfoldingModel, train, unfold  # noqa: E402
from hepflows.inference.validation import validate  # noqa: E402

WINDOW = (395.0, 405.0)
#: Fine m_ll bins around the Z' (GeV): where an unfolded peak spills over the window edges.
FINE = [340, 360, 370, 380, 385, 390, 393, 395, 397, 399, 401, 403, 405, 408, 412, 420, 430,
        450, 500]  # fmt: skip
#: Physical ranges of the outer bin edges.
RANGE = {"m_ll": (150.0, 13000.0), "y_ll": (-6.0, 6.0), "cos_cs": (-1.0, 1.0)}


def edges_from(sim: Any, bins: int) -> dict[str, np.ndarray]:
    """Equal-population truth bins of the training simulation, each at least twice the
    resolution wide (neighbouring edges merged; the resolution per bin is 1.4826 x the
    median absolute reco - truth difference of its detected events); m_ll also gets
    the Z' window as one bin."""
    q = torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1]
    truth, diff = sim.truth, (sim.reco - sim.truth)[sim.passed]
    out = {}
    for j, n in enumerate(sim.observables):
        e = [RANGE[n][0]]
        for edge in torch.quantile(truth[:, j], q).tolist() + [RANGE[n][1]]:
            inside = (truth[sim.passed, j] >= e[-1]) & (truth[sim.passed, j] < edge)
            res = 1.4826 * float(diff[inside, j].abs().median()) if inside.any() else 0.0
            if edge - e[-1] >= 2 * res or edge == RANGE[n][1]:
                e.append(edge)
        e = np.array(e)
        if n == "m_ll":
            keep = (e < WINDOW[0] - 5) | (e > WINDOW[1] + 5)
            e = np.sort(np.concatenate((e[keep], WINDOW)))
        out[n] = e
    return out


def evaluate(result: Any, pairs: Any, edges: dict[str, np.ndarray]) -> dict[str, Any]:
    """chi^2/ndf per observable and the Z' window of an unfolded result."""
    closure = result.closure(pairs.truth, edges)
    out: dict[str, Any] = {"chi2_ndf": {n: c["chi2"] / c["ndf"] for n, c in closure.items()}}
    out["_hist"] = {n: (c["counts"], np.sqrt(np.diag(c["covariance"]))) for n, c in closure.items()}
    out["_truth"] = {n: (c["truth"], np.sqrt(c["truth"])) for n, c in closure.items()}
    out["_chi2"] = {n: (c["chi2"], c["ndf"]) for n, c in closure.items()}
    counts, cov = result.histogram("m_ll", np.array(WINDOW))
    true = int(((pairs.truth[:, 0] >= WINDOW[0]) & (pairs.truth[:, 0] < WINDOW[1])).sum())
    out["window"] = {"unfolded": float(counts[0]), "true": true, "error": math.sqrt(cov[0, 0]),
                     "pull": (float(counts[0]) - true) / math.sqrt(cov[0, 0])}  # fmt: skip
    out["chi2_ndf_max"] = max(out["chi2_ndf"].values())
    counts, cov = result.histogram("m_ll", np.array(FINE, dtype=float))
    truth, _ = np.histogram(pairs.truth[:, 0].numpy(), FINE)
    error = np.sqrt(np.diag(cov)).tolist()
    out["fine_m_ll"] = {"edges": FINE, "unfolded": counts.tolist(), "error": error,
                        "truth": truth.tolist()}  # fmt: skip
    return out


def evaluate_ibu(sim: Any, pairs: Any, edges: dict[str, np.ndarray]) -> dict[str, Any]:
    """IBU per observable in the same bins, chi^2 with its (diagonal) errors."""
    out: dict[str, Any] = {"chi2_ndf": {}, "iterations": {}}
    measured = pairs.reco[pairs.passed]
    for j, n in enumerate(pairs.observables):
        r = ibu(sim.truth[:, j].numpy(), sim.reco[:, j].numpy(), sim.passed.numpy(),
                measured[:, j].numpy(), edges[n])  # fmt: skip
        truth, _ = np.histogram(pairs.truth[:, j].numpy(), edges[n])
        chi2, ndf = histogram_chi2(r.counts, truth, r.errors**2)
        out["chi2_ndf"][n], out["iterations"][n] = chi2 / ndf, r.iterations
        out.setdefault("_hist", {})[n] = (r.counts, r.errors)
        out.setdefault("_chi2", {})[n] = (chi2, ndf)
        if n == "m_ll":
            k = int(np.flatnonzero(edges[n] == WINDOW[0])[0])
            true = int(((pairs.truth[:, 0] >= WINDOW[0]) & (pairs.truth[:, 0] < WINDOW[1])).sum())
            out["window"] = {"unfolded": float(r.counts[k]), "true": true,
                             "error": float(r.errors[k]),
                             "pull": (float(r.counts[k]) - true) / float(r.errors[k])}  # fmt: skip
    out["chi2_ndf_max"] = max(out["chi2_ndf"].values())
    return out


def plot_methods(methods: dict[str, Any], edges: dict[str, np.ndarray], stem: Path) -> None:
    """<stem>_<data>.png per data set: each method's unfolded histograms against the truth."""
    labels = {"m_ll": "m_ll [GeV]", "y_ll": "y_ll", "cos_cs": "cos theta* (CS)"}
    for key, name in (("p0", "P0 (no Z')"), ("p1", "P1 (Z' at 400 GeV)")):
        hists = {"truth": methods["cinn"][key]["_truth"]}
        hists |= {m: methods[m][key]["_hist"] for m in ("cinn", "spinup", "ibu")}
        chi2 = {m: methods[m][key]["_chi2"] for m in ("cinn", "spinup", "ibu")}
        path = Path(f"{stem}_{key}.png")
        plot_unfolded(edges, hists, path, title=f"unfolding of {name}", chi2=chi2,
                      labels=labels, log=["m_ll"])  # fmt: skip
        print(f"plot: {path}")


def report(method: str, r: dict[str, Any]) -> None:
    """One line per method: chi^2/ndf per observable, the Z' window, time, calibration."""
    w = r["window"]
    chi = " ".join(f"{n} {v:6.2f}" for n, v in r["chi2_ndf"].items())
    extra = f" | {r['seconds']:.0f} s" if "seconds" in r else ""
    if "calibration_max_dev" in r:
        dev = ", ".join(f"{n} {v:.3f}" for n, v in r["calibration_max_dev"].items())
        extra += f" | calibration max dev {dev}; TARP area {r['tarp_area']:.4f}"
    print(f"{method:<7} chi2/ndf {chi} | Z' window {w['unfolded']:.0f} vs {w['true']} "
          f"+- {w['error']:.0f} (pull {w['pull']:+.2f}){extra}", flush=True)  # fmt: skip


def print_fine(methods: dict[str, Any]) -> None:
    """The P1 m_ll spectrum around the Z' in fine bins: truth, cINN and SPINUP (pulls)."""
    t = methods["spinup"]["p1"]["fine_m_ll"]
    print("\nP1 m_ll around the Z' (fine bins): truth | cINN (pull) | SPINUP (pull)")
    for i, (lo, hi) in enumerate(zip(t["edges"][:-1], t["edges"][1:], strict=True)):
        row = f"  {lo:4.0f}-{hi:4.0f} GeV: {t['truth'][i]:5d}"
        for m in ("cinn", "spinup"):
            f = methods[m]["p1"]["fine_m_ll"]
            pull = (f["unfolded"][i] - f["truth"][i]) / max(f["error"][i], 1e-9)
            row += f" | {f['unfolded'][i]:7.1f} ({pull:+5.1f})"
        print(row)


def cached_pairs(cache: Path | None, name: str, n: int, zprime: bool, seed: int) -> Any:
    """Fiducial pairs, from ``cache/name.h5`` when it exists (written after generating)."""
    path = None if cache is None else cache / f"{name}_{n}_{seed}.h5"
    if path is not None and path.exists():
        return read_pairs(path)
    pairs = generate_pairs(n, zprime, seed=seed)
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        write_pairs(path, pairs)
    return pairs


def cached_model(cache: Path | None, name: str, make: Any) -> UnfoldingModel:
    """A trained model, from ``cache/name.safetensors`` when it exists (saved after training)."""
    path = None if cache is None else cache / f"{name}.safetensors"
    if path is not None and path.exists():
        print(f"(loaded {path})")
        return UnfoldingModel.load(path)
    model = make()
    if path is not None:
        model.save(path)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-pairs", type=int, default=None)
    ap.add_argument("--events", type=int, default=None, help="events per measured data set")
    ap.add_argument("--steps", type=int, default=None, help="steps per conditional flow")
    ap.add_argument("--ensemble", type=int, default=None, help="members (default 3; quick 2)")
    ap.add_argument("--samples", type=int, default=50, help="posterior points per event")
    ap.add_argument("--bins", type=int, default=16)
    ap.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="SPINUP flow EM iterations (default: the library's; quick 1)",
    )
    ap.add_argument("--refine", type=int, default=20, help="SPINUP refinement sweeps")
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep pairs and trained models here and reuse them (timings then "
        "exclude what was loaded)",
    )
    args = ap.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    n_train = args.train_pairs or (40_000 if args.quick else 200_000)
    n_data = args.events or (10_000 if args.quick else 50_000)
    steps = args.steps or (1500 if args.quick else 8000)
    args.ensemble = args.ensemble or (2 if args.quick else 3)
    if args.iterations is None and args.quick:
        args.iterations = 1
    seed = args.seed
    result: dict[str, Any] = {"date": datetime.date.today().isoformat(), "quick": args.quick,
                              "train_pairs": n_train, "events": n_data, "steps": steps,
                              "ensemble": args.ensemble, "samples": args.samples,
                              "seed": seed, "ibu_settings": IBU_SETTINGS}  # fmt: skip
    print(f"settings: {result}")
    print("pyunfold IBU settings:", IBU_SETTINGS)

    print("\n== Simulation (P0 training) and measured data (P0, P1)")
    cache = args.cache
    t0 = time.perf_counter()
    sim = cached_pairs(cache, "sim", n_train, False, seed)
    data = {"p0": cached_pairs(cache, "p0", n_data, False, seed + 1000),
            "p1": cached_pairs(cache, "p1", n_data, True, seed + 2000)}  # fmt: skip
    names = sim.observables
    result["generation_seconds"] = time.perf_counter() - t0
    result["fiducial_fraction"] = sim.setup["fiducial_fraction"]
    for k, d in data.items():
        m = d.truth[:, 0]
        print(f"{k}: {len(d)} events, {d.efficiency:.1%} detected, "
              f"{int(((m >= WINDOW[0]) & (m < WINDOW[1])).sum())} in the Z' window")  # fmt: skip
    edges = edges_from(sim, args.bins)
    result["edges"] = {n: e.tolist() for n, e in edges.items()}
    print("bins:", {n: len(e) - 1 for n, e in edges.items()})

    print("\n== Training (cINN ensemble; SPINUP's forward model)")
    t0 = time.perf_counter()
    cinn = cached_model(cache, "cinn", lambda: train(sim, "cinn", ensemble=args.ensemble,
                        steps=steps, seed=seed))  # fmt: skip
    result["cinn_train_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    spinup = cached_model(cache, "spinup", lambda: train(sim, "spinup", steps=steps,
                          seed=seed + 7, base=cinn))  # fmt: skip
    result["spinup_train_seconds"] = time.perf_counter() - t0
    print(f"cINN {result['cinn_train_seconds']:.0f} s, forward model "
          f"{result['spinup_train_seconds']:.0f} s")  # fmt: skip

    methods: dict[str, dict[str, Any]] = {"cinn": {}, "spinup": {}, "ibu": {}}
    for key, pairs in data.items():
        measured = pairs.reco[pairs.passed]
        print(f"\n== {key}: {len(measured)} detected events", flush=True)
        methods["ibu"][key] = evaluate_ibu(sim, pairs, edges)
        report("ibu", methods["ibu"][key])
        t0 = time.perf_counter()
        res = unfold(cinn, measured, names, samples=args.samples, seed=seed)
        seconds = time.perf_counter() - t0
        methods["cinn"][key] = evaluate(res, pairs, edges) | {"seconds": seconds}
        if key == "p0":
            q = pit(res.points[0], pairs.truth[pairs.passed])
            dev = calibration_deviation(q)
            _, _, area = tarp(res.points[0], pairs.truth[pairs.passed],
                              generator=torch.Generator().manual_seed(seed))  # fmt: skip
            methods["cinn"][key] |= {"calibration_max_dev": dict(zip(names, dev.tolist(),
                                     strict=True)), "tarp_area": area}  # fmt: skip
        report("cinn", methods["cinn"][key])
        t0 = time.perf_counter()
        options = {"refine": args.refine}
        if args.iterations is not None:
            options["iterations"] = args.iterations
        res = unfold(spinup, measured, names, ensemble=args.ensemble, seed=seed, spinup=options)
        seconds = time.perf_counter() - t0
        methods["spinup"][key] = evaluate(res, pairs, edges) | {"seconds": seconds}
        methods["spinup"][key]["log_likelihood"] = [
            [h["log_likelihood"] for h in fit["history"]] for fit in res.info["spinup"]
        ]
        methods["spinup"][key]["refine_sweeps"] = [
            sum("refine" in h for h in fit["history"]) for fit in res.info["spinup"]
        ]
        methods["spinup"][key]["samples"] = res.info["samples"]
        report("spinup", methods["spinup"][key])

    print("\n== Validation of the trained flows on held-out pairs (P0 data; nabu tests)")
    held = data["p0"]
    truth_d, reco_d = held.truth[held.passed], held.reco[held.passed]
    checks = {f"cinn member {j} q(truth | reco)": (m, truth_d, reco_d)
              for j, m in enumerate(cinn.posteriors)}  # fmt: skip
    checks["spinup forward T(reco | truth)"] = (spinup.forward, reco_d, truth_d)
    result["validation"] = {}
    for label, (density, x, c) in checks.items():
        check = validate(density, x, c)
        result["validation"][label] = check.to_dict() | {
            "steps_run": len(density.losses), "best_step": density.best_step,
            "val_losses": density.val_losses}  # fmt: skip
        print(f"{label}: r2 KS p = {check.r2_ks_pvalue:.3g}, pull p = "
              f"{', '.join(f'{v:.3g}' for v in check.pull_pvalues)}, passed {check.passed}")

    print("\n== Apply time of the cINN on 50k events")
    measured = data["p0"].reco[data["p0"].passed]
    big = measured[torch.arange(50_000) % len(measured)]
    t0 = time.perf_counter()
    unfold(cinn, big, names, samples=args.samples, seed=seed)
    apply_50k = time.perf_counter() - t0
    print(f"{apply_50k:.1f} s for 50k events x {args.samples} samples x {args.ensemble} members")

    print_fine(methods)
    if args.out is not None:
        plot_methods(methods, edges, args.out.with_suffix(""))
    for by_data in methods.values():
        for r in by_data.values():
            r.pop("_hist"), r.pop("_chi2"), r.pop("_truth", None)
    result["methods"] = methods
    result["total_seconds"] = time.perf_counter() - start
    result |= {
        "cinn_calibration_max_dev": max(methods["cinn"]["p0"]["calibration_max_dev"].values()),
        "cinn_tarp_area_p0": methods["cinn"]["p0"]["tarp_area"],
        "cinn_chi2_ndf_p0_max": methods["cinn"]["p0"]["chi2_ndf_max"],
        "cinn_chi2_ndf_p1_max": methods["cinn"]["p1"]["chi2_ndf_max"],
        "spinup_chi2_ndf_p0_max": methods["spinup"]["p0"]["chi2_ndf_max"],
        "spinup_chi2_ndf_p1_max": methods["spinup"]["p1"]["chi2_ndf_max"],
        "ibu_chi2_ndf_p0_max": methods["ibu"]["p0"]["chi2_ndf_max"],
        "ibu_chi2_ndf_p1_max": methods["ibu"]["p1"]["chi2_ndf_max"],
        "spinup_zprime_peak_pull": methods["spinup"]["p1"]["window"]["pull"],
        "cinn_zprime_peak_pull": methods["cinn"]["p1"]["window"]["pull"],
        "ibu_zprime_peak_pull": methods["ibu"]["p1"]["window"]["pull"],
        "apply_seconds_50k": apply_50k,
        "spinup_fit_seconds_p1": methods["spinup"]["p1"]["seconds"],
        "machine": f"{torch.get_num_threads()} threads",
    }
    finish(result, args.out)


if __name__ == "__main__":
    main()
