"""Goodness of fit of every hepflows-vs-Pythia distribution in the multi-jet results, taken
together: is the number of histograms above chi^2/ndf = 1.5 what a correct generator gives?

For a correct generator each histogram's chi^2 follows a chi^2(ndf) law, so a fraction
P(chi^2 > 1.5 ndf) of them (about 10 % at ndf = 9-14) lands above 1.5 by chance; the
p-values are uniform and the summed chi^2 follows chi^2(sum ndf) if the histograms are
independent (they are not quite: several observables come from one sample).

    python benchmarks/multijet_gof.py benchmarks/results/multijet.json \
        benchmarks/results/multijet_seed2.json benchmarks/results/multijet_jjj_distributions.json \
        --out benchmarks/results/multijet_gof.json

Last line JSON: histograms, their chi^2/ndf and p-values, the summed chi^2 / ndf and its
p-value, the observed and expected number above 1.5, and the Kolmogorov-Smirnov p-value of
the p-values against uniform.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy import stats

from common import finish


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="+", help="benchmarks/multijet.py result files")
    ap.add_argument("--bar", type=float, default=1.5, help="the chi^2/ndf bar")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for path in args.results:
        data = json.loads(path.read_text())
        for process in ("jj", "jjj", "llj"):
            dist = data.get(process, {}).get("distributions")
            if not dist:
                continue
            for name, v in dist["chi2"].items():
                rows.append({"file": path.name, "process": process, "observable": name,
                             "chi2": v["chi2"], "ndf": v["ndf"],
                             "chi2_per_ndf": v["chi2"] / v["ndf"], "p_value": v["p_value"]})
    if not rows:
        raise SystemExit("no distributions in these files: run multijet.py --distributions")
    chi2 = sum(r["chi2"] for r in rows)
    ndf = sum(r["ndf"] for r in rows)
    expected = sum(stats.chi2.sf(args.bar * r["ndf"], r["ndf"]) for r in rows)
    above = [r for r in rows if r["chi2_per_ndf"] > args.bar]
    for r in rows:
        print(f"  {r['file']:34s} {r['process']:4s} {r['observable']:9s} "
              f"{r['chi2']:6.1f}/{r['ndf']:2d} = {r['chi2_per_ndf']:.2f}  p {r['p_value']:.3f}")
    ks = stats.kstest([r["p_value"] for r in rows], "uniform").pvalue
    lowest = min(r["p_value"] for r in rows)
    print(f"summed chi2 {chi2:.1f} / {ndf} = {chi2 / ndf:.3f}, p {stats.chi2.sf(chi2, ndf):.3f}; "
          f"{len(above)} of {len(rows)} above {args.bar} (a correct generator: "
          f"{expected:.2f} expected); lowest p {lowest:.3f} (x {len(rows)} = "
          f"{min(1.0, lowest * len(rows)):.2f} after the look-elsewhere factor); KS of the "
          f"p-values against uniform: p {ks:.3f}")  # fmt: skip
    finish({"histograms": rows, "summed_chi2": chi2, "summed_ndf": ndf,
            "summed_chi2_per_ndf": chi2 / ndf, "summed_p_value": stats.chi2.sf(chi2, ndf),
            "above_bar": len(above), "expected_above_bar_if_correct": expected,
            "bar": args.bar, "lowest_p_value": lowest,
            "lowest_p_value_bonferroni": min(1.0, lowest * len(rows)),
            "ks_p_value_of_p_values": ks,
            "files": [str(p) for p in args.results]}, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
