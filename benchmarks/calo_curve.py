"""CaloFlow teacher's voxel AUC against training size and epochs: what limits it on 2 cores.

One teacher per point ``N:E`` (``--points``, default ``5000:10,10000:10,
20000:10,20000:20``): ``N`` toy CaloGAN-like photon showers (seed 0) to train
on, flow I for 15 epochs and the flow II teacher (MAF 4 blocks x 8 bins x
[128], ``CaloFlow`` defaults otherwise, moments 2) for ``E`` epochs, no
student; then the teacher samples showers for the energies of one fresh
reference of ``--n-eval`` showers (seed 1000) and is judged by the converged
classifier test: the MLP on voxel / E_inc and on features, and the GBDT on
voxel / E_inc. The set-up of ``benchmarks/calo_ablation.py`` (its point
20000:10), so the two agree.

If the AUC falls with N at fixed E, more showers would help; if it falls
with E at fixed N, longer training would. The last line is one JSON object;
``--plot`` draws AUC against N.

Usage: ``python benchmarks/calo_curve.py [--points 5000:10,20000:10]
[--threads 1] [--out benchmarks/results/calo_curve.json] [--plot docs/calo_curve.png]``
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

FLOW2 = {"transforms": 4, "bins": 8, "hidden": [128]}


def point(pool, reference, n: int, epochs: int) -> dict:
    """Train one teacher on the first n showers of the pool and judge it."""
    model = CaloFlow("calogan", flow2=FLOW2, student=False, moments=2, seed=0)
    plan = TrainingPlan(epochs={"flow1": 15, "teacher": epochs, "student": 0})
    t0 = time.perf_counter()
    history = train(model, pool[:n], plan, progress=False)
    train_s = time.perf_counter() - t0
    gen = model.sample(reference.energy, "teacher", generator=torch.Generator().manual_seed(3))
    judged = {
        "low": classifier_test(reference, gen, "low"),
        "high": classifier_test(reference, gen, "high"),
        "gbdt": gbdt_test(reference, gen, "low"),
    }
    for r in judged.values():
        print(f"  {r.summary()}", flush=True)
    return {
        "n_train": n,
        "teacher_epochs": epochs,
        "train_seconds": train_s,
        "teacher_val_loss": min(history["teacher"]["val"]),
        **{f"auc_{k}": r.auc for k, r in judged.items()},
        "converged": all(r.converged for r in judged.values()),
        "classifiers": {k: r.to_dict() for k, r in judged.items()},
    }


def plot(points: list[dict], path: Path) -> None:
    """AUC against training showers, one line per classifier and epoch count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    from hepflows.io.atomic import atomic_write

    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(8, 6), constrained_layout=True)
    for epochs in sorted({p["teacher_epochs"] for p in points}):
        sel = sorted(
            (p for p in points if p["teacher_epochs"] == epochs), key=lambda p: p["n_train"]
        )
        for key, label, style in (("auc_low", "MLP voxel/E_inc", "o-"), ("auc_gbdt", "GBDT", "s--"),
                                  ("auc_high", "MLP features", "^:")):  # fmt: skip
            ax.plot([p["n_train"] for p in sel], [p[key] for p in sel], style,
                    label=f"{label}, teacher {epochs} epochs")  # fmt: skip
    ax.axhline(0.70, color="0.5", lw=1, label="CaloFlow teacher bar 0.70")
    ax.set_xscale("log")
    ax.set_xlabel("training showers")
    ax.set_ylabel("AUC (0.5: indistinguishable)")
    ax.legend(fontsize="x-small")
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", default="5000:10,10000:10,20000:10,20000:20",
                    help="N:E pairs, training showers and teacher epochs")  # fmt: skip
    ap.add_argument("--n-eval", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    grid = [tuple(int(v) for v in item.split(":")) for item in args.points.split(",")]
    sim = ToySimulator("calogan", particle="photon", seed=0)
    pool = sim.simulate(max(n for n, _ in grid), progress=False)
    reference = ToySimulator("calogan", particle="photon", seed=1000).simulate(
        args.n_eval, progress=False
    )
    print(f"{sim!r}: pool of {len(pool)} training showers; {args.n_eval} reference showers")
    points = []
    for n, epochs in grid:
        print(f"point {n} showers, teacher {epochs} epochs", flush=True)
        points.append(point(pool, reference, n, epochs))
    print(f"{'N':>7} {'epochs':>6} {'train s':>8} {'MLP low':>8} {'MLP high':>9} {'GBDT':>6}")
    for p in points:
        print(f"{p['n_train']:>7} {p['teacher_epochs']:>6} {p['train_seconds']:>8.0f} "
              f"{p['auc_low']:>8.3f} {p['auc_high']:>9.3f} {p['auc_gbdt']:>6.3f}")  # fmt: skip
    if args.plot:
        plot(points, args.plot)
    finish(
        {
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch "
            f"{torch.__version__}",
            "simulator": repr(sim),
            "n_eval": args.n_eval,
            "flow2": FLOW2,
            "points": points,
            "classifier_converged": all(p["converged"] for p in points),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
