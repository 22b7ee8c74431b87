"""Scale: unweighted Drell-Yan events per core against Pythia 8, and 1 vs 2 processes.

The process is Pythia's: pp -> gamma*/Z -> e+ e- at 13 TeV, m_ll > 60 GeV, hard
process only (``PartonLevel:all = off``, ``HadronLevel:all = off``), hepflows
configured with Pythia's own conventions (:func:`hepflows.physics.pythia_parameters`).
Everything runs with one thread per process (``torch.set_num_threads(1)``,
``OMP_NUM_THREADS=1``).

(a) Per core, one process, side by side: Pythia's ``next()`` loop for
    ``--pythia-events`` accepted events, measured right before each hepflows
    measurement and for the headline in ``--rate-rounds`` alternating rounds
    (the median round's ratio counts: this VM's speed drifts within minutes);
    that is its hard-process rate (reading the leptons out of its event record
    in Python is timed separately and not counted), against hepflows'
    sharded-generation hot path on a trained multi-channel integrator: blocks
    of unweighted events (flow sampling, matrix element, PDFs, unweighting
    against a fixed w_max), their expansion to the full phase space and their
    particle records (flavours drawn by their share of the cross-section,
    colours, four-momenta), as Pythia's event record.
    Three integrators are measured: the headline (``--channel-weights learned``,
    MadNIS: a channel-weight network, one flow pass per point; ``--transforms
    3`` coupling blocks), the same with ``mixture`` weights (Kleiss-Pittau on
    the flow densities, one pass per channel), and the library default
    (mixture, 6 blocks for 3 dimensions).
    Writing a block to HDF5 is timed separately (per event) and reported.
(b) 1 and 2 processes (``torchrun``, gloo, one thread each; ``--repeats`` repeats, each
    a 1-process run then a 2-process run; the median repeat's ratio counts) on this 2-core
    machine: sharded generation of ``--events`` events into HDF5 shards
    (writing included, merging not), and integrator training with the same
    global batch and iterations; the speed-up t(1) / t(2) of each.
(c) The peak resident memory of every rank (``ru_maxrss``).
(d) ``--big-run 1e7``: the README's command ``hepflows generate drell-yan
    --events 1e7 --shards DIR --workers 2 --out all.h5`` timed whole (training,
    generation, merge).

Last line JSON. ``--quick``: fewer events. ``--worker`` is the mode the
script runs itself in under ``torchrun``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import finish  # noqa: E402
from hepflows import distributed  # noqa: E402
from hepflows.generate import (  # noqa: E402
    CHANNEL_WEIGHTS,
    LOSS,
    generate_events,
    generate_sharded,
)
from hepflows.integrate import NeuralIntegrator  # noqa: E402
from hepflows.integrate.blocks import generate_block, pilot, records_generator  # noqa: E402
from hepflows.physics import DrellYan, pythia_parameters  # noqa: E402
from hepflows.physics.pythia import pythia_drell_yan  # noqa: E402

SEED = 0


def max_rss_mb() -> float:
    """Peak resident memory of this process (MB; Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def drell_yan() -> tuple[Any, DrellYan, list[str]]:
    """Pythia set up for the hard process, and hepflows' Drell-Yan with its conventions."""
    pythia, settings = pythia_drell_yan(seed=SEED + 1)
    return pythia, DrellYan(pythia_parameters(pythia)), settings


def train_integrator(
    dy: DrellYan, path: Path, train_calls: int, channel_weights: str, transforms: int | None
) -> dict[str, Any]:
    """Train the multi-channel integrator once and save it (every rank loads it later)."""
    t = time.perf_counter()
    gen = generate_events(dy, 0, train_calls=train_calls, calls=100_000, seed=SEED,
                          integrator=path, progress=False, channel_weights=channel_weights,
                          transforms=transforms)  # fmt: skip
    return {"channel_weights": channel_weights, "transforms": gen.integrator.config["transforms"],
            "train_seconds": time.perf_counter() - t, "sigma_pb": gen.result.value,
            "sigma_error_pb": gen.result.error}  # fmt: skip


def pythia_rate(pythia: Any, n: int) -> dict[str, Any]:
    """Pythia's accepted hard-process events per second (``next()`` only), and the cost of
    reading the leptons from its event record in Python (not counted)."""
    for _ in range(1000):  # warm-up
        pythia.next()
    accepted, t = 0, time.perf_counter()
    while accepted < n:
        accepted += bool(pythia.next())
    seconds = time.perf_counter() - t
    t, m = time.perf_counter(), 0
    for _ in range(min(n, 20_000)):
        pythia.next()
        ev = pythia.process
        m += sum(1 for i in range(ev.size()) if ev[i].isFinal())
    read_seconds = time.perf_counter() - t
    info = pythia.infoPython()
    return {"events": n, "seconds": seconds, "events_per_s": n / seconds,
            "with_python_readout_events_per_s": min(n, 20_000) / read_seconds,
            "tries_per_event": info.nTried() / max(info.nAccepted(), 1),
            "sigma_pb": info.sigmaGen() * 1e9, "sigma_error_pb": info.sigmaErr() * 1e9}  # fmt: skip


def hepflows_rate(dy: DrellYan, path: Path, n: int, block: int) -> dict[str, Any]:
    """Events per second of the sharded-generation hot path (unweighted events expanded to
    the full phase space, with their particle records: flavours, colours, momenta), then
    the writing of one block to HDF5 on its own."""
    from hepflows.io.shards import RunInfo, write_shard

    f = dy.folded()
    integ = NeuralIntegrator.load(path, f, channels=f.channels())
    t = time.perf_counter()
    w_max, acceptance = pilot(integ, 100_000, SEED)
    wmax_seconds = time.perf_counter() - t
    generate_block(integ, 10**6, 10_000, w_max, SEED, acceptance=acceptance)  # warm-up block
    blocks, calls, t = [], 0, time.perf_counter()
    for b in range(max(n // block, 1)):
        blk = generate_block(integ, b, block, w_max, SEED, acceptance=acceptance)
        gen = records_generator(SEED, b)  # as generate_sharded: expansion, then records
        table = dy.particle_table(f.expand(blk.x, gen), gen)
        calls += blk.calls
        blocks.append((blk, table))
    seconds = time.perf_counter() - t
    events = sum(len(b.x) for b, _ in blocks)
    run = RunInfo.create(SEED, events, block, w_max, ".h5", "quantile", 0.999)
    blk, table = blocks[0]
    x = blk.x  # the shard's coordinates are not written: the records are
    with tempfile.TemporaryDirectory() as tmp:
        few = RunInfo.create(SEED, 10, 10, w_max, ".h5", "quantile", 0.999)
        write_shard(Path(tmp, "warm-up"), few, 0, x[:10], blk.weights[:10], 20, 10.0, 10.0,
                    particles=lambda u: table[:10])  # imports and first file: not timed
        t = time.perf_counter()
        write_shard(tmp, run, 0, x, blk.weights, blk.calls, blk.sum_w, blk.sum_w2,
                    particles=lambda u: table)  # fmt: skip
        write_seconds = time.perf_counter() - t
    efficiency = events / calls
    overweight = float(torch.cat([b.weights for b, _ in blocks]).abs().gt(1).double().mean())
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds,
            "calls_per_event": calls / events, "unweighting_efficiency": efficiency,
            "overweight_fraction": overweight, "w_max": w_max, "wmax_seconds": wmax_seconds,
            "hdf5_write_seconds_per_event": write_seconds / len(x),
            "hdf5_events_written": len(x),
            "writing_share": write_seconds / len(x) / (write_seconds / len(x) + seconds / events)
            }  # fmt: skip


# ------------------------------------------------------------------ torchrun workers
def worker(args: argparse.Namespace) -> None:
    """One rank of the 1- or 2-process runs: time the job between two barriers."""
    distributed.init()
    _, dy, _ = drell_yan()
    out: dict[str, Any] = {"rank": distributed.rank(), "world": distributed.world_size()}
    distributed.barrier()
    t = time.perf_counter()
    if args.worker == "generate":
        run = generate_sharded(dy, args.events, args.dir, events_per_block=args.block,
                               calls=100_000, seed=SEED, integrator=args.integrator,
                               progress=False, channel_weights=args.channel_weights,
                               transforms=args.transforms)  # fmt: skip
        out["blocks"] = len(run.generated)
    else:
        f = dy.folded()
        integ = NeuralIntegrator(f, f.dims, seed=SEED, channels=f.channels(), loss=LOSS,
                                 weights=args.channel_weights,
                                 transforms=args.transforms)  # fmt: skip
        history = integ.train(calls=args.train_calls, progress=False)
        out["iterations"] = len(history.loss)
    distributed.barrier()
    out["seconds"] = time.perf_counter() - t
    out["max_rss_mb"] = max_rss_mb()
    Path(args.dir, f"{args.worker}.rank{distributed.rank()}.json").write_text(json.dumps(out))
    distributed.shutdown()


def launch(mode: str, procs: int, extra: list[str], directory: Path) -> list[dict[str, Any]]:
    """Run this script's worker ``mode`` on ``procs`` torchrun processes; their reports."""
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={procs}", __file__, "--worker", mode, "--dir", str(directory),
           *extra]  # fmt: skip
    t = time.perf_counter()
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                          capture_output=True)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{mode} with {procs} processes failed:\n{done.stderr[-4000:]}")
    reports = [json.loads(Path(directory, f"{mode}.rank{r}.json").read_text())
               for r in range(procs)]  # fmt: skip
    wall = time.perf_counter() - t
    print(f"{mode:8s} {procs} process(es): {reports[0]['seconds']:.1f} s between barriers "
          f"({wall:.1f} s with start-up), max RSS per rank "
          f"{max(r['max_rss_mb'] for r in reports):.0f} MB", flush=True)  # fmt: skip
    return reports


