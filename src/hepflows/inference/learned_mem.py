"""The learned pieces of the matrix-element method: transfer flow, efficiency, sampling flows.

Bury et al. / Heimel et al. (arXiv:2210.00019, 2310.07752): a conditional flow
learns the transfer function T(r | x) from simulated (truth, reco) pairs, a
classifier the efficiency eps(x), and a "sampling cINN" q(x | r) the
importance sampler of each event's integral. Here, on Drell-Yan in the lepton
variables of :mod:`hepflows.inference.leptons`:

* T(r | x): a :class:`ConditionalDensity` over the reco (pt_minus, pt_plus,
  eta_minus, eta_plus) given the truth written in the same variables
  (:func:`~hepflows.inference.leptons.reco_reference`), in residual coordinates;
* eps(x): an :class:`~hepflows.inference.efficiency.Efficiency` classifier on
  the truth, times the fiducial region the pairs were generated in (the
  classifier never saw events outside it);
* the sampler, two channels (multi-channel importance sampling, as MadNIS):
  the sampling flow q(x | r), and a Breit-Wigner channel for the Z' of the
  theta being evaluated: eta from a second flow q(eta | r), m from the
  Breit-Wigner truncated to +-8 relative resolutions (the resolution is read
  off the sampling flow's residual scale, not the detector). The flows carry
  the detector; the channel carries the process, which the MEM knows.

Nothing here uses the toy detector's formulas: everything is learned from
the pairs. :class:`LearnedTransfer` has the interface of
:class:`~hepflows.inference.mem.ExactTransfer`, so :func:`~hepflows.inference.mem.fit`
and :func:`~hepflows.inference.mem.event_integrals` take either.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import torch
from torch import Tensor

from hepflows.errors import CheckpointError, InputError
from hepflows.inference import leptons
from hepflows.inference.conditional import ConditionalDensity
from hepflows.inference.efficiency import Efficiency
from hepflows.inference.mem import BW_SHARE_LOW, bw_log_prob, bw_quantile, bw_share
from hepflows.io import atomic

ETA = ("eta_minus", "eta_plus")
FORMAT = "hepflows-mem-transfer"


class LearnedTransfer:
    """Learned T(r | x), eps(x) and the per-event sampler of the MEM.

    Args:
        transfer: T over :data:`~hepflows.inference.leptons.RECO` given the
            truth in the same variables.
        efficiency: eps over :data:`~hepflows.inference.leptons.TRUTH`.
        proposal: q(x | r) over TRUTH given :func:`~hepflows.inference.leptons.truth_reference`.
        eta_proposal: q(eta | r) over (eta_minus, eta_plus) given the measured ones.
        fiducial: (lowest pT, largest |eta|) of the truth the pairs covered.
    """

    RECO_DIM = 4  #: columns of reco: leptons.RECO
    #: Uniforms per point: channel, three for the flow, two for q(eta | r), one for m.
    UNIFORMS = 7
    #: Share of each event's points that estimate the channel shares of the others.
    PILOT = 0.25

    def __init__(
        self,
        transfer: ConditionalDensity,
        efficiency: Efficiency,
        proposal: ConditionalDensity,
        eta_proposal: ConditionalDensity,
        fiducial: tuple[float, float] = (20.0, 2.5),
    ) -> None:
        self.transfer, self.eff, self.proposal = transfer, efficiency, proposal
        self.eta_proposal, self.fiducial = eta_proposal, fiducial
        # relative pT resolution of the sampling flow's residual (log pT) coordinate
        self.rho = float(proposal.x_scaler.scale[0] * proposal.r_scale[0])

    @classmethod
    def train(
        cls,
        truth: Tensor,
        reco: Tensor,
        passed: Tensor,
        steps: int = 4000,
        batch_size: int = 1024,
        transforms: int = 6,
        bins: int = 10,
        efficiency_epochs: int = 50,
        transfer_epochs: float = 15.0,
        synthetic: int = 5,
        seed: int = 0,
        progress: bool = False,
        device: str | torch.device | None = None,
    ) -> LearnedTransfer:
        """Train every piece on (n, 4) truth and reco pairs in RECO variables and (n,) passed.

        The truth of LO pairs has pt_minus = pt_plus (``generate_pairs(...,
        names=leptons.RECO)``). T and eps learn from the pairs, T for at most
        ``transfer_epochs`` passes over the detected ones (longer, it fits the
        pairs' noise: on 34k pairs, 500 / 1000 / 2000 / 6000 steps (15 / 30 /
        60 / 180 epochs) gave a median per-event error at 1000 calls of 0.66 /
        0.87 / 1.35 / 3.0 %, as the learned T grows rougher in x; at 15 epochs
        it also passes the held-out validation that 30 fail; docs/mem.md). The
        sampling flows
        learn from ``synthetic`` reco drawn from the learned T per detected truth
        (0: from the simulated reco): the integrand the MEM evaluates holds the
        learned T, not the detector, and a sampler trained on the learned T's
        own pairs follows it more closely (docs/mem.md: with T trained for 2000
        steps, the median error at 1000 calls of events away from the Z' fell
        from 1.55 % to 1.26 %).

        ``device``: where the three flows train and run (default CPU); the
        efficiency classifier, points and weights stay on the CPU.
        """
        for name, t in (("truth", truth), ("reco", reco)):
            if t.ndim != 2 or t.shape[1] != len(leptons.RECO):
                raise InputError(f"{name} must be (n, 4) values of {list(leptons.RECO)}, got "
                                 f"{tuple(t.shape)}")  # fmt: skip
        if passed.shape != (len(truth),) or int(passed.sum()) < batch_size:
            raise InputError("passed must be (n,) with at least one batch of detected events")
        size = {"transforms": transforms, "bins": bins, "device": device}
        x = truth[:, [0, 2, 3]]
        t, r = truth[passed], reco[passed]
        t_steps = min(steps, math.ceil(transfer_epochs * len(t) / batch_size))
        transfer = ConditionalDensity(leptons.RECO, seed=seed, **size).fit(
            r, t, t_steps, batch_size, seed=seed, progress=progress, description="transfer T"
        )
        xs = x[passed]
        if synthetic > 0:  # reco drawn from the learned T
            gen = torch.Generator().manual_seed(seed + 3)
            z = torch.randn(synthetic * len(t), len(leptons.RECO), generator=gen, dtype=t.dtype,
                            device="cpu")  # fmt: skip
            with torch.no_grad():
                r = transfer.from_latent(z, t.repeat(synthetic, 1))[0]
            xs = xs.repeat(synthetic, 1)
        proposal = ConditionalDensity(leptons.TRUTH, seed=seed + 1, **size).fit(
            xs, leptons.truth_reference(r), steps, batch_size, seed=seed + 1,
            progress=progress, description="sampling flow",
        )  # fmt: skip
        eta = ConditionalDensity(ETA, seed=seed + 2, **size).fit(
            xs[:, 1:], r[:, 2:], steps // 2, batch_size, seed=seed + 2,
            progress=progress, description="eta sampler",
        )  # fmt: skip
        efficiency = Efficiency(leptons.TRUTH, seed=seed).fit(
            x, passed, epochs=efficiency_epochs, seed=seed, progress=progress
        )
        pt_min = float(truth[:, :2].min())
        eta_max = float(truth[:, 2:].abs().max())
        return cls(transfer, efficiency, proposal, eta, (math.floor(pt_min), eta_max))

    # ------------------------------------------------------------ the MEM interface
    def log_transfer(self, r: Tensor, x: Tensor) -> Tensor:
        """log T(r | x): (..., 4), (..., 3) -> (...)."""
        shape = x.shape[:-1]
        flat_r = r.expand(*shape, 4).reshape(-1, 4)
        ref = leptons.reco_reference(x).reshape(-1, 4)
        return self.transfer.log_prob(flat_r, ref).view(shape)

    def efficiency(self, x: Tensor) -> Tensor:
        """eps(x) at (..., 3) truth (0 outside the fiducial region)."""
        shape = x.shape[:-1]
        flat = x.reshape(-1, 3)
        pt_min, eta_max = self.fiducial
        inside = (flat[:, 0] > pt_min) & (flat[:, 1:].abs() < eta_max).all(-1)
        out = torch.zeros(len(flat), dtype=torch.float64, device="cpu")
        if bool(inside.any()):
            with torch.no_grad():
                out[inside] = self.eff(flat[inside]).double()
        return out.view(shape)

    @torch.no_grad()
    def log_weights(self, model: Any, r: Tensor, uniforms: Tensor, thetas: Tensor) -> Tensor:
        """log(dsigma eps T / q) at the sampler's points for every theta: (T, S, n).

        The sampler has two channels: the sampling flow, and the Breit-Wigner
        in m with eta from q(eta | r). The uniforms are common to every theta;
        the flow channel's points do not move with theta, so their flows, efficiency
        and parton luminosities are evaluated once; per theta, only the
        Breit-Wigner channel's points are new.

        The channel shares adapt per event and theta: the first PILOT of the
        points use :func:`~hepflows.inference.mem.bw_share`, and estimate the
        share of the integral the Breit-Wigner channel carries (its
        responsibility, averaged with the weights); the other points use that
        share, clamped to [BW_SHARE_LOW, 1 - BW_SHARE_LOW] (the variance-optimal
        shares when each channel matches its part of the integrand). Each stage is
        unbiased given the one before, so the mean of all weights is too.
        """
        s, n = uniforms.shape[:2]
        normal = torch.distributions.Normal(torch.zeros((), device="cpu"), 1.0)
        z = normal.icdf(uniforms[..., 1:6].clamp(1e-9, 1 - 1e-9)).reshape(-1, 5)
        ref = leptons.truth_reference(r)
        ctx: dict[str, Tensor] = {"u": uniforms.reshape(s * n, -1), "ref": ref.repeat(s, 1),
                                  "r": r.repeat(s, 1)}  # fmt: skip
        eta_ref = r[:, 2:].repeat(s, 1)
        ctx["x_a"], ctx["log_qa_a"] = self.proposal.from_latent(z[:, :3], ctx["ref"])
        ctx["eta_b"], ctx["log_qeta_b"] = self.eta_proposal.from_latent(z[:, 3:], eta_ref)
        ctx["log_qeta_a"] = self.eta_proposal.log_prob(ctx["x_a"][:, 1:], eta_ref)
        x_a = ctx["x_a"]
        ctx["fixed_a"] = (self.log_transfer(ctx["r"], x_a)
                          + self.efficiency(x_a).clamp_min(1e-300).log())  # fmt: skip
        lumi_a = model.luminosities(x_a)
        lo_r, hi_r = self._window(ref[:, 0], 2 * torch.cosh((r[:, 2] - r[:, 3]) / 2))
        pilot = max(1, int(self.PILOT * s)) * n
        out = torch.empty(len(thetas), s * n, dtype=torch.float64, device="cpu")
        for k, theta in enumerate(torch.as_tensor(thetas, device="cpu").tolist()):
            p = model.process(theta).params
            log_f_a = model.log_density(x_a, theta, lumi_a) + ctx["fixed_a"]
            if not p.zprime:
                out[k] = log_f_a - ctx["log_qa_a"]
                continue
            share = bw_share(lo_r, hi_r, p).double()
            first, rest = slice(None, pilot), slice(pilot, None)
            log_w, log_rho = self._channel_weights(model, theta, p, ctx, log_f_a,
                                                   share.repeat(s), first)  # fmt: skip
            out[k, first] = log_w
            w, rho = log_w.exp().view(-1, n), log_rho.exp().view(-1, n)
            w = torch.where(torch.isfinite(w), w, torch.zeros_like(w))
            total = w.sum(0)
            carried = (w * rho).sum(0) / total.clamp_min(1e-300)
            adapted = torch.where(total > 0, carried.clamp(BW_SHARE_LOW, 1 - BW_SHARE_LOW), share)
            out[k, rest] = self._channel_weights(model, theta, p, ctx, log_f_a,
                                                 adapted.repeat(s), rest)[0]  # fmt: skip
        return out.view(len(thetas), s, n)

    def _channel_weights(
        self, model: Any, theta: list[float], p: Any, ctx: dict[str, Tensor], log_f_a: Tensor,
        share: Tensor, rows: slice,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """log weights and log responsibilities of the Breit-Wigner channel (M,) at the
        ``rows`` (M of N) of the two-channel sampler's points, with Breit-Wigner shares (N,)."""
        ctx = {key: v[rows] for key, v in ctx.items()}
        log_f_a, share = log_f_a[rows], share[rows]
        x_a, ref, u = ctx["x_a"], ctx["ref"], ctx["u"]
        log_b = ctx["log_qeta_a"] + self._log_bw(x_a, ref, p) + share.log()
        log_q = torch.logaddexp(ctx["log_qa_a"] + torch.log1p(-share), log_b)
        log_w, log_rho = log_f_a - log_q, log_b - log_q
        use_b = u[:, 0] < share
        if bool(use_b.any()):
            e = ctx["eta_b"][use_b]
            ch = 2 * torch.cosh((e[:, 0] - e[:, 1]) / 2)
            lo, hi = self._window(ref[use_b, 0], ch)
            m = bw_quantile(u[use_b, 6], lo, hi, p)
            xb = torch.stack((m / ch, e[:, 0], e[:, 1]), -1)
            log_fb = model.log_density(xb, theta) + self.log_transfer(ctx["r"][use_b], xb)
            log_fb = log_fb + self.efficiency(xb).clamp_min(1e-300).log()
            sh = share[use_b]
            log_bb = ctx["log_qeta_b"][use_b] + self._log_bw(xb, ref[use_b], p) + sh.log()
            log_qb = torch.logaddexp(
                self.proposal.log_prob(xb, ref[use_b]) + torch.log1p(-sh), log_bb
            )
            log_w[use_b], log_rho[use_b] = log_fb - log_qb, log_bb - log_qb
        return log_w, log_rho

    def _log_bw(self, x: Tensor, ref: Tensor, p: Any) -> Tensor:
        """log density per unit pT of the Breit-Wigner channel at (N, 3) points given their eta."""
        ch = 2 * torch.cosh((x[:, 1] - x[:, 2]) / 2)
        lo, hi = self._window(ref[:, 0], ch)
        return bw_log_prob(x[:, 0] * ch, lo, hi, p) + ch.log()

    def _window(self, pt_ref: Tensor, ch: Tensor) -> tuple[Tensor, Tensor]:
        """The Breit-Wigner channel's m window for reference pT and cosh factor."""
        return pt_ref * ch * math.exp(-8 * self.rho), pt_ref * ch * math.exp(8 * self.rho)

    # ------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Every network in one safetensors file (atomic; loading never unpickles)."""
        from safetensors.torch import save_file

        tensors = self.transfer.tensors("transfer.") | self.proposal.tensors("proposal.")
        tensors |= self.eta_proposal.tensors("eta.")
        tensors |= self.eff.tensors("eff.")
        state = {"transfer": self.transfer.state(), "proposal": self.proposal.state(),
                 "eta": self.eta_proposal.state(), "fiducial": list(self.fiducial),
                 "efficiency": self.eff.state()}  # fmt: skip
        meta = {"format": FORMAT, "state": json.dumps(state)}
        atomic.atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device | None = None
    ) -> LearnedTransfer:
        """Read a file written by :meth:`save`, its flows on ``device`` (default CPU)."""
        from safetensors.torch import load_file

        meta = atomic.read_metadata(path, FORMAT, "MEM transfer", "train it again")
        try:
            state = json.loads(meta["state"])
            tensors = load_file(str(path))
            eff = Efficiency.from_saved(state["efficiency"], tensors, "eff.")
            flows = [ConditionalDensity.from_saved(state[key], tensors, f"{prefix}.", device)
                     for key, prefix in (("transfer", "transfer"), ("proposal", "proposal"),
                                         ("eta", "eta"))]  # fmt: skip
            return cls(flows[0], eff, flows[1], flows[2], tuple(state["fiducial"]))
        except (KeyError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{path}: unreadable MEM transfer ({err})") from None
