"""Amortised posteriors: hepflows' Posterior against sbi's NPE on the signal-strength problem.

theta = (mu, alpha): the Z' signal strength, mu ~ U(0, 3), and the lepton
energy scale, alpha ~ N(1, 0.01^2); x = the 40-bin m_ll histogram (300-500 GeV)
of smeared Drell-Yan events, Poisson around templates made by hepflows'
generator and toy detector (:class:`hepflows.inference.SignalStrength`). The
reference is the exact posterior on a grid.

At equal simulation budgets (default 10^3, 10^4, 10^5) both methods train on
the same simulations:

* hepflows: :class:`~hepflows.inference.Posterior`, a deep ensemble of 5
  (``--ensemble``) spline coupling flows, each on an MLP summary of the
  standardised histogram, 10 % held out, best held-out weights kept; 300 /
  1500 / 5000 steps of 256 at the three budgets;
* sbi 0.27: ``NPE(prior)`` with its default density estimator (``"maf"``) and
  default training (``train()``: batch 200, lr 5e-4, 10 % validation, stop
  after 20 epochs without improvement), as its documentation recommends.

Figures per budget and method: C2ST (sbi's MLP classifier recipe; equal to
``sbi.utils.metrics.c2st(..., classifier="mlp")``) of learned against grid
samples on 10 observations (mean); on test pairs (theta from the prior): SBC KS
p per parameter, TARP area |ECP - alpha|, the HPD expected coverage and the
central-interval coverage at 68 / 95 %, training time; the exact grid
posterior's SBC and coverage on the same test pairs, the reference for what
the finite test set alone allows. Last line JSON.
``--quick``: budgets 10^3 and 10^4 and fewer test pairs.

``--draws K``: train both methods on K independent simulation sets per budget
(draw k: simulations seeded ``seed + budget + 104729 k``, models ``seed + k``)
and evaluate each on the same test pairs. One draw's SBC p is itself a random
variable: with 2000 test pairs SBC resolves a shift of the mean rank by about
0.02, which a posterior learned from 10^3 simulations can have by the luck of
its training set. The first draw fills the top-level figures; every draw's
figures go to ``runs[budget]["draws"]``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import finish  # noqa: E402
from hepflows.inference.calibration import tarp  # noqa: E402
from hepflows.inference.coverage import (  # noqa: E402
    c2st,
    expected_coverage,
    interval_coverage,
    sbc_check,
    sbc_ranks,
)
from hepflows.inference.posterior import Posterior, simulate  # noqa: E402
from hepflows.inference.signal_strength import SignalStrength  # noqa: E402

LEVELS = (0.68, 0.95)


def sbi_prior(problem: SignalStrength) -> Any:
    """The problem's prior as sbi wants it: independent torch distributions."""
    from sbi.utils import MultipleIndependent
    from torch.distributions import Normal, Uniform

    mu, alpha = problem.prior.components
    return MultipleIndependent([
        Uniform(torch.tensor([mu.low]), torch.tensor([mu.high])),
        Normal(torch.tensor([alpha.mean]), torch.tensor([alpha.std])),
    ])  # fmt: skip


