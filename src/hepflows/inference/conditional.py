"""A conditional density q(x | c) of observables: a flow with the observables scaled.

Used both ways round: the cINN posterior q(x_truth | x_reco) (Bellagente et
al., arXiv:2006.06685) and the forward model T(x_reco | x_truth) of SPINUP
(arXiv:2507.15084). Coordinates: each side's observables mapped onto the
real line and standardised by its own :class:`~hepflows.inference.scaling.Scaler`;
densities are returned in the observables' own units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hepflows.device import resolve_device
from hepflows.errors import ConfigError, InputError
from hepflows.flows import MAF, CouplingFlow
from hepflows.flows.training import fit
from hepflows.inference.scaling import Scaler
from hepflows.random import seeded
from hepflows.training import History

#: Observables whose sign is measured along another's: Collins-Soper cos theta* is taken
#: along the dilepton's direction of motion, sign(y_ll) z. Where the detector moves y_ll
#: across 0, cos_cs changes sign: a second, far mode of reco given truth (and back).
SIGNED_BY = {"cos_cs": "y_ll"}


def fold_signs(x: Tensor, names: Sequence[str]) -> Tensor:
    """(n, k) observables with each :data:`SIGNED_BY` one multiplied by its partner's sign.

    cos_cs * sign(y_ll) is the angle along the fixed +z axis, which the detector
    moves continuously. The map is its own inverse, with |Jacobian| 1 (sign(0) = +1).
    """
    pairs = [(names.index(a), names.index(b)) for a, b in SIGNED_BY.items()
             if a in names and b in names]  # fmt: skip
    if not pairs:
        return x
    x = x.clone()
    for a, b in pairs:
        x[:, a] = torch.where(x[:, b] < 0, -x[:, a], x[:, a])
    return x


def check_holdout(holdout: float) -> None:
    """Refuse a held-out fraction outside [0, 0.5)."""
    if not 0.0 <= holdout < 0.5:
        raise ConfigError(f"holdout is a held-out fraction, 0 <= holdout < 0.5; got {holdout}")


def build_flow(
    features: int, context: int, transforms: int, bins: int, hidden: Sequence[int], seed: int
) -> CouplingFlow | MAF:
    """A coupling flow (one pass to sample) for >= 2 features, a MAF for 1, seeded.

    Initialised inside :func:`hepflows.random.seeded`: the caller's global stream is untouched.
    """
    sizes = {"features": features, "context": context, "transforms": transforms, "bins": bins,
             "hidden": hidden}  # fmt: skip
    with seeded(seed):
        return CouplingFlow(**sizes, seed=seed) if features >= 2 else MAF(**sizes)


class ConditionalDensity:
    """A conditional flow q(x | c) over k observables given p conditions.

    By default the conditions are the same k observables at another level
    (truth and reco); ``context_names`` gives other ones (parameters theta of
    a likelihood p(x | theta)); at least one.

    Args:
        names: the k observables x.
        transforms: flow blocks.
        bins: spline bins.
        hidden: conditioner widths.
        seed: seeds the initialisation.
        residual: model x relative to c (only when both are the same
            observables; the default then).
        context_names: the p conditions (default: ``names``).
        fold: let the flow see cos_cs * sign(y_ll) where both are among the
            observables (:func:`fold_signs`; densities unchanged). Files saved
            before this option load with ``False``.
        device: where the flow trains and runs (``"cpu"`` default, ``"cuda"``,
            ``"mps"``). Its weights are initialised on the CPU, so a seed gives
            the same flow anywhere. Scalers, inputs and results stay on the CPU;
            a generator passed to :meth:`sample` must be on this device
            (:func:`hepflows.device.generator_on`).

    A coupling flow (one pass to sample) for k >= 2, a MAF for k = 1.
    """

    def __init__(
        self,
        names: Sequence[str],
        transforms: int = 6,
        bins: int = 10,
        hidden: Sequence[int] = (128, 128),
        seed: int = 0,
        residual: bool | None = None,
        context_names: Sequence[str] | None = None,
        fold: bool = True,
        device: str | torch.device | None = None,
    ) -> None:
        self.names = tuple(names)
        self.context_names = self.names if context_names is None else tuple(context_names)
        if not self.names or not self.context_names:
            raise ConfigError("a conditional density needs at least one observable and condition")
        same = self.context_names == self.names
        if residual is None:
            residual = same
        if residual and not same:
            raise ConfigError(
                "residual=True models x relative to c and needs the same observables on both "
                f"sides, got {list(self.names)} and {list(self.context_names)}"
            )
        k, p = len(self.names), len(self.context_names)
        self.config = {"transforms": transforms, "bins": bins, "hidden": list(hidden), "seed": seed,
                       "residual": residual, "context_names": list(self.context_names),
                       "fold": fold}  # fmt: skip
        self.device = resolve_device(device)
        with torch.device("cpu"):  # the same initial weights on any device
            self.flow = build_flow(k, p, transforms, bins, hidden, seed)
        self.flow.to(self.device)
        self.x_scaler, self.c_scaler = Scaler(self.names), Scaler(self.context_names)
        self.r_shift = torch.zeros(k, dtype=torch.float64, device="cpu")
        self.r_scale = torch.ones(k, dtype=torch.float64, device="cpu")
        self.losses: list[float] = []
        self.val_losses: list[float] = []
        self.best_step = 0

    # ------------------------------------------------------------ coordinates
    def _check_pair(self, x: Tensor, context: Tensor) -> None:
        """Refuse x and conditions of the wrong widths or of different lengths."""
        k, p = len(self.names), len(self.context_names)
        if x.ndim != 2 or context.ndim != 2 or x.shape[1] != k or context.shape[1] != p:
            raise InputError(
                f"expected x (n, {k}) of {list(self.names)} and conditions (n, {p}) of "
                f"{list(self.context_names)}, got {tuple(x.shape)} and {tuple(context.shape)}"
            )
        if len(x) != len(context):
            raise InputError(f"{len(x)} values of x but {len(context)} conditions")

    def _fold_x(self, x: Tensor) -> Tensor:
        return fold_signs(x, self.names) if self.config["fold"] else x

    def _fold_c(self, context: Tensor) -> Tensor:
        return fold_signs(context, self.context_names) if self.config["fold"] else context

    def _c(self, context: Tensor) -> Tensor:
        """(n, p) conditions -> the flow's (n, p) context (folded, standardised; float32)."""
        return self.c_scaler.forward(self._fold_c(context))

    def _offset(self, context: Tensor) -> Tensor:
        """Where u = 0 sits in x's standardised coordinates, per condition (n, k), float64
        (without ``residual``: (1, k) zeros, which broadcast, also in a traced graph)."""
        k = len(self.names)
        if not self.config["residual"]:
            return torch.zeros(1, k, dtype=torch.float64, device="cpu")
        return self.x_scaler.forward(self._fold_c(context)).double() + self.r_shift

    def _to_u(self, x: Tensor, context: Tensor) -> Tensor:
        """(n, k) x and conditions -> (n, k) flow coordinates u (float32)."""
        u = (self.x_scaler.forward(self._fold_x(x)).double() - self._offset(context)) / self.r_scale
        return u.float()

    def _from_u(self, u: Tensor, context: Tensor) -> Tensor:
        """(n, k) flow coordinates and conditions -> (n, k) x (float64)."""
        x = self.x_scaler.inverse(self._offset(context) + self.r_scale * u.double())
        return self._fold_x(x)

    def _log_det(self, x: Tensor) -> Tensor:
        """log |du / dx| at (n, k) x: (n,) (the fold has |Jacobian| 1 and keeps |cos|, on which
        alone the atanh map's Jacobian depends)."""
        return self.x_scaler.log_abs_det(x) - self.r_scale.log().sum()

    def fit(
        self,
        x: Tensor,
        context: Tensor,
        steps: int = 5000,
        batch_size: int = 1024,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = False,
        description: str = "conditional flow",
        holdout: float = 0.0,
        validate_every: int = 100,
        validation: tuple[Tensor, Tensor] | None = None,
    ) -> ConditionalDensity:
        """Train on (n, k) values x and (n, p) conditions (e.g. reco and truth of detected events).

        Adam with cosine decay on the shared engine (:func:`hepflows.flows.training.fit`).
        With ``holdout`` > 0 that fraction of the pairs (a seeded random choice)
        is held out, its mean NLL is measured every ``validate_every`` steps
        (``self.val_losses``) and the flow keeps the weights of the best
        measurement (``self.best_step``): the guard against fitting the
        noise of the pairs, which fails the likelihood validation on new data.
        ``validation`` = (x, c) gives the held-out pairs instead (e.g. a
        bootstrap's out-of-bag pairs). Returns ``self``.
        """
        self._check_pair(x, context)
        if len(x) < batch_size:
            raise InputError(f"{len(x)} training pairs are fewer than one batch of "
                             f"{batch_size}: simulate more or lower batch_size")  # fmt: skip
        check_holdout(holdout)
        if validation is not None:
            if holdout > 0:
                raise ConfigError("give either holdout or validation pairs, not both")
            self._check_pair(*validation)
        x_folded, c_folded = self._fold_x(x), self._fold_c(context)
        self.x_scaler.fit(x_folded)
        self.c_scaler.fit(c_folded)
        if self.config["residual"]:
            d = self.x_scaler.forward(x_folded).double() - self.x_scaler.forward(c_folded).double()
            self.r_shift, self.r_scale = d.mean(0), d.std(0).clamp_min(1e-12)
        z, c = self._to_u(x, context), self._c(context)
        if validation is not None:
            validation = (self._to_u(*validation), self._c(validation[1]))
        elif holdout > 0:
            perm = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed + 7919),
                                  device="cpu")  # fmt: skip
            n_val = max(1, round(holdout * len(z)))
            val, train = perm[:n_val], perm[n_val:]
            if len(train) < batch_size:
                raise InputError(f"{len(train)} pairs left after the holdout are fewer than one "
                                 f"batch of {batch_size}: lower holdout or batch_size")  # fmt: skip
            validation, z, c = (z[val], c[val]), z[train], c[train]
        history = History()
        self.losses = fit(self.flow, z, steps=steps, batch_size=batch_size, lr=lr, context=c,
                          seed=seed, progress=progress, description=description,
                          validation=validation, validate_every=validate_every,
                          callbacks=[history])  # fmt: skip
        self.val_losses = [row["val"] for row in history.epochs]
        self.best_step = (
            validate_every * (1 + min(range(len(self.val_losses)), key=self.val_losses.__getitem__))
            if self.val_losses
            else len(self.losses)
        )
        return self

    @torch.no_grad()
    def sample(
        self,
        context: Tensor,
        samples: int = 100,
        generator: torch.Generator | None = None,
        batch_size: int = 100_000,
    ) -> Tensor:
        """``samples`` draws of x for each condition: (n, p) -> (S, n, k).

        ``generator``: on the flow's device (:attr:`device`), or ``None``.
        """
        return self.sample_and_log_prob(context, samples, generator, batch_size)[0]

    @torch.no_grad()
    def sample_and_log_prob(
        self,
        context: Tensor,
        samples: int = 100,
        generator: torch.Generator | None = None,
        batch_size: int = 100_000,
    ) -> tuple[Tensor, Tensor]:
        """Draws (S, n, k) of x for each of n conditions and their log q(x | c) (S, n)."""
        c = self._c(context)
        k = len(self.names)
        out = torch.empty(samples, len(c), k, dtype=torch.float64, device="cpu")
        logq = torch.empty(samples, len(c), dtype=torch.float64, device="cpu")
        rows = max(1, batch_size // max(samples, 1))
        for i in range(0, len(c), rows):
            ci = c[i : i + rows].repeat(samples, 1)
            raw = context[i : i + rows].repeat(samples, 1)
            z, lq = self.flow.sample_and_log_prob(len(ci), context=ci.to(self.device),
                                                  generator=generator)  # fmt: skip
            z, lq = z.cpu(), lq.cpu()
            x = self._from_u(z, raw)
            out[:, i : i + rows] = x.view(samples, -1, k)
            lq = lq.double() + self._log_det(x)
            logq[:, i : i + rows] = lq.view(samples, -1)
        return out, logq

    @torch.no_grad()
    def from_latent(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """x (n, k) and log q(x | c) (n,) from base-space points z (n, k) and (n, p) c.

        The inverse of :meth:`latent`: with z standard normal, x ~ q(. | c); with
        z from fixed uniforms (z = Phi^-1(u)), the draws are common random numbers.
        """
        self._check_pair(z, context)
        zd = z.float().to(self.device)
        u, ladj = self.flow.to_data(zd, self._c(context).to(self.device))
        x = self._from_u(u.cpu(), context)
        log_q = (self.flow.base.log_prob(zd) - ladj).cpu().double() + self._log_det(x)
        return x, log_q

    @torch.no_grad()
    def log_prob(self, x: Tensor, context: Tensor) -> Tensor:
        """log q(x | c) in the observables' own units: (n, k) x, (n, p) c -> (n,)."""
        self._check_pair(x, context)
        u, c = self._to_u(x, context).to(self.device), self._c(context).to(self.device)
        return self.flow.log_prob(u, c).cpu().double() + self._log_det(x)

    @torch.no_grad()
    def latent(self, x: Tensor, context: Tensor) -> Tensor:
        """The flow's base-space point z (n, k) of (n, k) x given (n, p) c: standard normal
        when x ~ q(. | c), the basis of the likelihood validation."""
        self._check_pair(x, context)
        u, c = self._to_u(x, context).to(self.device), self._c(context).to(self.device)
        return self.flow.to_latent(u, c)[0].cpu()

    # ------------------------------------------------------------ saving
    def tensors(self, prefix: str = "flow.") -> dict[str, Tensor]:
        """The flow's weights, for a file (on the CPU: a file loads on any device)."""
        return {prefix + k: v.detach().cpu().contiguous()
                for k, v in self.flow.state_dict().items()}  # fmt: skip

    def state(self) -> dict[str, Any]:
        """JSON-ready configuration and scalers."""
        residual = {"shift": self.r_shift.tolist(), "scale": self.r_scale.tolist()}
        return {"names": list(self.names), "config": self.config, "residual": residual,
                "x_scaler": self.x_scaler.state(), "c_scaler": self.c_scaler.state()}  # fmt: skip

    @classmethod
    def from_saved(
        cls,
        state: dict[str, Any],
        tensors: dict[str, Tensor],
        prefix: str = "flow.",
        device: str | torch.device | None = None,
    ) -> ConditionalDensity:
        """Rebuild from :meth:`state` and :meth:`tensors`, on ``device`` (default CPU)."""
        c = state["config"]
        model = cls(state["names"], c["transforms"], c["bins"], c["hidden"], c["seed"],
                    c.get("residual", False), c.get("context_names"),
                    c.get("fold", False), device)  # fmt: skip
        model.x_scaler = Scaler.from_state(state["x_scaler"])
        model.c_scaler = Scaler.from_state(state["c_scaler"])
        if "residual" in state:
            model.r_shift = torch.tensor(state["residual"]["shift"], dtype=torch.float64,
                                         device="cpu")  # fmt: skip
            model.r_scale = torch.tensor(state["residual"]["scale"], dtype=torch.float64,
                                         device="cpu")  # fmt: skip
        n = len(prefix)
        model.flow.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(prefix)})
        model.flow.eval()
        return model


