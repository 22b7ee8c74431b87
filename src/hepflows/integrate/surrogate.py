"""A Bayesian surrogate of an integrand: log f regressed with a per-point uncertainty.

Amplitude surrogates (Badger, Butter, Luchmann, Pitz, Plehn, 2206.14831): a network of
variational Bayesian layers (:class:`~hepflows.flows.VBLinear`) maps event features to
the mean and log-variance of ``log f``; the loss is the Gaussian likelihood of the
training targets plus the layers' KL term over the training size (the ELBO). At
prediction the weights are sampled: the spread of the sampled means is the model
(epistemic) uncertainty, the mean predicted variance the data term, and their sum the
variance of the prediction. Calibrated means that the pulls
(prediction - truth) / sigma on held-out points have unit width.

The integrand factorises as ``f(x) = base(x) * exp(log_f(features(x)))``: ``base`` is what
is cheap and known (a phase-space weight, zero outside the cuts), the network learns the
rest (for a collider process: |M|^2 times the parton luminosity).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hepflows.errors import ConfigError, InputError
from hepflows.flows.bayesian import VBLinear
from hepflows.flows.nets import activation
from hepflows.random import generator as new_generator
from hepflows.random import seeded
from hepflows.training.supervised import fit_supervised


class BayesianRegression(nn.Module):
    """Regression of a scalar with a per-point uncertainty: (N, F) -> mean, sigma (N,).

    Args:
        features: F, input width.
        hidden: hidden widths (all layers :class:`VBLinear`).
        act: activation name.
        prior_prec: precision of the weights' Gaussian prior.
        seed: seed of the weight noise's generator (training and prediction).
    """

    def __init__(self, features: int, hidden: Sequence[int] = (64, 64, 64), act: str = "silu",
                 prior_prec: float = 1.0, seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        if features < 1 or not hidden:
            raise ConfigError("need at least one feature and one hidden layer")
        self.config = dict(features=features, hidden=list(hidden), act=act,
                           prior_prec=prior_prec, seed=seed)  # fmt: skip
        layers: list[nn.Module] = []
        width = features
        with seeded(seed):  # the initial weights
            for h in hidden:
                layers += [VBLinear(width, h, prior_prec), activation(act)]
                width = h
            layers.append(VBLinear(width, 2, prior_prec))
        self.net = nn.Sequential(*layers)
        self.generator = new_generator(seed)
        for m in self.bayesian_layers():
            m.generator = self.generator
        for name in ("x_mean", "x_std"):
            self.register_buffer(name, torch.zeros(features) if "mean" in name
                                 else torch.ones(features))  # fmt: skip
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))
        #: the factor :meth:`calibrate` found for the uncertainties (1: uncalibrated)
        self.register_buffer("sigma_scale", torch.ones((), dtype=torch.float64))

    def bayesian_layers(self) -> list[VBLinear]:
        """The network's variational layers."""
        return [m for m in self.modules() if isinstance(m, VBLinear)]

    def forward(self, z: Tensor) -> Tensor:
        """Standardised features (N, F) -> (N, 2): standardised mean and log-variance;
        the weights are sampled in training mode (or when sampling is switched on)."""
        return self.net(z)

    def kl(self) -> Tensor:
        """The layers' KL divergence to the prior: a scalar."""
        return sum((m.kl() for m in self.bayesian_layers()), torch.zeros(()))

    def standardise(self, x: Tensor) -> Tensor:
        """(N, F) features -> (N, F) standardised ones (float32)."""
        return ((x - self.x_mean) / self.x_std).float()

    def fit_scaler(self, x: Tensor, y: Tensor) -> None:
        """Set the standardisation from training features (N, F) and targets (N,)."""
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-12))
        self.y_mean.copy_(y.mean())
        self.y_std.copy_(y.std().clamp_min(1e-12))

    @torch.no_grad()
    def predict(self, x: Tensor, samples: int = 30, batch_size: int = 65536
                ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Mean and uncertainty of the target at features x (N, F): two (N,) float64.

        ``samples`` weight draws: sigma^2 = mean of the predicted variances + variance of
        the predicted means. ``samples=0`` uses the weights' means (sigma: the data term).
        """
        mus, vars_ = [], []
        was = self.training
        self.eval()
        try:
            for part in torch.split(x, batch_size):
                z = self.standardise(part)
                draws = []
                for m in self.bayesian_layers():
                    m.sample_in_eval = samples > 0
                for _ in range(max(samples, 1)):
                    draws.append(self(z).double())
                out = torch.stack(draws)  # (S, n, 2)
                mu = out[..., 0]
                var = out[..., 1].clamp(-30, 30).exp().mean(0) + (mu.var(0) if samples > 1
                                                                  else 0.0)  # fmt: skip
                mus.append(mu.mean(0))
                vars_.append(var)
        finally:
            for m in self.bayesian_layers():
                m.sample_in_eval = False
            self.train(was)
        s = self.y_std.double()
        sigma = s * torch.cat(vars_).sqrt() * self.sigma_scale
        return self.y_mean.double() + s * torch.cat(mus), sigma

    def calibrate(self, x: Tensor, y: Tensor, samples: int = 30) -> float:
        """Rescale the uncertainties so that the pulls on (N, F) features and (N,) targets,
        points neither trained on nor used to judge the result, have unit width
        (:func:`pull_width`); returns the factor. A Gaussian likelihood fitted to residuals
        with heavy tails overstates the width of the bulk (the tails set the variance):
        recalibration on held-out points (Kuleshov et al. 1807.00263) corrects that."""
        self.sigma_scale.fill_(1.0)
        factor = pull_width(pulls(self, x, y, samples))
        if not math.isfinite(factor) or factor <= 0:
            raise InputError("calibration points gave no finite pull width: use more points")
        self.sigma_scale.fill_(factor)
        return factor


def gaussian_nll(out: Tensor, y: Tensor) -> Tensor:
    """Mean Gaussian negative log-likelihood of (N,) targets under (N, 2) (mean, log var)."""
    log_var = out[:, 1].clamp(-30, 30)
    return 0.5 * ((y - out[:, 0]) ** 2 * torch.exp(-log_var) + log_var).mean()


@dataclass
class SurrogateFit:
    """What :func:`fit_surrogate` did: epochs run and the best held-out loss."""

    epochs_run: int
    val_loss: float


def fit_surrogate(model: BayesianRegression, x: Tensor, y: Tensor, epochs: int = 200,
                  batch_size: int = 512, lr: float = 2e-3, patience: int = 30,
                  val_fraction: float = 0.1, seed: int = 0, progress: bool = False
                  ) -> SurrogateFit:  # fmt: skip
    """Train ``model`` on features x (N, F) and targets y (N,) (e.g. log f): ELBO loss
    (Gaussian likelihood + KL / N), the weights of the best held-out epoch kept."""
    if x.ndim != 2 or y.shape != (len(x),):
        raise InputError(f"need features (N, F) and targets (N,), got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")  # fmt: skip
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise InputError("features and targets must be finite: drop points where f = 0 "
                         "(log f = -inf) before fitting")  # fmt: skip
    if len(x) < 20:
        raise InputError(f"{len(x)} training points are too few for a surrogate: use >= 20")
    model.fit_scaler(x.double(), y.double())
    z = model.standardise(x)
    t = ((y.double() - model.y_mean.double()) / model.y_std.double()).float()
    n_train = len(x) * (1 - val_fraction)

    def loss(out: Tensor, target: Tensor) -> Tensor:
        return gaussian_nll(out, target) + model.kl() / n_train

    model.train()
    fitted = fit_supervised(model, z, t, loss, epochs=epochs, batch_size=batch_size, lr=lr,
                            patience=patience, val_fraction=val_fraction, seed=seed,
                            progress=progress, name="surrogate")  # fmt: skip
    return SurrogateFit(fitted.epochs_run, fitted.val_loss)


def pulls(model: BayesianRegression, x: Tensor, y: Tensor, samples: int = 30) -> Tensor:
    """(prediction - truth) / sigma at held-out features x (N, F) and targets y (N,): (N,)."""
    mean, sigma = model.predict(x, samples)
    return (mean - y.double()) / sigma


def pull_width(p: Tensor) -> float:
    """Robust width of pulls (N,): half the 15.9-84.1 % interquantile range (1 if Gaussian
    and calibrated; insensitive to a few far outliers)."""
    q = torch.quantile(p.double(), torch.tensor([0.15866, 0.84134], dtype=torch.float64))
    return float(0.5 * (q[1] - q[0]))


#: Largest sigma (of log f) the margin of :class:`SurrogateIntegrand` takes: a point far
#: outside the training data (sigma of several units) must not get an astronomic bound.
MARGIN_SIGMA_CAP = 0.2


class SurrogateIntegrand:
    """A fast stand-in of an integrand for two-stage unweighting: points (N, d) -> (N,).

    f_s(x) = base(x) exp(mu(x) + k min(sigma(x), cap)), with (features, base) =
    ``factorised(x)`` and mu, sigma the model's prediction of log(f / base). The margin
    k sigma raises f_s where the model knows it is unsure, so that the correction
    stage's ratio f / f_s has a lighter tail there (the unweighted events follow f for any
    k: it only moves work between the stages); :func:`choose_margin` picks k.

    Args:
        factorised: points (N, d) -> features (N, F) and base (N,) >= 0.
        model: a fitted :class:`BayesianRegression` of log(f / base) on the features.
        margin: k, in units of the predicted sigma (0: the mean prediction).
        cap: the largest sigma the margin takes.
        samples: weight draws per prediction (0: the weights' means, the fastest).
    """

    def __init__(self, factorised: Callable[[Tensor], tuple[Tensor, Tensor]],
                 model: BayesianRegression, margin: float = 0.0,
                 cap: float = MARGIN_SIGMA_CAP, samples: int = 0) -> None:  # fmt: skip
        if margin < 0 or cap <= 0 or samples < 0:
            raise ConfigError(f"need margin >= 0, cap > 0 and samples >= 0, got {margin}, "
                              f"{cap} and {samples}")  # fmt: skip
        self.factorised, self.model = factorised, model
        self.margin, self.cap, self.samples = margin, cap, samples

    def __call__(self, x: Tensor) -> Tensor:
        """f_s at points x (N, d): (N,) float64, 0 where the base is 0."""
        features, base = self.factorised(x)
        out = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        live = base > 0
        if bool(live.any()):
            mean, sigma = self.model.predict(features[live], samples=self.samples)
            out[live] = base[live] * torch.exp(mean + self.margin * sigma.clamp(max=self.cap))
        return out


def choose_margin(model: BayesianRegression, features: Tensor, targets: Tensor,
                  log_weight: Tensor, margins: Sequence[float] = (0, 0.5, 1, 2, 3, 4, 6, 8),
                  cap: float = MARGIN_SIGMA_CAP, quantile: float = 0.999, samples: int = 0
                  ) -> tuple[float, dict[float, float]]:  # fmt: skip
    """The margin k of :class:`SurrogateIntegrand` with the best expected correction-stage
    acceptance, judged on held-out points (neither trained nor calibrated on).

    The points x_i come from the proposal q; ``log_weight`` is log(base / q) there, so that
    the first stage keeps x_i with a probability proportional to exp(log_weight + mu +
    k sigma). The acceptance is E[min(1, r / r_ref)] over the kept points, r = f / f_s and
    r_ref their ``quantile`` (the rule of
    :func:`~hepflows.integrate.unweighting.two_stage_unweight`).

    Args:
        model: the fitted surrogate.
        features: (N, F) of the held-out points; targets (N,) their log(f / base).
        log_weight: (N,) log(base / q).
        margins: the k to try.
        cap, samples: as :class:`SurrogateIntegrand`.
        quantile: the rule's quantile.

    Returns:
        ``(k, {k: expected acceptance})``.
    """
    if targets.shape != (len(features),) or log_weight.shape != (len(features),):
        raise InputError(f"need features (N, F), targets (N,) and log weights (N,), got "
                         f"{tuple(features.shape)}, {tuple(targets.shape)} and "
                         f"{tuple(log_weight.shape)}")  # fmt: skip
    if len(features) < 1000:
        raise InputError(f"{len(features)} held-out points are too few to choose a margin "
                         "(the 0.999 quantile of a ratio): use >= 1000")  # fmt: skip
    mean, sigma = model.predict(features, samples=samples)
    acceptance = {}
    for k in margins:
        log_fs = mean + k * sigma.clamp(max=cap)
        keep = torch.exp(log_weight.double() + log_fs - (log_weight.double() + log_fs).max())
        r = torch.exp(targets.double() - log_fs)
        order = r.argsort()
        cum = keep[order].cumsum(0) / keep.sum()
        at = int(torch.searchsorted(cum, torch.tensor(quantile, dtype=cum.dtype)))
        r_ref = r[order][min(at, len(r) - 1)]
        acceptance[float(k)] = float((keep * (r / r_ref).clamp(max=1)).sum() / keep.sum())
    best = max(acceptance, key=acceptance.__getitem__)
    return best, acceptance
