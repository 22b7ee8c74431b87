"""Granular calorimeters: layer-to-layer flows on toy CaloChallenge dataset-2 electrons.

Set-up (2 CPU cores):

* data: ``ToySimulator("ds2", particle="electron")`` (45 layers x 16 angles x 9
  radii = 6 480 voxels, the tungsten-silicon toy medium), incident energies
  log-uniform in 1 GeV - 1 TeV as in the challenge, spots capped at
  ``--max-spots`` per shower for speed; ``--n-train`` showers to train on (the
  last 10 % held out for validation) and a fresh ``--n-eval`` (another seed) as
  the reference. Both are written chunk by chunk to ``--data-dir`` (reused by a
  later run with the same settings); training reads its file in chunks (never
  whole); each model's samples are generated into a file chunk by chunk and the
  evaluation streams the files;
* models (:mod:`hepflows.calo.models`): ``l2l`` (L2LFlow: energy flow, then one
  MAF layer flow shared by all layers, conditioned on the previous layer),
  ``icaloflow`` (the IAF student of that layer flow, distilled from it:
  iCaloFlow's teacher/student per layer; one training gives both) and
  ``conv-l2l`` (convolutional coupling layer flows, periodic in angle);
* evaluation: :func:`hepflows.calo.evaluate`: the fixed classifier on voxels
  ("low") and on high-level features ("high"), separation powers, FPD, KPD;
* timing: ms per shower at batch 1000 (the MAF teacher: 200 showers in one batch)
  and batch 1 per model; dataset 3
  (45 x 50 x 18 = 40 500 voxels): generation time and peak memory per shower of
  the fastest model's architecture, in a fresh process (untrained weights: the
  cost of sampling does not depend on the weights' values); memory is the rise of
  the peak RSS (Linux ``VmHWM``, reset before sampling) over the RSS before it.

Training is resumable (``--checkpoint-dir``). The last line of output is one JSON
object.

Usage: ``python benchmarks/calo_granular.py [--quick] [--out
benchmarks/results/calo_granular.json] [--plot docs/calo_granular.png]``
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import platform
import queue as queue_module
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import finish, per_shower_ms  # noqa: E402
from hepflows.calo import ToySimulator, evaluate, iter_showers  # noqa: E402
from hepflows.calo.l2lflow import LAYER_ALPHA, LAYER_NOISE_MEV  # noqa: E402
from hepflows.calo.models import build_model  # noqa: E402
from hepflows.calo.training import TrainingPlan, train  # noqa: E402

#: Model label -> (architecture in hepflows.calo.models, sampler).
MODELS = {"l2l": ("l2l", "teacher"), "icaloflow": ("l2l", "student"),
          "conv-l2l": ("conv-l2l", "teacher")}  # fmt: skip


def showers_file(directory: Path, n: int, seed: int, max_spots: int) -> tuple[Path, float]:
    """``n`` toy ds2 electrons written once to ``directory`` chunk by chunk (resumable); the
    file and the seconds it took (0 if it was there)."""
    sim = ToySimulator("ds2", particle="electron", energy_range_mev=(1e3, 1e6),
                       energy_distribution="log-uniform", max_spots=max_spots,
                       seed=seed)  # fmt: skip
    kev = sim.geometry.threshold_mev * 1e3  # the readout threshold (15.15 keV) names the file
    path = directory / f"ds2_electrons_{n}_seed{seed}_spots{max_spots}_thr{kev:g}keV.h5"
    t0 = time.perf_counter()
    if not path.exists():
        sim.simulate_to_file(path, n, progress=False)
    return path, time.perf_counter() - t0


def _ds3_worker(arch: str, flow2: dict, batch: int, queue) -> None:
    torch.set_num_threads(2)
    model = build_model(arch, "ds3", flow2=flow2, student=arch == "l2l", seed=0)
    # preprocessing statistics of a trained model: here neutral values (timing only)
    with torch.no_grad():
        model.log_e_range.copy_(torch.tensor([3.0, 6.0]))
        model.u0_scale.fill_(1.05)
        for name in ("y1_std", "loge_layer_std", "y2_std", "moment_std"):
            getattr(model, name).fill_(1.0)
        model.threshold_mev.fill_(1e-3)
        model.fitted.fill_(True)
    sampler = "student" if arch == "l2l" else "teacher"
    e = np.full(batch, 1e5)
    model.sample(e[:1], model=sampler, batch_size=1)  # warm-up: first-call allocations
    base = _reset_peak_rss()
    t0 = time.perf_counter()
    out = model.sample(e, model=sampler, batch_size=batch,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    seconds = time.perf_counter() - t0
    peak = _peak_rss_mb()
    queue.put({"ms_per_shower": 1e3 * seconds / batch, "voxels": out.voxels.shape[1],
               "mb_per_shower": (peak - base) / batch, "peak_rss_mb": peak,
               "rss_before_mb": base, "batch": batch, "sampler": sampler})  # fmt: skip


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1]) / 1024  # kB
    raise KeyError(key)


def _reset_peak_rss() -> float:
    """Reset the process's peak RSS (Linux: ``5`` into /proc/self/clear_refs); the RSS now, MB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """Peak RSS since the last :func:`_reset_peak_rss`, MB."""
    return _status_mb("VmHWM")


