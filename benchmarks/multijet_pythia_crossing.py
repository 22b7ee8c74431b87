"""Why two of Pythia 8's 3-parton process codes disagree with hepflows: Pythia's own code.

hepflows' 3-jet cross-section agrees with Pythia 8.317 (``HardQCD:3parton``), but two
process codes did not (``benchmarks/results/multijet_jjj.json``): 136 (q qbar -> q' qbar' g)
reads twice ours and 138 (g g -> q qbar g) 3.4 % above ours (-4.6 sigma). Our tree
amplitudes match the textbook closed forms point by point (tests/physics/test_amplitudes.py).
Pythia's SigmaQCD.cc explains both:

- ``Sigma3qqbar2ggg::m2Calc`` computes the crossed pair's s (``sHnow``) but takes the s / 2
  of its bracket from the event's s-hat (``sHhalf = sH / 2``). For q qbar -> g g g (132)
  the two agree; ``Sigma3qg2qgg`` (133) and ``Sigma3gg2qqbarg`` (138) evaluate the same
  function at crossed momenta, where s-hat is another invariant.
- ``Sigma3qqbar2qqbargDiff`` (136) multiplies by an "Extra factor of (2.) from second
  possible crossing???" (its own question marks).

This script measures the first: for every hepflows class of a code whose |M|^2 is that
closed form (two quark legs, three gluon legs), the ratio of the class cross-section with
the closed form as Pythia codes it (s/2 -> s-hat/2) to the one as meant, integrated over
the same phase space and cuts (flat points, every class's own weight). Then it reads a
``multijet.py`` result (``--reference``) and prints each code's pull as measured and with
Pythia's sigma divided by that ratio (136: by 2).

Usage: ``python benchmarks/multijet_pythia_crossing.py [--out FILE.json]``; the last line
of output is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time
from pathlib import Path

import torch

from common import finish
from hepflows.physics.amplitudes import mdot
from hepflows.physics.processes import MultiJet, MultiJetParameters
from hepflows.physics.processes.multijet import class_cross_sections
from hepflows.physics.pythia import qqbar_ggg_closed_form
from multijet import pythia_code

GLUON = 21
RESULTS = Path(__file__).parent / "results"


def closed_form_slots(cls: object) -> list[int] | None:
    """The legs (beams first) in the closed form's slots (p_+, p_-, k_1, k_2, k_3): the two
    quark legs, then the three gluons; None unless the class has exactly that content."""
    pids = [*cls.amplitude.incoming, *cls.amplitude.outgoing]
    quarks = [i for i, pid in enumerate(pids) if pid != GLUON]
    gluons = [i for i, pid in enumerate(pids) if pid == GLUON]
    return quarks + gluons if (len(quarks), len(gluons)) == (2, 3) else None


def ratios(mj: MultiJet, n: int, batches: int, seed: int) -> dict[int, dict]:
    """Per Pythia code: sigma(closed form as coded) / sigma(as meant) over its classes, with
    the spread of the per-batch ratios as its error."""
    g = torch.Generator().manual_seed(seed)
    picked = {i: (pythia_code(c.amplitude.incoming, c.amplitude.outgoing), slots)
              for i, c in enumerate(mj.classes)
              if (slots := closed_form_slots(c)) is not None}  # fmt: skip
    per_batch: dict[int, list[float]] = {}
    sums: dict[int, list[float]] = {}
    for _ in range(batches):
        u = torch.rand(n, mj.dims, generator=g, dtype=torch.float64)
        p, weight = mj.momenta(u)
        keep = mj.cuts(p)
        p, weight = p[keep], weight[keep]
        mu2 = mj.scale2(p)
        coupling = (4 * math.pi * mj.alpha_s(mu2)) ** mj.params.n_jets
        shat = mdot(p[:, 0] + p[:, 1], p[:, 0] + p[:, 1])
        batch: dict[int, list[float]] = {}
        for i, (code, slots) in picked.items():
            c = class_cross_sections([mj.classes[i]], p, weight, mj.pdf, mj.pids, mu2,
                                     coupling, mj.sqrt_s)[0]  # fmt: skip
            q = p[:, slots]
            r = qqbar_ggg_closed_form(q, s_half=shat / 2) / qqbar_ggg_closed_form(q)
            acc = batch.setdefault(code, [0.0, 0.0])
            acc[0] += float((c * r).sum())
            acc[1] += float(c.sum())
        for code, (num, den) in batch.items():
            per_batch.setdefault(code, []).append(num / den)
            tot = sums.setdefault(code, [0.0, 0.0])
            tot[0] += num
            tot[1] += den
    out = {}
    for code, (num, den) in sums.items():
        spread = torch.tensor(per_batch[code], dtype=torch.float64)
        out[code] = {"ratio_as_coded_to_as_meant": num / den,
                     "ratio_error": float(spread.std() / math.sqrt(len(spread))),
                     "classes": [mj.classes[i].label for i, (c, _) in picked.items()
                                 if c == code]}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reference", type=Path, default=RESULTS / "multijet_jjj.json",
                    help="a multijet.py result with the 3-jet comparison per process code")
    ap.add_argument("--points", type=int, default=100_000, help="flat points per batch")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reference = json.loads(args.reference.read_text())["jjj"]
    params = {k: v for k, v in reference.items() if k == "pythia_settings"}
    alpha_s = next(float(s.split("=")[1]) for s in params["pythia_settings"]
                   if s.startswith("SigmaProcess:alphaSvalue"))  # fmt: skip
    pt_min = next(float(s.split("=")[1]) for s in params["pythia_settings"]
                  if s.startswith("PhaseSpace:pTHat3Min"))  # fmt: skip
    dr_min = next(float(s.split("=")[1]) for s in params["pythia_settings"]
                  if s.startswith("PhaseSpace:RsepMin"))  # fmt: skip
    mu = math.sqrt(next(float(s.split("=")[1]) for s in params["pythia_settings"]
                        if s.startswith("SigmaProcess:renormFixScale")))  # fmt: skip
    mj = MultiJet(MultiJetParameters(n_jets=3, pt_min=pt_min, scale=mu, alpha_s=alpha_s,
                                     dr_min=dr_min))  # fmt: skip
    print(f"pp -> 3 jets as in {args.reference.name}: p_T > {pt_min:g} GeV, Delta R > "
          f"{dr_min:g}, mu = {mu:g} GeV, alpha_s = {alpha_s:.5f}; {args.batches} x "
          f"{args.points} flat points")  # fmt: skip
    t0 = time.perf_counter()
    measured = ratios(mj, args.points, args.batches, args.seed)
    seconds = time.perf_counter() - t0
    factors = {code: (r["ratio_as_coded_to_as_meant"], r["ratio_error"])
               for code, r in measured.items()}  # fmt: skip
    factors[136] = (2.0, 0.0)  # Pythia's "second possible crossing"
    codes = {}
    total = [0.0, 0.0]
    for code_s, row in reference["by_pythia_process"].items():
        code = int(code_s)
        factor, factor_err = factors.get(code, (1.0, 0.0))
        py, py_err = row["pythia_pb"], row["pythia_error_pb"]
        ours, ours_err = row["hepflows_pb"], row["hepflows_error_pb"]
        corrected = py / factor
        corrected_err = corrected * math.hypot(py_err / py, factor_err / factor)
        pull = (ours - corrected) / math.hypot(ours_err, corrected_err)
        total[0] += corrected
        total[1] += corrected_err**2
        codes[code] = {"process": row["process"], "pythia_pb": py, "pythia_error_pb": py_err,
                       "hepflows_pb": ours, "hepflows_error_pb": ours_err,
                       "pull_as_measured": row["pull"], "pythia_factor": factor,
                       "pythia_factor_error": factor_err, "pythia_corrected_pb": corrected,
                       "pull_corrected": pull}  # fmt: skip
        if code in measured:
            codes[code]["classes"] = measured[code]["classes"]
        print(f"  {code} {row['process']:32s} Pythia {py:9.1f} +- {py_err:5.1f}  hepflows "
              f"{ours:9.1f} +- {ours_err:5.1f}  pull {row['pull']:+6.2f}  | Pythia / "
              f"{factor:.4f} (+- {factor_err:.4f}): pull {pull:+6.2f}")  # fmt: skip
    total_pull = (reference["sigma_pb"] - total[0]) / math.hypot(reference["error_pb"],
                                                                 math.sqrt(total[1]))  # fmt: skip
    print(f"  total: hepflows {reference['sigma_pb']:.1f} +- {reference['error_pb']:.1f}, "
          f"Pythia as measured {reference['pythia_sigma_pb']:.1f} (pull "
          f"{reference['pythia_pull']:+.2f}), corrected {total[0]:.1f} +- "
          f"{math.sqrt(total[1]):.1f} (pull {total_pull:+.2f}); {seconds:.0f} s")  # fmt: skip
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                         f"torch {torch.__version__}",
              "reference": str(args.reference.name), "points": args.points * args.batches,
              "seed": args.seed, "seconds": seconds,
              "ratio_as_coded_to_as_meant": {str(c): m["ratio_as_coded_to_as_meant"]
                                             for c, m in measured.items()},
              "codes": {str(c): v for c, v in sorted(codes.items())},
              "total_pythia_corrected_pb": total[0],
              "total_pull_corrected": total_pull,
              "worst_abs_pull_corrected": max(abs(v["pull_corrected"]) for v in codes.values()),
              "worst_abs_pull_as_measured": max(abs(v["pull_as_measured"])
                                                for v in codes.values())}  # fmt: skip
    finish(result, args.out)


if __name__ == "__main__":
    main()
