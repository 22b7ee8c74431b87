"""Flow-core speed: hepflows vs zuko vs nflows at equal architecture, in one process.

Architecture for all (design/flows.md): 6 RQS coupling blocks, 8 bins, plain
2x128 MLP conditioners, tail bound B = 5, batch 4096, float32, 2 threads.
Peers are configured as their docs recommend for that architecture:

* zuko 1.6:   ``zuko.flows.NSF(D, transforms=6, bins=8, hidden_features=(128, 128), passes=2)``
* nflows 0.14: ``PiecewiseRationalQuadraticCouplingTransform`` with a plain
  2x128 MLP conditioner, linear tails, B = 5, alternating masks, standard normal base.

Timed (median over repeats, the libraries timed round-robin, one call of each
in turn, so that slow phases of a shared machine hit all alike): one training
step (log_prob + backward + Adam step), a log_prob pass and a sampling pass
(no grad); for hepflows also MAF and IAF density and sampling times. Ratios
are peer time / hepflows time (> 1: hepflows is faster). The last line of output is one JSON object.

Usage: ``python benchmarks/flows.py [--quick] [--out benchmarks/results/flows.json]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import hepflows
from hepflows.flows import IAF, MAF, CouplingFlow

BATCH, BLOCKS, BINS, HIDDEN, BOUND = 4096, 6, 8, (128, 128), 5.0


def timeit(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    return interleaved([fn], repeats, warmup)[0]


def interleaved(fns: list[Callable[[], object]], repeats: int, warmup: int = 2) -> list[float]:
    """Median wall times (ms) of several functions timed round-robin.

    Interleaving spreads the machine's slow phases over every library alike,
    instead of penalising whichever runs during them.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [1e3 * statistics.median(ts) for ts in times]


class Model:
    """Uniform wrapper: log_prob(x) and sample(n) for each library."""

    def __init__(self, name: str, module: torch.nn.Module, log_prob, sample, config: str):
        self.name, self.module, self.log_prob, self.sample, self.config = (
            name, module, log_prob, sample, config,
        )  # fmt: skip


def hepflows_model(d: int) -> Model:
    flow = CouplingFlow(d, transforms=BLOCKS, bins=BINS, hidden=HIDDEN, bound=BOUND)
    cfg = f"hepflows.flows.CouplingFlow({d}, transforms={BLOCKS}, bins={BINS}, hidden={HIDDEN})"
    return Model("hepflows", flow, flow.log_prob, flow.sample, cfg)


def zuko_model(d: int) -> Model:
    import zuko

    flow = zuko.flows.NSF(d, transforms=BLOCKS, bins=BINS, hidden_features=HIDDEN, passes=2)
    cfg = f"zuko {zuko.__version__}: NSF({d}, transforms={BLOCKS}, bins={BINS}, hidden_features={HIDDEN}, passes=2)"  # noqa: E501
    return Model(
        "zuko", flow, lambda x: flow().log_prob(x), lambda n: flow().sample((n,)), cfg
    )


def nflows_model(d: int) -> Model:
    import nflows
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms.base import CompositeTransform
    from nflows.transforms.coupling import PiecewiseRationalQuadraticCouplingTransform

    class PlainMLP(torch.nn.Module):
        """Plain 2x128 MLP; nflows calls conditioners as net(x, context)."""

        def __init__(self, n_in: int, n_out: int) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(n_in, HIDDEN[0]), torch.nn.ReLU(),
                torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.ReLU(),
                torch.nn.Linear(HIDDEN[1], n_out),
            )  # fmt: skip

        def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            return self.net(x)

    blocks = []
    for i in range(BLOCKS):
        mask = torch.arange(d) % 2 == i % 2
        blocks.append(
            PiecewiseRationalQuadraticCouplingTransform(
                mask=mask.int() * 2 - 1,
                transform_net_create_fn=PlainMLP,
                num_bins=BINS,
                tails="linear",
                tail_bound=BOUND,
            )
        )
    flow = Flow(CompositeTransform(blocks), StandardNormal([d]))
    version = getattr(nflows, "__version__", "0.14")
    cfg = f"nflows {version}: 6x PiecewiseRationalQuadraticCouplingTransform(num_bins=8, tails='linear', tail_bound=5, alternating masks, MLP 2x128)"  # noqa: E501
    return Model("nflows", flow, flow.log_prob, flow.sample, cfg)


