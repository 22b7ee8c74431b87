"""What the lateral moments and the toy simulator's spots do to CaloFlow's voxel AUC (mid size).

One teacher per configuration, trained and judged the same way, so that the
choices behind ``CaloFlow(moments=2)`` and ``ToySimulator``'s spot defaults
can be re-checked in ~8 minutes each on 2 CPU cores:

* data: ``ToySimulator("calogan", particle="photon")``, 1-100 GeV uniform,
  ``--n-train`` training showers (seed 0) and a fresh reference of
  ``--n-eval`` (seed 1000), with ``--max-spots`` (default: none, GFlash's
  count) and ``--equal-spots`` (GFlash's equal-energy spots);
* model: flow I as in :data:`hepflows.calo.caloflow.FLOW1_DEFAULTS` (15
  epochs), flow II teacher MAF 4 blocks x 8 bins x [128] (``--epochs``), no
  student, ``--moments`` 0, 1 or 2;
* judged by the converged classifier test of :mod:`hepflows.calo.classifier`
  (MLP on voxel / E_inc, log voxels and features; GBDT on voxel / E_inc),
  teacher vs reference.

Usage: ``python benchmarks/calo_ablation.py --moments 0 [--max-spots 2000
--equal-spots] [--out result.json]``. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import finish  # noqa: E402
from hepflows.calo import CaloFlow, ToySimulator, classifier_test, gbdt_test  # noqa: E402
from hepflows.calo.training import TrainingPlan, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moments", type=int, default=2, help="0, 1 (centres) or 2 (+ widths)")
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--n-eval", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=10, help="teacher epochs")
    ap.add_argument("--max-spots", type=int, default=None)
    ap.add_argument("--equal-spots", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    sim = {"max_spots": args.max_spots, "spot_fluctuations": not args.equal_spots}
    train_sim = ToySimulator("calogan", seed=0, **sim)
    showers = train_sim.simulate(args.n_train)
    reference = ToySimulator("calogan", seed=1000, **sim).simulate(args.n_eval)
    print(f"{train_sim!r}: {args.n_train} training, {args.n_eval} reference showers")

    flow2 = {"transforms": 4, "bins": 8, "hidden": [128]}
    model = CaloFlow("calogan", flow2=flow2, student=False, moments=args.moments, seed=0)
    plan = TrainingPlan(epochs={"flow1": 15, "teacher": args.epochs, "student": 0})
    t0 = time.perf_counter()
    history = train(model, showers, plan, progress=False)
    train_s = time.perf_counter() - t0
    print(f"moments={args.moments}: trained in {train_s:.0f} s, teacher val. loss "
          f"{min(history['teacher']['val']):.4f}")  # fmt: skip

    gen = model.sample(reference.energy, "teacher", generator=torch.Generator().manual_seed(3))
    judged = {v: classifier_test(reference, gen, v) for v in ("low", "log", "high")}
    judged["gbdt"] = gbdt_test(reference, gen, "low")
    for r in judged.values():
        print(r.summary())
    finish(
        {
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "simulator": repr(train_sim),
            "moments": args.moments,
            "n_train": args.n_train,
            "n_eval": args.n_eval,
            "teacher_epochs": args.epochs,
            "flow2": flow2,
            "train_seconds": train_s,
            **{f"auc_{k}_teacher": r.auc for k, r in judged.items()},
            "classifier_converged": all(r.converged for r in judged.values()),
            **{k: r.to_dict() for k, r in judged.items()},
        },  # fmt: skip
        args.out,
    )


if __name__ == "__main__":
    main()
