"""The learned matrix-element method for any process: a transfer flow and a sampling flow.

Heimel et al. (arXiv:2310.07752, eq. 2-5): for a measured event r the MEM
needs I(r | theta) = int dx dsigma(x | theta) eps(x) T(r | x), estimated by
importance sampling from a "sampling cINN" q(x | r),

    I(r | theta) ~ 1/S sum_s dsigma(x_s | theta) eps(x_s) T(r | x_s) / q(x_s | r),
    x_s ~ q(. | r).

:class:`FlowTransfer` learns T(r | x) as a conditional flow over r given x and
q(x | r) as a second one over x given r, both from simulated (truth, reco)
pairs; eps(x) is given (default 1). It knows nothing of the process: x and r
have any widths, dsigma comes from the :class:`~hepflows.inference.mem.Model`.
One channel only (the Drell-Yan :class:`~hepflows.inference.learned_mem.LearnedTransfer`
adds a Breit-Wigner one). The estimate is unbiased wherever q covers the
integrand; q is trained at one theta, so the further theta is from there, the
larger the weights' spread, which the integrals' errors report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.inference.conditional import ConditionalDensity

if TYPE_CHECKING:
    from hepflows.inference.mem import Model

#: Uniforms are kept this far from 0 and 1 before the normal quantile (|z| < 6).
U_EDGE = 1e-9


class FlowTransfer:
    """Learned T(r | x) and sampler q(x | r) of the MEM of any process.

    Has the :class:`~hepflows.inference.mem.Transfer` interface:
    :func:`~hepflows.inference.mem.event_integrals` and :func:`~hepflows.inference.mem.fit`
    take it with any :class:`~hepflows.inference.mem.Model` whose truth has dx columns.

    Args:
        transfer: T(r | x), a conditional density over the dr reco observables
            given the dx truth ones.
        proposal: q(x | r), over the truth observables given the reco ones.
        efficiency: eps at (N, dx) truth -> (N,) in [0, 1] (default: 1 everywhere).
    """

    def __init__(
        self,
        transfer: ConditionalDensity,
        proposal: ConditionalDensity,
        efficiency: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if transfer.context_names != proposal.names or proposal.context_names != transfer.names:
            raise ConfigError(
                f"the transfer models {list(transfer.names)} given {list(transfer.context_names)}"
                f" and the sampler {list(proposal.names)} given {list(proposal.context_names)}:"
                " the sampler must model the transfer's conditions given its observables"
            )
        self.transfer, self.proposal, self.eff = transfer, proposal, efficiency
        #: Columns of reco r.
        self.RECO_DIM = len(transfer.names)
        #: Uniforms per point: one per truth column (the sampling flow's latent space).
        self.UNIFORMS = len(proposal.names)

    @classmethod
    def train(
        cls,
        truth: Tensor,
        reco: Tensor,
        steps: int = 3000,
        batch_size: int = 1024,
        seed: int = 0,
        transforms: int = 4,
        bins: int = 8,
        names_x: Sequence[str] | None = None,
        names_r: Sequence[str] | None = None,
        hidden: Sequence[int] = (64, 64),
        efficiency: Callable[[Tensor], Tensor] | None = None,
        progress: bool = False,
        device: str | torch.device | None = None,
    ) -> FlowTransfer:
        """Train T(r | x) and q(x | r) on (n, dx) truth and (n, dr) reco of detected events.

        Args:
            truth, reco: the pairs (events the detector missed are left out:
                ``efficiency`` accounts for them).
            steps, batch_size, seed: training of each flow (the sampler is seeded ``seed + 1``).
            transforms, bins, hidden: size of each flow.
            names_x: the truth observables (default ``x0, x1, ...``); names the
                scaling maps know (``pt``...) are mapped onto the real line.
            names_r: the reco observables (default: ``names_x`` when dr == dx,
                the same observables measured, else ``r0, r1, ...``). With equal
                names both flows model one side relative to the other (residuals).
            efficiency: eps(x), see the class.
            device: where both flows train and run (default CPU); points,
                weights and the matrix element stay on the CPU.
        """
        for what, t in (("truth", truth), ("reco", reco)):
            if not isinstance(t, Tensor) or t.ndim != 2 or t.shape[1] < 1:
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise InputError(f"{what} must be a 2-D tensor (n, d), got {got}")
        if len(truth) != len(reco):
            raise InputError(f"{len(truth)} truth events but {len(reco)} reco events: pass pairs")
        dx, dr = truth.shape[1], reco.shape[1]
        names_x = tuple(names_x) if names_x is not None else tuple(f"x{i}" for i in range(dx))
        if names_r is None:
            names_r = names_x if dr == dx else tuple(f"r{i}" for i in range(dr))
        names_r = tuple(names_r)
        if len(names_x) != dx or len(names_r) != dr:
            raise ConfigError(f"names_x {list(names_x)} and names_r {list(names_r)} must name "
                              f"the {dx} truth and {dr} reco columns")  # fmt: skip
        size = {"transforms": transforms, "bins": bins, "hidden": tuple(hidden), "device": device}
        t = ConditionalDensity(names_r, seed=seed, context_names=names_x, **size).fit(
            reco, truth, steps, batch_size, seed=seed, progress=progress,
            description="transfer T(r | x)",
        )  # fmt: skip
        q = ConditionalDensity(names_x, seed=seed + 1, context_names=names_r, **size).fit(
            truth, reco, steps, batch_size, seed=seed + 1, progress=progress,
            description="sampling flow q(x | r)",
        )  # fmt: skip
        return cls(t, q, efficiency)

    # ------------------------------------------------------------ the MEM interface
    def log_transfer(self, r: Tensor, x: Tensor) -> Tensor:
        """log T(r | x): (..., dr), (..., dx) -> (...) (leading shapes broadcast)."""
        shape = torch.broadcast_shapes(r.shape[:-1], x.shape[:-1])
        flat_r = r.expand(*shape, r.shape[-1]).reshape(-1, r.shape[-1])
        flat_x = x.expand(*shape, x.shape[-1]).reshape(-1, x.shape[-1])
        return self.transfer.log_prob(flat_r, flat_x).view(shape)

    def efficiency(self, x: Tensor) -> Tensor:
        """eps(x) at (..., dx) truth -> (...), float64."""
        if self.eff is None:
            return torch.ones(x.shape[:-1], dtype=torch.float64, device="cpu")
        with torch.no_grad():
            out = self.eff(x.reshape(-1, x.shape[-1]))
        return out.to(torch.float64).view(x.shape[:-1])

    @torch.no_grad()
    def log_weights(self, model: Model, r: Tensor, uniforms: Tensor, thetas: Tensor) -> Tensor:
        """log(dsigma eps T / q) (T, S, n) for reco (n, dr), uniforms (S, n, dx), thetas (T, p).

        The points x = q's inverse at z = Phi^-1(u) do not move with theta, so
        both flows and eps are evaluated once; per theta only dsigma is.
        """
        s, n = uniforms.shape[:2]
        if r.ndim != 2 or r.shape[1] != self.RECO_DIM:
            raise InputError(f"r must be (n, {self.RECO_DIM}), got {tuple(r.shape)}")
        if uniforms.shape != (s, len(r), self.UNIFORMS):
            raise InputError(f"uniforms must be (S, {len(r)}, {self.UNIFORMS}), got "
                             f"{tuple(uniforms.shape)}")  # fmt: skip
        normal = torch.distributions.Normal(torch.zeros((), device="cpu"), 1.0)
        z = normal.icdf(uniforms.clamp(U_EDGE, 1 - U_EDGE)).reshape(-1, self.UNIFORMS)
        r_s = r.repeat(s, 1)  # row j * n + i is event i's j-th point
        x, log_q = self.proposal.from_latent(z, r_s)
        fixed = self.transfer.log_prob(r_s, x) - log_q
        fixed = fixed + self.efficiency(x).clamp_min(1e-300).log()
        thetas = torch.as_tensor(thetas, dtype=torch.float64, device="cpu").reshape(len(thetas), -1)
        out = torch.empty(len(thetas), s * n, dtype=torch.float64, device="cpu")
        for k, theta in enumerate(thetas.tolist()):
            out[k] = model.log_density(x, theta).double() + fixed
        return out.view(len(thetas), s, n)