def big_run(n_events: int, directory: Path, options: list[str]) -> dict[str, Any]:
    """The README's command for ``n_events`` events on 2 local processes, timed whole:
    training, sharded generation into HDF5, and the merge into one file."""
    out = directory / "all.h5"
    cmd = [sys.executable, "-m", "hepflows", "generate", "drell-yan", "--events", str(n_events),
           "--shards", str(directory / "shards"), "--workers", "2", "--out", str(out),
           *options]  # fmt: skip
    print("big run:", " ".join(cmd[1:]), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    done = subprocess.run(cmd, text=True, capture_output=True)
    seconds = time.perf_counter() - t
    if done.returncode:
        raise SystemExit(f"the big run failed:\n{done.stderr[-4000:]}")
    import h5py

    with h5py.File(out, "r") as f:
        events = f["events"].shape[0]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = {"command": " ".join(cmd[1:]), "events": events, "seconds": seconds,
              "file_gb": out.stat().st_size / 1e9,
              # ru_maxrss of children is the largest of any child so far: when the run's
              # processes stayed below the earlier ones, this is an upper bound
              "max_rss_mb_any_process_at_most": peak / 1024, "rss_rose": peak > before,
              "output_tail": done.stdout.strip().splitlines()[-12:]}  # fmt: skip
    print(f"big run: {events:,} events in {seconds:.0f} s ({report['file_gb']:.1f} GB)",
          flush=True)  # fmt: skip
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pythia-events", type=int, default=None)
    ap.add_argument("--rate-events", type=int, default=None, help="hepflows events in (a)")
    ap.add_argument("--events", type=int, default=None, help="events of the 1/2-process runs")
    ap.add_argument("--block", type=int, default=100_000, help="events per block")
    ap.add_argument("--train-calls", type=int, default=200_000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", choices=("generate", "train"), default=None)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--integrator", type=Path, default=None)
    ap.add_argument("--big-run", type=float, default=0,
                    help="also time the README's 2-process command for this many events "
                         "(training, generation, merge), e.g. 1e7")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3, help="1- and 2-process runs of (b)")
    ap.add_argument("--rate-rounds", type=int, default=5,
                    help="alternating Pythia / hepflows rounds of the headline rate in (a)")
    ap.add_argument("--transforms", type=int, default=3,
                    help="coupling blocks of the headline integrator (the library default, 6 "
                         "for 3 dimensions, is measured in (a) too)")  # fmt: skip
    ap.add_argument("--channel-weights", default="learned", choices=CHANNEL_WEIGHTS,
                    help="channel weights of the headline integrator (the other is measured "
                         "in (a) too)")  # fmt: skip
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    torch.set_num_threads(1)
    n_py = args.pythia_events or (100_000 if args.quick else 1_000_000)
    n_rate = args.rate_events or (200_000 if args.quick else 1_000_000)
    n_gen = args.events or (400_000 if args.quick else 2_000_000)
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(), "quick": args.quick,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "threads_per_process": 1, "block_events": args.block,
    }  # fmt: skip
    t0 = time.perf_counter()
    pythia, dy, settings = drell_yan()
    print("Pythia 8:", "; ".join(settings))
    result["pythia_settings"] = settings
    with tempfile.TemporaryDirectory() as tmp:
        py = pythia_rate(pythia, n_py)
        print(f"Pythia  : {py['events_per_s']:,.0f} events/s ({py['tries_per_event']:.2f} tries "
              f"per event; {py['with_python_readout_events_per_s']:,.0f}/s with the Python "
              "read-out)", flush=True)  # fmt: skip
        other = next(m for m in CHANNEL_WEIGHTS if m != args.channel_weights)
        configs = [(args.channel_weights, args.transforms), (other, args.transforms),
                   ("mixture", None)]  # the headline first: the 1/2-process runs use it
        for mode, transforms in configs:
            name = f"{mode}, {transforms or 'default'} transforms"
            path = Path(tmp, f"dy-{mode}-{transforms}.safetensors")
            trained = train_integrator(dy, path, args.train_calls, mode, transforms)
            print(f"integrator: {trained}", flush=True)
            py_next = pythia_rate(pythia, n_py)  # this VM's speed drifts: Pythia right before
            hf = hepflows_rate(dy, path, n_rate, args.block)
            hf["pythia_events_per_s_just_before"] = py_next["events_per_s"]
            print(f"hepflows ({name}): {hf['events_per_s']:,.0f} events/s "
                  f"(efficiency {hf['unweighting_efficiency']:.3f}, "
                  f"{hf['overweight_fraction']:.2%} overweight; HDF5 writing "
                  f"{1e6 * hf['hdf5_write_seconds_per_event']:.2f} us/event)",
                  flush=True)  # fmt: skip
            result.setdefault("configurations", {})[name] = {"integrator": trained, **hf}
        path = Path(tmp, f"dy-{args.channel_weights}-{args.transforms}.safetensors")
        headline = result["configurations"][f"{args.channel_weights}, {args.transforms} transforms"]
        hf = {k: v for k, v in headline.items() if k != "integrator"}
        result["channel_weights"], result["transforms"] = args.channel_weights, args.transforms
        result["integrator"] = headline["integrator"]
        result["pythia"], result["hepflows"] = py, hf
        # The headline: Pythia and hepflows alternate, --rate-rounds times, each round a
        # side-by-side pair (this VM's speed drifts by 15-30 % within minutes: Pythia alone
        # gave 108k-143k events/s in four runs a minute apart); the median round counts.
        rounds = [(hf["events_per_s"], hf["pythia_events_per_s_just_before"])]
        for _ in range(args.rate_rounds - 1):
            p_r = pythia_rate(pythia, n_py)["events_per_s"]
            h_r = hepflows_rate(dy, path, n_rate, args.block)["events_per_s"]
            rounds.append((h_r, p_r))
            print(f"round: hepflows {h_r:,.0f} / Pythia {p_r:,.0f} events/s = "
                  f"{h_r / p_r:.2f}x", flush=True)  # fmt: skip
        ratios = sorted(h / p for h, p in rounds)
        result["rate_rounds"] = [{"hepflows_events_per_s": h, "pythia_events_per_s": p,
                                  "ratio": h / p} for h, p in rounds]  # fmt: skip
        result["events_per_s_per_core"] = statistics.median(h for h, _ in rounds)
        result["pythia_events_per_s_per_core"] = statistics.median(p for _, p in rounds)
        result["ratio_vs_pythia"] = statistics.median(ratios)
        result["ratio_vs_pythia_range"] = [ratios[0], ratios[-1]]
        result["ratio_vs_pythia_by_configuration"] = {
            m: r["events_per_s"] / r["pythia_events_per_s_just_before"]
            for m, r in result["configurations"].items()}  # fmt: skip
        result["hdf5_writing_share"] = hf["writing_share"]
        mode_flag = ["--channel-weights", args.channel_weights, "--transforms",
                     str(args.transforms)]  # fmt: skip
        # 1 and 2 processes alternate, --repeats times (single runs of this VM vary by 15-30 %)
        runs: dict[str, dict[int, list[list[dict[str, Any]]]]] = {
            "generate": {1: [], 2: []}, "train": {1: [], 2: []}}  # fmt: skip
        for rep in range(args.repeats):
            for procs in (1, 2):
                out = Path(tmp, f"g{procs}-{rep}")
                runs["generate"][procs].append(launch(
                    "generate", procs, ["--events", str(n_gen), "--block", str(args.block),
                                        "--integrator", str(path), *mode_flag], out))  # fmt: skip
                shutil.rmtree(out)
                runs["train"][procs].append(launch(
                    "train", procs, ["--train-calls", str(args.train_calls), *mode_flag],
                    Path(tmp, f"t{procs}-{rep}")))  # fmt: skip
        del pythia
    gen_all = {p: [r[0]["seconds"] for r in reps] for p, reps in runs["generate"].items()}
    train_all = {p: [r[0]["seconds"] for r in reps] for p, reps in runs["train"].items()}
    gen_t = {p: min(v) for p, v in gen_all.items()}
    train_t = {p: min(v) for p, v in train_all.items()}
    result["repeats"] = args.repeats
    result["generation_seconds_all"] = gen_all
    result["training_seconds_all"] = train_all
    result["generation_events"] = n_gen
    result["generation_seconds"] = gen_t
    result["training_seconds"] = train_t
    result["generation_events_per_s"] = {p: n_gen / s for p, s in gen_t.items()}
    # Each repeat runs 1 then 2 processes back to back: its ratio compares runs a few
    # seconds apart, which this VM's drift (15-30 % within minutes) affects least. The
    # median repeat's ratio is the headline; the fastest over the fastest is kept too.
    gen_pairs = sorted(a / b for a, b in zip(gen_all[1], gen_all[2], strict=True))
    train_pairs = sorted(a / b for a, b in zip(train_all[1], train_all[2], strict=True))
    result["generation_speedup_2proc_by_repeat"] = gen_pairs
    result["training_speedup_2proc_by_repeat"] = train_pairs
    result["generation_speedup_2proc"] = statistics.median(gen_pairs)
    result["training_speedup_2proc"] = statistics.median(train_pairs)
    result["generation_speedup_2proc_fastest"] = gen_t[1] / gen_t[2]
    result["training_speedup_2proc_fastest"] = train_t[1] / train_t[2]
    result["max_rss_mb_per_rank"] = max(r["max_rss_mb"] for mode in runs.values()
                                        for reps in mode.values() for ranks in reps
                                        for r in ranks)  # fmt: skip
    result["projected_1e7_seconds_2proc"] = 1e7 / (n_gen / gen_t[2])
    if args.big_run:
        with tempfile.TemporaryDirectory() as tmp:
            result["big_run"] = big_run(int(args.big_run), Path(tmp), mode_flag)
    result["total_seconds"] = time.perf_counter() - t0
    lo, hi = result["ratio_vs_pythia_range"]
    print(f"\nper core: hepflows {result['events_per_s_per_core']:,.0f} / Pythia "
          f"{result['pythia_events_per_s_per_core']:,.0f} events/s = "
          f"{result['ratio_vs_pythia']:.2f}x (median of {len(result['rate_rounds'])} rounds, "
          f"{lo:.2f}-{hi:.2f}x)")  # fmt: skip
    print(f"2 processes: generation {result['generation_speedup_2proc']:.2f}x, training "
          f"{result['training_speedup_2proc']:.2f}x; max RSS {result['max_rss_mb_per_rank']:.0f} "
          "MB per rank")  # fmt: skip
    finish(result, args.out)


if __name__ == "__main__":
    main()