class SbiMethod:
    """sbi's NPE, trained and sampled as its documentation shows."""

    name = "sbi"

    def __init__(self, problem: SignalStrength, seed: int) -> None:
        from sbi.inference import NPE

        torch.manual_seed(seed)  # sbi draws from the global stream
        self.npe = NPE(prior=sbi_prior(problem), show_progress_bars=False)
        self.settings = {"density_estimator": "maf (default)", "train": "defaults: batch 200, "
                         "lr 5e-4, validation 0.1, stop_after_epochs 20"}  # fmt: skip

    def train(self, theta: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
        self.npe.append_simulations(theta.float(), x.float())
        self.npe.train()
        self.posterior = self.npe.build_posterior()
        summary = self.npe.summary
        return {"epochs": len(summary["training_loss"]),
                "best_val_loss": float(summary["best_validation_loss"][-1])}  # fmt: skip

    def sample(self, x: torch.Tensor, n: int) -> torch.Tensor:
        s = self.posterior.sample_batched((n,), x=x.float(), show_progress_bars=False)
        return s.double()

    def log_prob(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(S, n, d) theta, (n, ...) x -> (S, n), without the leakage normalisation: a
        constant per observation, which cancels in the HPD ranks (coverage) it serves."""
        return self.posterior.log_prob_batched(theta.float(), x=x.float(),
                                               norm_posterior=False).double()  # fmt: skip


class HepflowsMethod:
    """hepflows' Posterior."""

    name = "hepflows"

    def __init__(self, problem: SignalStrength, seed: int, steps: int, ensemble: int) -> None:
        self.post = Posterior(problem.prior, (problem.settings.bins,), ensemble=ensemble,
                              seed=seed)  # fmt: skip
        self.steps, self.seed = steps, seed
        self.settings = {**self.post.config, "steps": steps, "batch_size": 256, "lr": 1e-3,
                         "holdout": 0.1, "validate_every": "about once an epoch"}  # fmt: skip
        self.g = torch.Generator().manual_seed(seed + 1)

    def train(self, theta: torch.Tensor, x: torch.Tensor) -> dict[str, Any]:
        self.post.train(theta, x, steps=self.steps, batch_size=256, seed=self.seed)
        return {"best_val_loss": [min(v) for v in self.post.val_losses],
                "checks": len(self.post.val_losses[0])}  # fmt: skip

    def sample(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return self.post.sample(x, n, self.g)

    def log_prob(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s, n, d = theta.shape
        x_rep = x.repeat(s, 1)
        return self.post.log_prob(theta.reshape(-1, d), x_rep).view(s, n)


class ExactMethod:
    """The exact grid posterior, evaluated like the learned ones (no C2ST: it is the reference).

    Its coverage on the same test pairs shows how far the finite test set alone moves
    the figures (the same pairs serve every method, so their fluctuations are shared).
    """

    name = "exact"

    def __init__(self, problem: SignalStrength, seed: int) -> None:
        self.problem, self.g = problem, torch.Generator().manual_seed(seed + 2)

    def sample(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return torch.stack([self.problem.grid_samples(xi, n, self.g) for xi in x], 1)

    def hpd(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(n,) credibility of the smallest grid HPD region holding each truth."""
        out = torch.empty(len(x), dtype=torch.float64)
        for i, (t, xi) in enumerate(zip(theta, x, strict=True)):
            lp, mu, al = self.problem.grid_posterior(xi)
            p = torch.softmax(lp.flatten(), 0)
            inside = (mu[0] - (mu[1] - mu[0]) / 2 <= t[0] <= mu[-1] + (mu[1] - mu[0]) / 2) and (
                al[0] - (al[1] - al[0]) / 2 <= t[1] <= al[-1] + (al[1] - al[0]) / 2)
            if not inside:
                out[i] = 1.0
                continue
            j, k = int((mu - t[0]).abs().argmin()), int((al - t[1]).abs().argmin())
            out[i] = float(p[lp.flatten() > lp[j, k]].sum())
        return out


def evaluate_exact(method: ExactMethod, test: dict[str, Any], samples: int) -> dict:
    """SBC, TARP and coverage of the exact posterior on the test pairs."""
    theta, x = test["theta"], test["x"]
    s = method.sample(x, samples)
    p = sbc_check(sbc_ranks(s, theta), samples, seed=1)
    _, _, area = tarp(s, theta, generator=torch.Generator().manual_seed(12345))
    alpha = method.hpd(theta, x)
    hpd = torch.tensor([float((alpha <= lv).double().mean()) for lv in LEVELS])
    central = interval_coverage(s, theta, LEVELS)
    dev = [abs(float(hpd[j]) - lv) for j, lv in enumerate(LEVELS)]
    dev += [abs(float(c) - lv) for lv in LEVELS for c in central[lv]]
    return {"sbc_p": p.tolist(), "tarp_area": area,
            "hpd_coverage": {str(lv): float(hpd[j]) for j, lv in enumerate(LEVELS)},
            "interval_coverage": {str(lv): central[lv].tolist() for lv in LEVELS},
            "coverage_max_dev": max(dev)}  # fmt: skip


def evaluate(method: Any, obs: dict[str, Any], test: dict[str, Any], samples: int) -> dict:
    """C2ST on the observations, SBC / TARP / coverage on the test pairs."""
    scores = []
    t0 = time.perf_counter()
    for i, (x, ref) in enumerate(zip(obs["x"], obs["reference"], strict=True)):
        q = method.sample(x[None], len(ref))[:, 0]
        scores.append(c2st(ref, q, seed=i))
    c2st_seconds = time.perf_counter() - t0
    theta, x = test["theta"], test["x"]
    s = method.sample(x, samples)  # (S, n, 2)
    lq_samples = method.log_prob(s, x)
    lq_truth = method.log_prob(theta[None], x)[0]
    p = sbc_check(sbc_ranks(s, theta), samples, seed=1)
    _, _, area = tarp(s, theta, generator=torch.Generator().manual_seed(12345))
    hpd = expected_coverage(lq_samples, lq_truth, LEVELS)
    central = interval_coverage(s, theta, LEVELS)
    dev = [abs(float(hpd[j]) - lv) for j, lv in enumerate(LEVELS)]
    dev += [abs(float(c) - lv) for lv in LEVELS for c in central[lv]]
    return {
        "c2st": sum(scores) / len(scores), "c2st_each": scores, "c2st_seconds": c2st_seconds,
        "sbc_p": p.tolist(), "tarp_area": area,
        "hpd_coverage": {str(lv): float(hpd[j]) for j, lv in enumerate(LEVELS)},
        "interval_coverage": {str(lv): central[lv].tolist() for lv in LEVELS},
        "coverage_max_dev": max(dev),
    }  # fmt: skip


def run_draw(problem: SignalStrength, budget: int, k: int, args: argparse.Namespace,
             obs: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate both methods on simulation set ``k`` of ``budget`` simulations."""
    theta, x = simulate(problem.prior, problem.simulate, budget,
                        torch.Generator().manual_seed(args.seed + budget + 104729 * k))  # fmt: skip
    steps = args.steps or (300 if budget <= 1000 else 1500 if budget <= 10000 else 5000)
    runs = {}
    for method in (HepflowsMethod(problem, args.seed + k, steps, args.ensemble),
                   SbiMethod(problem, args.seed + k)):  # fmt: skip
        print(f"\n== {method.name}, {budget} simulations, draw {k}: {method.settings}",
              flush=True)  # fmt: skip
        t = time.perf_counter()
        info = method.train(theta, x)
        info["train_seconds"] = time.perf_counter() - t
        info |= evaluate(method, obs, test, args.samples)
        runs[method.name] = info
        print(f"{method.name:9s} train {info['train_seconds']:6.1f} s | C2ST "
              f"{info['c2st']:.3f} | SBC p {info['sbc_p'][0]:.3f} {info['sbc_p'][1]:.3f} | "
              f"TARP {info['tarp_area']:.4f} | HPD cov {info['hpd_coverage']} | "
              f"max dev {info['coverage_max_dev']:.3f}", flush=True)  # fmt: skip
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--budgets", default=None, help="comma-separated simulation budgets")
    ap.add_argument("--observations", type=int, default=10, help="C2ST observations")
    ap.add_argument("--reference", type=int, default=5000, help="grid samples per observation")
    ap.add_argument("--test-pairs", type=int, default=None, help="SBC/TARP pairs (default 2000)")
    ap.add_argument("--samples", type=int, default=1000, help="posterior samples per test pair")
    ap.add_argument("--steps", type=int, default=None, help="hepflows steps (default by budget)")
    ap.add_argument("--ensemble", type=int, default=5, help="hepflows flows per posterior")
    ap.add_argument("--draws", type=int, default=1, help="training sets per budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    budgets = ([int(float(b)) for b in args.budgets.split(",")] if args.budgets
               else [1000, 10000] if args.quick else [1000, 10000, 100000])  # fmt: skip
    n_test = args.test_pairs or (300 if args.quick else 2000)
    import sbi

    t0 = time.perf_counter()
    problem = SignalStrength()
    print(f"templates: {problem.settings.events} events in {time.perf_counter() - t0:.1f} s; "
          f"{problem.prior}")  # fmt: skip
    print(f"settings: {problem.settings}")
    g = torch.Generator().manual_seed(args.seed + 1000)
    theta_o = problem.prior.sample(args.observations, g)
    x_o = problem.simulate(theta_o, g)
    refs = [problem.grid_samples(x, args.reference, g) for x in x_o]
    obs = {"x": x_o, "reference": refs}
    theta_t = problem.prior.sample(n_test, g)
    test = {"theta": theta_t, "x": problem.simulate(theta_t, g)}
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(), "quick": args.quick, "budgets": budgets,
        "observations": args.observations, "reference_samples": args.reference,
        "test_pairs": n_test, "samples": args.samples, "sbi_version": sbi.__version__,
        "problem": {k: v for k, v in vars(problem.settings).items()}, "runs": {},
    }  # fmt: skip
    t = time.perf_counter()
    result["exact"] = evaluate_exact(ExactMethod(problem, args.seed), test, args.samples)
    ex = result["exact"]
    print(f"exact posterior on the test pairs ({time.perf_counter() - t:.0f} s): SBC p "
          f"{ex['sbc_p'][0]:.3f} {ex['sbc_p'][1]:.3f} | TARP {ex['tarp_area']:.4f} | HPD cov "
          f"{ex['hpd_coverage']} | max dev {ex['coverage_max_dev']:.3f}", flush=True)  # fmt: skip
    for budget in budgets:
        draws = []
        for k in range(args.draws):
            draws.append(run_draw(problem, budget, k, args, obs, test))
        runs = dict(draws[0])
        if args.draws > 1:
            runs["draws"] = draws
            for name in ("hepflows", "sbi"):
                ps = [[round(p, 4) for p in d[name]["sbc_p"]] for d in draws]
                print(f"{name:9s} SBC p per training draw at {budget}: {ps}")
        result["runs"][str(budget)] = runs
    hep = {b: r["hepflows"] for b, r in result["runs"].items()}
    result["c2st"] = {b: r["c2st"] for b, r in hep.items()}
    result["c2st_sbi"] = {b: r["sbi"]["c2st"] for b, r in result["runs"].items()}
    result["sbc_min_p"] = min(min(r["sbc_p"]) for r in hep.values())
    result["tarp_abs_area"] = max(r["tarp_area"] for r in hep.values())
    result["coverage_max_dev"] = max(r["coverage_max_dev"] for r in hep.values())
    result["coverage_max_dev_exact"] = result["exact"]["coverage_max_dev"]
    result["coverage_binomial_error_68"] = (0.68 * 0.32 / n_test) ** 0.5
    result["train_seconds"] = {b: r["train_seconds"] for b, r in hep.items()}
    result["train_seconds_sbi"] = {b: r["sbi"]["train_seconds"]
                                   for b, r in result["runs"].items()}  # fmt: skip
    result["total_seconds"] = time.perf_counter() - t0
    print("\nbudget | C2ST hepflows / sbi | SBC min p hepflows / sbi | TARP | cov max dev")
    for b, r in result["runs"].items():
        h, s = r["hepflows"], r["sbi"]
        print(f"{b:>7} | {h['c2st']:.3f} / {s['c2st']:.3f} | {min(h['sbc_p']):.3f} / "
              f"{min(s['sbc_p']):.3f} | {h['tarp_area']:.4f} / {s['tarp_area']:.4f} | "
              f"{h['coverage_max_dev']:.3f} / {s['coverage_max_dev']:.3f}")  # fmt: skip
    finish(result, args.out)


if __name__ == "__main__":
    main()