def unfolded_weights(
    samples: Tensor, efficiency: Tensor | None, inside: Tensor | None = None
) -> Tensor:
    """Weights (S, n) of posterior samples (S, n, k): each measured event counts 1 / eps in total.

    Args:
        samples: (S, n, k) posterior samples.
        efficiency: (S, n) eps at the samples, or ``None`` (no correction).
        inside: (S, n) bool, the samples that count (e.g. inside the truth's
            support); each event's probability is shared among its counted
            samples. ``None``: all count, 1 / S each.
    """
    s = samples.shape[0]
    if inside is None:
        prob = torch.full(samples.shape[:2], 1.0 / s, dtype=torch.float64, device="cpu")
    else:
        if inside.shape != samples.shape[:2] or not bool(inside.any(0).all()):
            raise InputError("inside must be (S, n) with at least one sample per event")
        counted = inside.double()
        prob = counted / counted.sum(0, keepdim=True)
    if efficiency is None:
        return prob
    if efficiency.shape != samples.shape[:2] or not bool((efficiency > 0).all()):
        raise InputError("efficiency must be (S, n) and positive")
    return prob / efficiency.double()


def check_names(expected: Sequence[str], got: Sequence[str], what: str) -> None:
    """Refuse data whose observables differ from a model's, naming both."""
    if tuple(expected) != tuple(got):
        raise InputError(
            f"{what} was trained on observables {list(expected)}, the data hold "
            f"{list(got)}: use data with the same observables in the same order"
        )