def ds3_cost(arch: str, flow2: dict, batch: int) -> dict:
    """Generation time and memory per dataset-3 shower, in a fresh process (its peak RSS
    above the RSS after building the model, divided by the batch)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_ds3_worker, args=(arch, flow2, batch, queue))
    proc.start()
    while True:  # a worker that dies (e.g. out of memory) must not hang the benchmark
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not proc.is_alive():
                raise SystemExit(
                    f"the dataset-3 worker died (exit code {proc.exitcode})") from None
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data and few epochs")
    ap.add_argument("--n-train", type=int, default=None, help="default 50k (--quick 2k)")
    ap.add_argument("--n-eval", type=int, default=None, help="default 50k (--quick 2k)")
    ap.add_argument("--models", default="l2l,icaloflow,conv-l2l")
    ap.add_argument("--epochs", default=None,
                    help="flow1,teacher,student epochs (default 60,10,5; --quick 20,2,1; the "
                         "45-D energy flow costs ~2 s per epoch of 4k showers, the layer flows "
                         "minutes)")
    ap.add_argument("--max-spots", type=int, default=5000)
    ap.add_argument("--noise-mev", type=float, default=None,
                    help="width of the voxels' U(0, noise) training noise, MeV (default: the "
                         f"layer flows' {LAYER_NOISE_MEV:g})")
    ap.add_argument("--alpha", type=float, default=None,
                    help=f"regulator of the voxel fractions' logit (default: {LAYER_ALPHA:g})")
    ap.add_argument("--layer-bound", type=float, default=None,
                    help="spline bound of the layer flows (default: the models' own, 5)")
    ap.add_argument("--anchor", action="store_true",
                    help="the layer flows model log(E_voxel / noise), not logit fractions")
    ap.add_argument("--ds3-batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", type=Path, default=Path("calo_granular_data"))
    ap.add_argument("--checkpoint-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    labels = args.models.split(",")
    unknown = set(labels) - set(MODELS)
    if unknown:
        raise SystemExit(f"unknown --models {sorted(unknown)}: choose from {sorted(MODELS)}")
    n_train = args.n_train or (2000 if args.quick else 50_000)
    n_eval = args.n_eval or (2000 if args.quick else 50_000)
    epochs = [int(v) for v in (args.epochs or ("20,2,1" if args.quick else "60,10,5")).split(",")]
    result: dict = {
        "date": datetime.date.today().isoformat(), "quick": args.quick,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch "
                   f"{torch.__version__}",
        "n_train": n_train, "n_eval": n_eval, "seed": args.seed, "max_spots": args.max_spots,
    }  # fmt: skip
    # only the options given: the models keep their own defaults otherwise
    noise = {k: v for k, v in (("noise_mev", args.noise_mev), ("alpha", args.alpha))
             if v is not None}  # fmt: skip
    if args.anchor:
        noise["anchor"] = True

    print("== Data: toy dataset-2 electrons, 1 GeV - 1 TeV log-uniform")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    train_path, sim_s = showers_file(args.data_dir, n_train, args.seed, args.max_spots)
    ref_path, _ = showers_file(args.data_dir, n_eval, args.seed + 1000, args.max_spots)
    # only the reference's incident energies in memory; the showers stay in the file
    e = np.concatenate([c.energy for c in iter_showers(ref_path, chunk_size=5000)])
    result["simulator_seconds"] = sim_s
    print(f"{n_train} training showers ({sim_s:.0f} s to simulate, 0 if cached), {n_eval} "
          f"fresh reference showers")  # fmt: skip

    archs = sorted({MODELS[label][0] for label in labels})
    trained, samples, timing, models_out = {}, {}, {}, {}
    for arch in archs:
        student = arch == "l2l" and "icaloflow" in labels
        plan = TrainingPlan(epochs={"flow1": epochs[0], "teacher": epochs[1],
                                    "student": epochs[2] if student else 0},
                            seed=args.seed)  # fmt: skip
        flow2 = None if args.layer_bound is None else {"bound": args.layer_bound}
        model = build_model(arch, "ds2", student=student, seed=args.seed, flow2=flow2, **noise)
        print(f"\n== {arch}: flow I {model.flow1.config}\nlayer flow {model.teacher.config}"
              f"\nvoxel noise {model.noise_mev:g} MeV, alpha {model.alpha:g}, anchored "
              f"{model.anchor}\nplan {plan}")  # fmt: skip
        ckpt = None if args.checkpoint_dir is None else args.checkpoint_dir / f"{arch}.ckpt"
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        history = train(model, train_path, plan, checkpoint=ckpt, progress=False, log=print)
        seconds = time.perf_counter() - t0
        trained[arch] = model
        models_out[arch] = {
            "flow1": model.flow1_config, "layer_flow": model.flow2_config,
            "noise_mev": model.noise_mev, "alpha": model.alpha, "anchor": model.anchor,
            # the stages' own times, kept in the checkpoint: a resumed or finished
            # checkpoint reports the training it holds, not this call's wall time
            "epochs": plan.epochs, "train_seconds": sum(v["seconds"] for v in history.values()),
            "train_call_seconds": seconds,
            "stage_seconds": {k: v["seconds"] for k, v in history.items()},
            "parameters": sum(p.numel() for p in model.parameters()),
        }  # fmt: skip
        print(f"{arch}: trained in {models_out[arch]['train_seconds'] / 60:.1f} min "
              f"({seconds / 60:.1f} min in this run)")  # fmt: skip

    print("\n== Sampling (into files, chunk by chunk) and timing")
    for label in labels:
        arch, sampler = MODELS[label]
        model = trained[arch]
        g = torch.Generator().manual_seed(args.seed + 7)
        t0 = time.perf_counter()
        samples[label] = args.data_dir / f"gen_{label}_{n_train}_{n_eval}_seed{args.seed}.h5"
        model.sample_to_file(samples[label], e, model=sampler, seed=args.seed + 7,
                             batch_size=1000, progress=False, resume=False)  # fmt: skip
        gen_s = time.perf_counter() - t0
        # a MAF teacher needs D passes per layer: timed on 200 showers in one batch
        n_t = min(200 if sampler == "teacher" and arch == "l2l" else 1000, len(e))

        def run(n: int, batch: int, m=model, s=sampler, g=g):
            return m.sample(e[:n], model=s, batch_size=batch, generator=g)

        ms_1000 = per_shower_ms(lambda n=n_t: run(n, 1000), n_t, 1)
        ms_1 = per_shower_ms(lambda: run(1, 1), 1, 5)
        timing[label] = {"ms_per_shower_batch1000": ms_1000, "ms_per_shower_batch1": ms_1,
                         "timing_showers": n_t, "generate_seconds": gen_s}  # fmt: skip
        print(f"{label:<10} {ms_1000:8.2f} ms/shower at batch 1000, {ms_1:8.1f} ms at batch 1")

    print("\n== Evaluation (fixed classifier, low and high level; FPD, KPD)")
    # streamed: features from every shower, the classifiers on the first max_showers
    report = evaluate(ref_path, samples, levels=("low", "high"), gbdt=False, plot=args.plot,
                      seed=args.seed, progress=True)  # fmt: skip
    per_model = {}
    for label in labels:
        r = report["models"][label]
        per_model[label] = {
            "auc_low": r["classifier"]["low"]["auc"], "auc_high": r["classifier"]["high"]["auc"],
            "fpd": r["fpd"], "kpd": r["kpd"], "separation_mean": r["separation_mean"],
            **timing[label],
        }  # fmt: skip
    best = min(labels, key=lambda k: per_model[k]["auc_high"])
    fastest = min(labels, key=lambda k: per_model[k]["ms_per_shower_batch1000"])
    print("\n== Dataset 3: generation cost of the fastest model's architecture")
    arch3 = MODELS[fastest][0]
    ds3 = ds3_cost(arch3, trained[arch3].flow2_config, args.ds3_batch)
    print(f"{fastest} ({arch3}, {ds3['sampler']}) on ds3: {ds3['ms_per_shower']:.1f} ms and "
          f"{ds3['mb_per_shower']:.2f} MB per shower at batch {args.ds3_batch}")  # fmt: skip
    result.update(
        models=models_out, evaluation=report, per_model=per_model, best_model=best,
        fastest_model=fastest,
        auc_high={k: v["auc_high"] for k, v in per_model.items()},
        auc_low={k: v["auc_low"] for k, v in per_model.items()},
        ms_per_shower_batch1000={k: v["ms_per_shower_batch1000"] for k, v in per_model.items()},
        ds3=ds3, ds3_ms_per_shower=ds3["ms_per_shower"], ds3_mb_per_shower=ds3["mb_per_shower"],
    )  # fmt: skip
    finish(result, args.out)


if __name__ == "__main__":
    main()
