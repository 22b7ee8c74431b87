"""CaloFlow teacher and student on toy CaloGAN-like photon showers, judged CaloChallenge-style.

Set-up (reduced for 2 CPU cores; CaloFlow itself trained for hours on a GPU):

* data: ``ToySimulator(geometry="calogan", particle="photon")`` with its
  defaults (GFlash's spot count, fluctuating spot energies), incident
  energies uniform in 1-100 GeV; ``--n-train`` showers (default 50k) to train
  on (10 % of them held out for validation) and a *fresh* sample of
  ``--n-eval`` showers (default 50k, another seed) as the reference;
* model: :class:`hepflows.calo.CaloFlow` with the sizes printed at the start
  (flow I: MAF over the 3 layer energies and ``--moments`` lateral moments
  per layer, default 2: centres and widths; flow II teacher: MAF over the 504
  voxels; student: IAF of the same configuration, distilled from the teacher
  by probability density distillation);
* evaluation: :func:`hepflows.calo.evaluate` with the fixed classifier of
  ``design/calo.md`` (MLP 3x512, batch 1000, 60/20/20 split, Adam from 1e-3
  halved on validation plateaus,
  standardised inputs, trained until the validation loss stops improving,
  isotonic calibration) on voxel / E_inc ("low", the CaloChallenge view), on
  log10(1 + E_voxel / keV) ("log") and on high-level features ("high"), the
  GBDT cross-check on voxel / E_inc, plus separation powers and FPD/KPD;
* timing (CPU, ``--threads`` threads): teacher per shower on a few hundred
  showers at once (a MAF samples in one pass per voxel), student per shower
  at batch 10^4 and at batch 1, the toy simulator per shower.

The last line of output is one JSON object. ``--checkpoint`` makes training
resumable (a cut-off run continues where it stopped).

Usage: ``python benchmarks/calo.py [--quick] [--out benchmarks/results/calo.json]
[--plot calo.png] [--checkpoint calo_bench.safetensors]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import finish, per_shower_ms  # noqa: E402
from hepflows.calo import CaloFlow, ToySimulator, evaluate  # noqa: E402
from hepflows.calo.training import TrainingPlan, train  # noqa: E402


@contextlib.contextmanager
def standard_maf_inversion():
    """Invert MAF blocks as nflows, zuko and CaloFlow do: F full conditioner passes per block.

    hepflows computes only feature i's conditioner row in pass i
    (``MADE.feature``), about (F + P) / (1 + P) times fewer multiply-adds for
    P spline parameters per feature (~20x for 504 voxels and 8 bins); this
    restores the textbook inversion so the student's speed-up can be quoted
    against the teacher of the CaloFlow papers too.
    """
    from hepflows.flows.autoregressive import MaskedAutoregressive

    def full_passes(self, y, context, inverse):
        out = y.new_zeros(y.shape)
        for _ in range(self.features):  # after pass k the first k features are exact
            ot, ladj = self.elementwise(y.T, self.made(out, context), inverse=inverse)
            out = ot.T
        return out, ladj.sum(0)

    saved = MaskedAutoregressive._sequential
    MaskedAutoregressive._sequential = full_passes
    try:
        yield
    finally:
        MaskedAutoregressive._sequential = saved


def teacher_standard_ms(model, e, n: int, g) -> float:
    """ms per shower of the teacher with :func:`standard_maf_inversion`, on n showers."""
    with standard_maf_inversion():
        return per_shower_ms(lambda: model.sample(e[:n], "teacher", generator=g), n, 1)


def timing(model, e, quick: bool, seed: int) -> dict:
    """Sampling times per shower (CPU): teacher, student at batch 10^4 and 1, simulator."""
    print("\n== Timing (CPU)")
    g = torch.Generator().manual_seed(seed + 1)
    n_t, n_s = (100, 2000) if quick else (300, 10_000)
    t_teacher = per_shower_ms(lambda: model.sample(e[:n_t], "teacher", generator=g), n_t, 1)
    t_student = per_shower_ms(lambda: model.sample(e[:n_s], "student", generator=g), n_s)
    t_student1 = per_shower_ms(lambda: model.sample(e[:1], "student", generator=g), 1, 20)
    t_sim = per_shower_ms(lambda: ToySimulator("calogan", seed=5).simulate(n_s), n_s, 1)
    n_std = 20 if quick else 50
    t_std = teacher_standard_ms(model, e, n_std, g)
    print(f"teacher  {t_teacher:9.3f} ms/shower ({n_t} showers at once)")
    print(f"student  {t_student:9.4f} ms/shower (batch {n_s}); {t_student1:.2f} ms at batch 1")
    print(f"toy sim  {t_sim:9.4f} ms/shower; student speed-up vs teacher "
          f"{t_teacher / t_student:.0f}x")  # fmt: skip
    print(f"teacher  {t_std:9.3f} ms/shower with the textbook MAF inversion (F full passes "
          f"per block, as nflows/zuko/CaloFlow; {n_std} showers): student speed-up "
          f"{t_std / t_student:.0f}x")  # fmt: skip
    return dict(
        ms_per_shower_teacher=t_teacher, ms_per_shower_student=t_student,
        ms_per_shower_student_batch1=t_student1, ms_per_shower_simulator=t_sim,
        student_speedup_vs_teacher=t_teacher / t_student,
        teacher_timing_showers=n_t, student_timing_batch=n_s,
        ms_per_shower_teacher_standard_maf=t_std, teacher_standard_showers=n_std,
        student_speedup_vs_standard_maf_teacher=t_std / t_student,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10k training showers, few epochs")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-eval", type=int, default=None)
    ap.add_argument(
        "--epochs",
        type=str,
        default=None,
        help="flow1,teacher,student epochs (default 40,40,15; --quick 10,4,2)",
    )
    ap.add_argument("--flow2", type=str, default=None,
                    help='flow II sizes as JSON, default {"transforms": 4, "bins": 8, '
                         '"hidden": [128]}')  # fmt: skip
    ap.add_argument(
        "--moments",
        type=int,
        default=2,
        help="lateral moments per layer in flow I (0: CaloFlow's original form)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--timing-only", action="store_true",
                    help="with --checkpoint of a finished run and --out of its JSON: add the "
                         "timing against the textbook MAF inversion to that JSON")  # fmt: skip
    ap.add_argument("--train-only", action="store_true",
                    help="stop after training (--checkpoint: evaluate in a later run)")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_train = args.n_train or (10_000 if args.quick else 50_000)
    n_eval = args.n_eval or (10_000 if args.quick else 50_000)
    epochs = [int(v) for v in (args.epochs or ("10,4,2" if args.quick else "40,40,15")).split(",")]
    flow2 = json.loads(args.flow2) if args.flow2 else {"transforms": 4, "bins": 8, "hidden": [128]}
    plan = TrainingPlan(epochs=dict(zip(("flow1", "teacher", "student"), epochs, strict=True)),
                        seed=args.seed)  # fmt: skip
    result: dict[str, object] = {
        "date": datetime.date.today().isoformat(), "quick": args.quick,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch "
                   f"{torch.__version__}",
        "n_train": n_train, "n_eval": n_eval, "seed": args.seed, "moments": args.moments,
    }  # fmt: skip

    print("== Data: toy CaloGAN-like photons, 1-100 GeV uniform")
    sim = ToySimulator("calogan", particle="photon", seed=args.seed)
    t0 = time.perf_counter()
    showers = sim.simulate(n_train, progress=False)
    sim_s = time.perf_counter() - t0
    reference = ToySimulator("calogan", particle="photon", seed=args.seed + 1000).simulate(
        n_eval, progress=False
    )
    result["simulator"] = repr(sim)
    print(f"{sim!r}\n{n_train} training showers in {sim_s:.1f} s; {n_eval} fresh reference showers")

    model = CaloFlow("calogan", flow2=flow2, moments=args.moments, seed=args.seed)
    print(f"flow I : {model.flow1.config}\nteacher: {model.teacher.config}\nstudent: IAF, same")
    print(f"plan   : {plan}")
    t0 = time.perf_counter()
    history = train(model, showers, plan, checkpoint=args.checkpoint, progress=False, log=print)
    train_s = time.perf_counter() - t0
    result.update(
        flow1=model.flow1_config, flow2=model.flow2_config, epochs=plan.epochs,
        batch_size=plan.batch_size, lr=plan.lr, train_seconds=train_s,
        stage_seconds={k: v["seconds"] for k, v in history.items()},
        best_epochs={k: v["best_epoch"] + 1 for k, v in history.items()},
        parameters={"flow1": sum(p.numel() for p in model.flow1.parameters()),
                    "flow2": sum(p.numel() for p in model.teacher.parameters())},
    )  # fmt: skip
    print(f"training: {train_s / 60:.1f} min in this process "
          f"(stages: { {k: round(v['seconds']) for k, v in history.items()} } s)")  # fmt: skip

    if args.train_only:
        return
    if args.timing_only:  # re-time a finished run and update its JSON
        if not (args.checkpoint and args.out and args.out.exists()):
            raise SystemExit("--timing-only needs --checkpoint and --out of a finished run")
        old = json.loads(args.out.read_text())
        old.update(timing(model, reference.energy, args.quick, args.seed))
        finish(old, args.out)
        return
    result.update(timing(model, reference.energy, args.quick, args.seed))
    g = torch.Generator().manual_seed(args.seed + 2)
    e = reference.energy

    print("\n== Evaluation against the fresh sample (fixed classifier of design/calo.md)")
    t0 = time.perf_counter()
    samples = {m: model.sample(e, m, generator=g) for m in ("teacher", "student")}
    gen_s = time.perf_counter() - t0
    report = evaluate(reference, samples, plot=args.plot, seed=args.seed, progress=True)
    result["evaluation"] = report
    result["classifier_converged"] = report["classifier_converged"]
    result["classifier_warnings"] = report["warnings"]
    for m in ("teacher", "student"):
        r = report["models"][m]
        for key in ("low", "log", "high", "gbdt"):
            result[f"auc_{key}_{m}"] = r["classifier"][key]["auc"]
        result[f"jsd_low_{m}"] = r["classifier"]["low"]["jsd"]
        result[f"fpd_{m}"] = r["fpd"]
        result[f"separation_mean_{m}"] = r["separation_mean"]
    print(f"(generating {2 * len(e)} showers took {gen_s:.0f} s)")
    cols = ("AUC low", "AUC log", "AUC high", "AUC GBDT", "JSD low", "FPD", "<S>")
    print(f"{'model':<8} " + " ".join(f"{c:>9}" for c in cols))
    for m in ("teacher", "student"):
        values = [result[f"auc_{k}_{m}"] for k in ("low", "log", "high", "gbdt")]
        values += [result[f"jsd_low_{m}"], result[f"fpd_{m}"], result[f"separation_mean_{m}"]]
        print(f"{m:<8} " + " ".join(f"{v:>9.4g}" for v in values))
    print(f"classifiers converged: {report['classifier_converged']}")
    finish(result, args.out)


if __name__ == "__main__":
    main()