def measure(models: list[Model], d: int, repeats: int) -> list[dict[str, float]]:
    """Train-step, log_prob and sampling times of each model, timed round-robin."""
    torch.manual_seed(0)
    x = torch.randn(BATCH, d)

    def train_step(model: Model) -> Callable[[], None]:
        opt = torch.optim.Adam(model.module.parameters(), lr=1e-3)

        def step() -> None:
            loss = -model.log_prob(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        return step

    train = interleaved([train_step(m) for m in models], repeats)
    with torch.no_grad():
        log_prob = interleaved([lambda m=m: m.log_prob(x) for m in models], repeats)
        sample = interleaved([lambda m=m: m.sample(BATCH) for m in models], repeats)
    return [
        {"train_ms": t, "log_prob_ms": lp, "sample_ms": s}
        for t, lp, s in zip(train, log_prob, sample, strict=True)
    ]


def autoregressive(d: int, repeats: int) -> dict[str, float]:
    """MAF and IAF: density vs sampling time (hepflows), batch 4096."""
    out = {}
    x = torch.randn(BATCH, d)
    for cls in (MAF, IAF):
        flow = cls(d, transforms=BLOCKS, bins=BINS, hidden=HIDDEN)
        with torch.no_grad():
            out[f"{cls.__name__}_log_prob_ms"] = timeit(lambda f=flow: f.log_prob(x), repeats, 1)
            out[f"{cls.__name__}_sample_ms"] = timeit(lambda f=flow: f.sample(BATCH), repeats, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats (under 2 minutes)")
    ap.add_argument("--dims", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = ap.parse_args()

    torch.set_num_threads(2)
    repeats = 5 if args.quick else 20
    print(f"hepflows {hepflows.__version__}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, batch {BATCH}, float32, repeats {repeats}")  # fmt: skip
    result: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or ''}".strip(),  # noqa: E501
        "torch": torch.__version__,
        "quick": args.quick,
    }
    rows = []
    for d in args.dims:
        models = [hepflows_model(d), zuko_model(d), nflows_model(d)]
        for m in models:
            print(f"  D={d} {m.config}")
        for m, t in zip(models, measure(models, d, repeats), strict=True):
            params = sum(p.numel() for p in m.module.parameters())
            result[f"{m.name}_D{d}"] = {**t, "params": params}
            rows.append((d, m.name, t, params))
        if not args.quick or d == min(args.dims):
            result[f"autoregressive_D{d}"] = autoregressive(d, max(2, repeats // 3))

    print(f"\n{'D':>3} {'library':<9} {'params':>9} {'train ms':>9} {'log_prob ms':>12} {'sample ms':>10}")  # noqa: E501
    for d, name, t, params in rows:
        print(f"{d:>3} {name:<9} {params:>9} {t['train_ms']:>9.1f} {t['log_prob_ms']:>12.1f} {t['sample_ms']:>10.1f}")  # noqa: E501
    for d in args.dims:
        ar = result.get(f"autoregressive_D{d}")
        if ar:
            print(f"D={d} MAF log_prob {ar['MAF_log_prob_ms']:.1f} ms, sample {ar['MAF_sample_ms']:.1f} ms; "  # noqa: E501
                  f"IAF log_prob {ar['IAF_log_prob_ms']:.1f} ms, sample {ar['IAF_sample_ms']:.1f} ms")  # noqa: E501

    for peer in ("zuko", "nflows"):
        for key, metric in (("train", "train_ms"), ("logprob", "log_prob_ms"), ("sample", "sample_ms")):  # noqa: E501
            ratios = [result[f"{peer}_D{d}"][metric] / result[f"hepflows_D{d}"][metric] for d in args.dims]  # noqa: E501
            for d, r in zip(args.dims, ratios, strict=True):
                result[f"speedup_{key}_vs_{peer}_D{d}"] = round(r, 3)
            result[f"speedup_{key}_vs_{peer}"] = round(min(ratios), 3)
    line = json.dumps(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
