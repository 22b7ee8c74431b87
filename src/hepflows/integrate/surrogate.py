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
from collections.abc import Sequence
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
