"""CaloFlow (Krause, Shih 2106.05285; CaloFlow II 2110.11377): two conditional flows.

* **Flow I** learns p(E_1..E_L | E_inc) through "u-variables" in (0, 1):
  u_0 = (sum_i E_i) / (s E_inc) (s: a scale fitted once so that u_0 < 1) and
  u_i = E_i / (E_i + ... + E_L) for i = 1..L-1, logit-transformed. With
  ``moments=1`` it also learns the energy-weighted centre (x, y) of every
  layer, with ``moments=2`` (the default) the centres and the widths (x, y):
  p(E_1..E_L, M_1..M_L | E_inc), M_l the layer's lateral moments.
* **Flow II** learns p(voxels / E_layer | E_1..E_L, [M_1..M_L,] E_inc): each layer's
  voxels divided by its energy, with U(0, 1 keV) noise added to the voxels at
  training time (so that empty voxels do not form a point mass), then
  x -> logit(alpha + (1 - 2 alpha) x) with alpha = 1e-6.

Both flows are MAFs (fast density, the "teacher"). Flow II can also be a
one-pass IAF "student" distilled from the teacher
(:mod:`hepflows.flows.distill`). Sampled voxels are clipped at zero,
renormalised to their layer energy and zeroed below a readout threshold: the
geometry's (:attr:`Geometry.threshold_mev`, the detector's) or, when higher, one
fitted on the training showers: the geometric mean of the noise level and the
1 % quantile of the non-zero voxel energies, i.e. halfway (in logit space)
between the noise and the smallest real deposits. Zeroing at the noise level
itself, the upper edge of the noise, would light up about half of the empty
voxels at the slightest blur of the flow (measured on toy photons: sparsity
separation powers of 0.7-0.9).

Why the moments: the impact point moves every layer's shower together, and
the depth of the shower sets every layer's width. In CaloFlow's original form
flow II has to carry both from the first layer's voxels to the last through
its autoregressive network; on the toy CaloGAN photons a 4-block MAF with 128
hidden units kept only a third of the correlation of the layer-0 and layer-1
centres (0.20 against 0.61). With 20k training showers, 10 teacher epochs
and the fixed voxel classifier on 20k against 20k showers, the AUC was 0.92
without moments and 0.65 with centres and widths (feature AUC 0.92 -> 0.77).
Modelled in flow I (a small flow in 3L or 5L dimensions) and given to flow II
as context, they are explicit conditions. The moments are dequantised with
Gaussian noise of :data:`MOMENT_NOISE` standard deviations: a layer whose
energy sits in one row of cells has a centre that is constant up to the 1 keV
voxel noise, a point mass that flow I's density would otherwise spend itself on.

All inputs to the flows are standardised with statistics fitted on the
training showers (kept as buffers, saved with the model).

Devices: the model runs where its parameters are (``model.to("cuda")``,
:meth:`CaloFlow.load` ``device=``, :meth:`CaloFlow.sample` ``device=``); every
tensor it makes at run time is placed on that device, its random draws come
from generators on that device (:func:`hepflows.device.generator_on`), and
showers come back to the CPU as numpy arrays. Files always hold CPU tensors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

import hepflows
from hepflows.calo.geometry import Geometry, Layer
from hepflows.calo.showers import Showers
from hepflows.device import generator_on, resolve_device
from hepflows.errors import CheckpointError, ConfigError, InputError
from hepflows.flows import IAF, MAF
from hepflows.io.atomic import atomic_write, read_metadata
from hepflows.progress import progress_bar
from hepflows.random import fresh_seed, seeded

FORMAT = "hepflows-caloflow"
ALPHA = 1e-6  # logit regulator (CaloFlow)
NOISE_MEV = 1e-3  # 1 keV training noise on voxels (CaloFlow)
#: Smallest allowed ratio of a geometry's readout threshold to the voxel noise: nearer, the
#: flow blurs the empty voxels' noise into deposits (15 keV noise on ds2 lit 64 % of layer
#: 5's voxels, the simulator 3 %).
NOISE_GAP = 10.0
#: Anchored voxel variables (``anchor=True``) are floored at this fraction of the noise:
#: log(1e-3) = -6.9, while U(0, noise) noise falls below it once in a thousand draws.
ANCHOR_FLOOR = 1e-3
#: Anchored variables are scaled per layer, from the floor to the largest training value
#: plus ANCHOR_MARGIN (log 2: twice the largest deposit), onto [-ANCHOR_SPAN, ANCHOR_SPAN]:
#: inside the splines' +-5, where a flow can place mass (per-voxel standardisation put
#: 8-18 % of the lit voxels of ds2's layers 3-8 beyond 5 standard deviations).
ANCHOR_SPAN = 4.0
ANCHOR_MARGIN = math.log(2.0)
MOMENT_NOISE = 0.05  # dequantisation of the layer moments, in their standard deviations

#: Showers per flow pass when sampling. The student's one pass is bound by memory
#: traffic of its (P, F, N) spline parameters: on 2 cores, 10^4 showers took 0.30
#: ms/shower in passes of 256, 0.64 in passes of 2048 and 0.84 in one pass. The
#: teacher's V passes per block are bound by per-pass overhead: larger is better.
BATCH = {"student": 256, "teacher": 4096}

#: Default sizes, chosen for 2 CPU cores (CaloFlow's own ran for hours on a GPU).
FLOW1_DEFAULTS: dict[str, Any] = dict(transforms=6, bins=8, hidden=[64, 64])
FLOW2_DEFAULTS: dict[str, Any] = dict(transforms=6, bins=8, hidden=[256])


def _logit(x: Tensor, alpha: float = ALPHA) -> Tensor:
    x = alpha + (1 - 2 * alpha) * x
    return torch.log(x) - torch.log1p(-x)


def _expit(y: Tensor, alpha: float = ALPHA) -> Tensor:
    return (torch.sigmoid(y) - alpha) / (1 - 2 * alpha)


def _noise_config(config: dict[str, Any]) -> dict[str, Any]:
    """The voxel noise, logit regulator and anchoring of a saved configuration (files saved
    before they were options hold CaloFlow's constants, unanchored)."""
    return {"noise_mev": config.get("noise_mev", NOISE_MEV), "alpha": config.get("alpha", ALPHA),
            "anchor": config.get("anchor", False)}  # fmt: skip


def voxel_layout(geometry: Geometry) -> tuple[Tensor, Tensor]:
    """Per voxel its layer among the voxelised layers (V,) and its centre (V, 2) in mm."""
    owner = np.concatenate([np.full(geometry.layers[i].n_voxels, k)
                            for k, i in enumerate(geometry.voxel_layers)])  # fmt: skip
    xy = torch.as_tensor(geometry.centres(), dtype=torch.float32)
    return torch.as_tensor(owner, dtype=torch.long), xy


def layer_sums(voxels: Tensor, owner: Tensor, n_layers: int) -> Tensor:
    """(N, V) voxel energies -> (N, L) per-layer sums (``owner``: :func:`voxel_layout`)."""
    return voxels.new_zeros(len(voxels), n_layers).index_add_(1, owner, voxels)


def lateral_moments(vox: Tensor, layers: Tensor, owner: Tensor, xy: Tensor) -> Tensor:
    """(N, V) voxels and (N, L) layer energies -> (N, 4L) lateral moments in mm: the
    energy-weighted centres (x_1, y_1, ..., y_L), then the widths in the same order."""
    xy4 = torch.cat([xy, xy**2], 1)  # (V, 4)
    sums = vox.new_zeros(len(vox), layers.shape[1], 4).index_add_(1, owner, vox[:, :, None] * xy4)
    m = sums / layers.clamp_min(NOISE_MEV)[:, :, None]
    centre = m[..., :2]
    width = (m[..., 2:] - centre**2).clamp_min(0).sqrt()
    return torch.cat([centre.flatten(1), width.flatten(1)], 1)


def readout_threshold(voxels: Tensor, noise_mev: float = NOISE_MEV) -> float:
    """Threshold (MeV) below which generated voxels are zeroed, from (N, V) training voxels.

    The geometric mean of the training noise level and the 1 % quantile of the
    non-zero voxel energies (never below the noise level).
    """
    lit = voxels[voxels > 0].cpu()  # float64 quantile: on the CPU (MPS has no float64)
    if len(lit) > 1_000_000:  # quantile() has a size limit; a strided subsample does
        lit = lit[:: len(lit) // 1_000_000 + 1]
    smallest = torch.quantile(lit.double(), 0.01).item() if len(lit) else noise_mev
    return float(np.sqrt(noise_mev * max(smallest, noise_mev)))


class CaloFlow(nn.Module):
    """CaloFlow for one geometry: flow I, flow II teacher and (optionally) a student.

    Args:
        geometry: the calorimeter (built-in name, XML path or :class:`Geometry`).
        flow1: keyword arguments of flow I's :class:`~hepflows.flows.MAF`
            (``transforms``, ``bins``, ``hidden``); defaults :data:`FLOW1_DEFAULTS`.
        flow2: keyword arguments of flow II (teacher MAF and student IAF);
            defaults :data:`FLOW2_DEFAULTS`.
        student: also build the IAF student of flow II.
        moments: lateral moments per layer that flow I models and flow II is
            conditioned on (see the module docstring): 0 none (CaloFlow's
            original form), 1 the centres of energy, 2 centres and widths.
        seed: seed of the weight initialisation (``None``: a fresh one); the
            caller's global torch RNG is not touched either way.
        noise_mev: width of the U(0, noise) training noise on every voxel (MeV). It
            sets how far below the real deposits the empty voxels sit: with a
            readout threshold T, the gap is T / noise (1 keV: CaloFlow's); it must be
            at least :data:`NOISE_GAP` (10).
        alpha: regulator of the logit of the voxel fractions (it must stay above
            float32's resolution, about 1e-7).
        anchor: flow II models ``log(E_voxel / noise_mev)`` instead of the logit of the
            voxel's fraction of its layer (the sample is normalised to flow I's layer
            energies either way): the empty voxels' spike and the readout threshold then
            sit at the same place whatever the layer energy, instead of moving by
            ``log E_layer`` across three decades of incident energy, where the spike of
            one shower overlaps the faint deposits of another (and alpha's floor, a
            fraction, is not an energy). ``False``: CaloFlow's logit fractions.
    """

    #: File format tag and name of the model in messages (subclasses set their own).
    format = FORMAT
    label = "CaloFlow model"

    def __init__(
        self,
        geometry: str | os.PathLike | Geometry = "calogan",
        flow1: dict[str, Any] | None = None,
        flow2: dict[str, Any] | None = None,
        student: bool = True,
        moments: int = 2,
        seed: int | None = None,
        noise_mev: float = NOISE_MEV,
        alpha: float = ALPHA,
        anchor: bool = False,
    ) -> None:
        super().__init__()
        if not (math.isfinite(noise_mev) and noise_mev > 0):
            raise ConfigError(f"noise_mev must be a positive energy (MeV), got {noise_mev}")
        if not 1e-7 <= alpha < 0.5:
            raise ConfigError(f"alpha must lie in [1e-7, 0.5) (float32 cannot resolve less), "
                              f"got {alpha}")  # fmt: skip
        self.noise_mev, self.alpha, self.anchor = float(noise_mev), float(alpha), bool(anchor)
        self.geometry = Geometry.resolve(geometry)
        limit = self.geometry.threshold_mev
        if limit > 0 and self.noise_mev > limit / NOISE_GAP:
            raise ConfigError(
                f"noise_mev {self.noise_mev:g} MeV is not {NOISE_GAP:g}x below the readout "
                f"threshold of {self.geometry.name} ({limit:g} MeV): the flow would blur the "
                f"empty voxels' noise into deposits; give a noise well below it (e.g. "
                f"{limit / 1000:.3g} MeV)"
            )
        self.n_layers = len(self.geometry.voxel_layers)
        self.n_voxels = self.geometry.n_voxels
        self.flow1_config = {**FLOW1_DEFAULTS, **(flow1 or {})}
        self.flow2_config = {**FLOW2_DEFAULTS, **(flow2 or {})}
        if moments not in (0, 1, 2) or isinstance(moments, bool):
            raise ConfigError(
                f"moments must be 0, 1 (centres) or 2 (centres, widths), got {moments!r}"
            )
        self.moments = int(moments)
        L = self.n_layers
        n_mom = 2 * L * self.moments
        with seeded(fresh_seed() if seed is None else seed):
            self.flow1 = MAF(L + n_mom, context=1, **self.flow1_config)
            self.teacher = self._flow2()
            self.student = IAF(**self.teacher.config) if student else None
        # Preprocessing statistics (fitted by fit_preprocessing, saved with the model).
        L, V = self.n_layers, self.n_voxels
        for name, shape in (("log_e_range", (2,)), ("u0_scale", ()), ("y1_mean", (L,)),
                            ("y1_std", (L,)), ("loge_layer_mean", (L,)), ("loge_layer_std", (L,)),
                            ("y2_mean", (V,)), ("y2_std", (V,)),
                            ("moment_mean", (4 * L,)), ("moment_std", (4 * L,)),
                            ("threshold_mev", ())):  # fmt: skip
            self.register_buffer(name, torch.zeros(shape))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        owner, xy = voxel_layout(self.geometry)
        self.register_buffer("owner", owner, persistent=False)
        self.register_buffer("xy", xy, persistent=False)

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters and buffers."""
        return self.log_e_range.device

    def _flow2(self) -> MAF:
        """The flow II teacher: all V voxels, context E_inc, the L layer energies, moments."""
        n_mom = 2 * self.n_layers * self.moments
        return MAF(self.n_voxels, context=1 + self.n_layers + n_mom, **self.flow2_config)

    @property
    def flow2_dims(self) -> int:
        """Dimensions of one flow II sample (the teacher's loss is reported per dimension)."""
        return self.n_voxels

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-able; the geometry as its layers)."""
        g = self.geometry
        return {
            "geometry": {"name": g.name, "particle": g.particle, "pid": g.pid,
                         "material": g.material, "threshold_mev": g.threshold_mev,
                         "layers": [vars(layer) for layer in g.layers]},
            "flow1": self.flow1_config, "flow2": self.flow2_config,
            "student": self.student is not None, "moments": self.moments,
            "noise_mev": self.noise_mev, "alpha": self.alpha, "anchor": self.anchor,
        }  # fmt: skip

    # ----------------------------------------------------------- preprocessing
    def _check(self, showers: Showers) -> None:
        if showers.geometry.n_voxels != self.n_voxels or [
            layer.shape for layer in showers.geometry.layers
        ] != [layer.shape for layer in self.geometry.layers]:
            raise InputError(
                f"the showers are in geometry {showers.geometry.name!r} "
                f"({showers.geometry.n_voxels} voxels) but the model was built for "
                f"{self.geometry.name!r} ({self.n_voxels} voxels): use a model of that geometry"
            )

    def _layer_sums(self, voxels: Tensor) -> Tensor:
        """(N, V) -> (N, L) per-layer sums."""
        return layer_sums(voxels, self.owner, self.n_layers)

    def tensors(
        self, showers: Showers, device: str | torch.device | None = None
    ) -> tuple[Tensor, Tensor]:
        """Voxels (N, V) and incident energies (N,) as float32 tensors (MeV), checked.

        Args:
            showers: N showers in the model's geometry.
            device: where the tensors go (default: the model's device).
        """
        self._check(showers)
        dev = self.device if device is None else torch.device(device)
        return (torch.as_tensor(showers.voxels, dtype=torch.float32, device=dev),
                torch.as_tensor(showers.energy, dtype=torch.float32, device=dev))  # fmt: skip

    def _raw(
        self, vox: Tensor, e_inc: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, ...]:
        """Noisy voxels (N, V), layer energies (N, L), incident energies (N,), in MeV."""
        vox = vox + self.noise_mev * torch.rand(vox.shape, generator=generator,
                                                device=vox.device)  # fmt: skip
        return vox, self._layer_sums(vox), e_inc

    def _energy_context(self, e_inc: Tensor) -> Tensor:
        lo, hi = self.log_e_range
        return ((torch.log10(e_inc) - lo) / (hi - lo))[:, None]

    def _u_variables(self, layers: Tensor, e_inc: Tensor) -> Tensor:
        total = layers.sum(1)
        tail = layers.flip(1).cumsum(1).flip(1)  # E_i + ... + E_L
        u = [total / (self.u0_scale * e_inc)]
        u += [layers[:, i] / tail[:, i] for i in range(self.n_layers - 1)]
        return torch.stack(u, 1).clamp(0, 1)

    def _layers_from_u(self, u: Tensor, e_inc: Tensor) -> Tensor:
        u = u.clamp(0, 1)
        remaining = u[:, 0] * self.u0_scale * e_inc
        layers = []
        for i in range(1, self.n_layers):
            layers.append(u[:, i] * remaining)
            remaining = remaining - layers[-1]
        layers.append(remaining)
        return torch.stack(layers, 1)

    def _lateral_moments(self, vox: Tensor, layers: Tensor) -> Tensor:
        """(N, V) voxels and (N, L) layer energies -> (N, 4L) lateral moments in mm:
        the centres (x_1, y_1, x_2, ..., y_L), then the widths in the same order."""
        return lateral_moments(vox, layers, self.owner, self.xy)

    def _moment_variables(self, clean: Tensor, generator: torch.Generator | None) -> Tensor:
        """Standardised, dequantised lateral moments (N, 2L * moments) of (N, V) clean voxels.

        The moments are those of the voxels *before* the training noise: 1 keV
        in each of a few hundred voxels spread over the whole layer would
        dominate the width of a layer with a few MeV.
        """
        k = 2 * self.n_layers * self.moments
        m = self._lateral_moments(clean, self._layer_sums(clean))
        m = (m - self.moment_mean) / self.moment_std
        m = m[:, :k]
        return m + MOMENT_NOISE * torch.randn(m.shape, generator=generator, device=m.device)

    def _layer_context(self, layers: Tensor) -> Tensor:
        loge = torch.log10(layers + NOISE_MEV)
        return (loge - self.loge_layer_mean) / self.loge_layer_std

    def _layer_max(self, per_voxel: Tensor) -> Tensor:
        """(V,) values -> (V,) the largest value of each voxel's layer."""
        top = per_voxel.new_full((self.n_layers,), -math.inf)
        return top.scatter_reduce(0, self.owner, per_voxel, "amax")[self.owner]

    def voxel_logits(self, vox: Tensor, layer_mev: Tensor) -> Tensor:
        """Unstandardised flow II variables of voxels: (..., D) noisy energies in layers of
        (..., 1) energies (MeV) -> (..., D) logit fractions, or if :attr:`anchor`
        ``log(E_voxel / noise)`` (floored at :data:`ANCHOR_FLOOR` noise)."""
        if self.anchor:
            return torch.log(vox.clamp_min(ANCHOR_FLOOR * self.noise_mev) / self.noise_mev)
        return _logit(vox / layer_mev.clamp_min(NOISE_MEV), self.alpha)

    def voxel_fractions(self, y: Tensor, layer_mev: Tensor) -> Tensor:
        """Inverse of :meth:`voxel_logits`: (..., D) variables, (..., 1) layer energies (MeV)
        -> (..., D) voxel fractions of the layer energy, >= 0 (not yet normalised)."""
        if self.anchor:  # exp(80) is far above any shower, far below float32's limit
            return self.noise_mev * torch.exp(y.clamp_max(80.0)) / layer_mev.clamp_min(NOISE_MEV)
        return _expit(y, self.alpha).clamp_min(0)

    def fit_preprocessing(self, showers: Showers, seed: int = 0) -> None:
        """Fit the standardisation constants on the training showers (once, before training).

        Runs on the model's device (with the noise drawn there): the training
        showers, with copies, must fit into its memory.

        Args:
            showers: training showers.
            seed: seed of the noise draws.
        """
        g = generator_on(self.device, seed)
        clean, e_inc = self.tensors(showers)
        vox, layers, e_inc = self._raw(clean, e_inc, g)
        with torch.no_grad():
            loge = torch.log10(e_inc)
            span = max((loge.max() - loge.min()).item(), 1e-3)
            self.log_e_range.copy_(torch.stack([loge.min(), loge.min() + span]))
            ratio = (layers.sum(1) / e_inc).max().item()
            self.u0_scale.fill_(max(1.0, 1.05 * ratio))
            y1 = _logit(self._u_variables(layers, e_inc))
            self.y1_mean.copy_(y1.mean(0))
            self.y1_std.copy_(y1.std(0).clamp_min(1e-3))
            loge_l = torch.log10(layers + NOISE_MEV)
            self.loge_layer_mean.copy_(loge_l.mean(0))
            self.loge_layer_std.copy_(loge_l.std(0).clamp_min(1e-3))
            y2 = self.voxel_logits(vox, layers[:, self.owner])
            if self.anchor:  # each layer's range onto [-ANCHOR_SPAN, ANCHOR_SPAN]
                lo, hi = math.log(ANCHOR_FLOOR), self._layer_max(y2.amax(0)) + ANCHOR_MARGIN
                self.y2_mean.copy_((hi + lo) / 2)
                self.y2_std.copy_(((hi - lo) / (2 * ANCHOR_SPAN)).clamp_min(1e-3))
            else:
                self.y2_mean.copy_(y2.mean(0))
                self.y2_std.copy_(y2.std(0).clamp_min(1e-3))
            moments = self._lateral_moments(clean, self._layer_sums(clean))
            self.moment_mean.copy_(moments.mean(0))
            self.moment_std.copy_(moments.std(0).clamp_min(1e-3))
            fitted = readout_threshold(clean, self.noise_mev)
            self.threshold_mev.fill_(max(self.geometry.threshold_mev, fitted))
            self.fitted.fill_(True)

    def _require_fitted(self) -> None:
        if not bool(self.fitted):
            raise ConfigError(
                "the preprocessing is not fitted: call fit_preprocessing(showers) (the "
                "trainer does) or load a trained model"
            )

    def flow1_data(
        self, vox: Tensor, e_inc: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Flow I training pairs (fresh noise on every call).

        Args:
            vox: (N, V) voxel energies, MeV (see :meth:`tensors`).
            e_inc: (N,) incident energies, MeV.
            generator: for the noise.

        Returns:
            ``(y, c)``: (N, L) standardised logit u-variables, followed by the
            (N, 2L * moments) standardised lateral moments, and the (N, 1)
            energy context.
        """
        self._require_fitted()
        _, layers, e_inc = self._raw(vox, e_inc, generator)
        y = (_logit(self._u_variables(layers, e_inc)) - self.y1_mean) / self.y1_std
        if self.moments:
            y = torch.cat([y, self._moment_variables(vox, generator)], 1)
        return y, self._energy_context(e_inc)

    def flow2_data(
        self, vox: Tensor, e_inc: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Flow II training pairs (fresh noise on every call); arguments as :meth:`flow1_data`.

        Returns:
            ``(y, c)``: (N, V) standardised logit voxel fractions and (N, 1 + L
            + 2L * moments) context (energy, standardised log10 layer energies
            and the standardised lateral moments).
        """
        self._require_fitted()
        clean = vox
        vox, layers, e_inc = self._raw(vox, e_inc, generator)
        y = (self.voxel_logits(vox, layers[:, self.owner]) - self.y2_mean) / self.y2_std
        c = [self._energy_context(e_inc), self._layer_context(layers)]
        if self.moments:
            c.append(self._moment_variables(clean, generator))
        return y, torch.cat(c, 1)

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        energies_mev: np.ndarray | Tensor,
        model: str = "teacher",
        batch_size: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        device: str | torch.device | None = None,
    ) -> Showers:
        """Generate showers, in batches on the model's device; the result is on the CPU.

        Args:
            energies_mev: (N,) incident energies in MeV.
            model: ``"teacher"`` (MAF flow II, V passes per block) or
                ``"student"`` (IAF, one pass).
            batch_size: showers per flow pass (default: :data:`BATCH` of the model,
                chosen for CPUs: on a GPU larger batches are faster).
            generator: for reproducible draws; on the device the flows run on
                (:func:`hepflows.device.generator_on`).
            progress: show a progress bar (per batch).
            device: ``"cpu"``, ``"cuda"``, ``"mps"``...: move the model there
                first (in place, like ``.to(device)``); ``None``: where it is.

        Returns:
            N showers in the model's geometry: (N,) energies and (N, V) voxels as
            float64 numpy arrays.
        """
        self._require_fitted()
        if device is not None:
            self.to(resolve_device(device))
        dev = self.device
        if generator is not None and generator.device.type != dev.type:
            raise ConfigError(
                f"the generator is on {generator.device} but the model samples on {dev}: "
                "make it with hepflows.device.generator_on(device, seed)"
            )
        if model not in ("teacher", "student"):
            raise ConfigError(f"model must be 'teacher' or 'student', got {model!r}")
        if model == "student" and self.student is None:
            raise ConfigError("this model has no student: build it with student=True and distill")
        if batch_size is None:
            batch_size = BATCH[model]
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        flow2 = self.teacher if model == "teacher" else self.student
        e = torch.as_tensor(np.asarray(energies_mev, np.float64).reshape(-1), dtype=torch.float32,
                            device="cpu")  # fmt: skip
        if len(e) == 0 or not torch.isfinite(e).all() or (e <= 0).any():
            raise InputError("incident energies must be finite and > 0 (MeV), and at least one")
        lo, hi = (10**v for v in self.log_e_range.tolist())
        if (e < 0.5 * lo).any() or (e > 2 * hi).any():
            raise InputError(
                f"incident energies outside the training range {lo:.4g}-{hi:.4g} MeV (with a "
                "factor 2 margin): the flows would extrapolate; train on that range"
            )
        self.eval()
        out = []
        bar_ = progress_bar(len(e), f"sampling ({model})", enabled=progress)
        with bar_ as bar:
            for start in range(0, len(e), batch_size):
                eb = e[start : start + batch_size].to(dev)
                out.append(self._sample_batch(eb, flow2, generator).to("cpu", torch.float64))
                bar.advance(len(out[-1]))
        return Showers(e.to(torch.float64).numpy(), torch.cat(out).numpy(), self.geometry)

    def sample_to_file(
        self,
        path: str | os.PathLike,
        energies_mev: np.ndarray,
        model: str = "teacher",
        seed: int = 0,
        chunk_size: int = 5000,
        batch_size: int | None = None,
        progress: bool = True,
        resume: bool = True,
    ) -> Path:
        """Generate showers into a CaloChallenge HDF5 file, chunk by chunk (resumable).

        Memory stays at one chunk of ``chunk_size x V`` values whatever the number
        of showers (dataset 3: 40 500 voxels each). Chunk k draws from its own
        generator, seeded by ``SeedSequence(seed, spawn_key=(k,))`` on the model's
        device, so the file depends only on (model, energies, seed, chunk_size):
        a run that is cut off resumes after its last complete chunk
        (:class:`~hepflows.calo.showerstream.ShowerWriter`) with the same result.

        Args:
            path: the file to write (replaced atomically when complete).
            energies_mev: (N,) incident energies, MeV.
            model: ``"teacher"`` or ``"student"``.
            seed: seed of the chunks' generators (>= 0).
            chunk_size: showers per chunk (written, then committed).
            batch_size: showers per flow pass (default: :data:`BATCH` of the model).
            progress: show a progress bar.
            resume: continue an unfinished file of the same settings.

        Returns:
            ``path``.
        """
        from hepflows.calo.showerstream import ShowerWriter

        e = np.asarray(energies_mev, np.float64).reshape(-1)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InputError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {seed!r}")
        digest = hashlib.sha256(e.tobytes()).hexdigest()[:16]
        attrs = {"generator": f"{type(self).__name__} {model}", "seed": seed,
                 "chunk_size": chunk_size, "n_showers": len(e), "energies_sha256": digest}
        with ShowerWriter(path, self.geometry, resume=resume, attrs=attrs) as out, \
                progress_bar(len(e), f"{model} showers -> {Path(path).name}",
                             enabled=progress) as bar:  # fmt: skip
            bar.advance(out.n_done)
            for chunk in self.sample_chunks(e, model, seed, chunk_size, batch_size,
                                            start=out.n_done):  # fmt: skip
                out.append(chunk)
                bar.advance(len(chunk))
            return out.finish()

    def sample_chunks(
        self,
        energies_mev: np.ndarray,
        model: str = "teacher",
        seed: int = 0,
        chunk_size: int = 5000,
        batch_size: int | None = None,
        start: int = 0,
    ) -> Iterator[Showers]:
        """The showers of :meth:`sample_to_file` from shower ``start`` (a chunk boundary) on,
        one chunk at a time: chunk k from a generator seeded by ``SeedSequence(seed, (k,))``.

        Args:
            energies_mev: (N,) incident energies, MeV.
            model, seed, chunk_size, batch_size: as :meth:`sample_to_file`.
            start: first shower (a multiple of ``chunk_size``).

        Yields:
            :class:`Showers` of ``chunk_size`` showers (the last may be shorter).
        """
        from hepflows.calo.showerstream import chunk_streams

        e = np.asarray(energies_mev, np.float64).reshape(-1)
        for lo, hi, seq in chunk_streams(len(e), chunk_size, seed, start):
            key = seq.generate_state(1, np.uint64)
            g = generator_on(self.device, int(key[0] >> np.uint64(2)))
            yield self.sample(e[lo:hi], model=model, batch_size=batch_size, generator=g)

    def _sample_batch(
        self, eb: Tensor, flow2: nn.Module, generator: torch.Generator | None
    ) -> Tensor:
        """(B,) incident energies -> (B, V) voxels (MeV), on the model's device."""
        c1 = self._energy_context(eb)
        y1 = self.flow1.sample(len(eb), c1, generator=generator)
        L = self.n_layers
        u = _expit(y1[:, :L] * self.y1_std + self.y1_mean)
        layers = self._layers_from_u(u, eb).clamp_min(0)
        c2 = torch.cat([c1, self._layer_context(layers), y1[:, L:]], 1)
        y2 = flow2.sample(len(eb), c2, generator=generator)
        frac = self.voxel_fractions(y2 * self.y2_std + self.y2_mean, layers[:, self.owner])
        frac = frac / self._layer_sums(frac)[:, self.owner].clamp_min(1e-12)
        vox = frac * layers[:, self.owner]
        return torch.where(vox < self.threshold_mev, torch.zeros_like(vox), vox)

    # ------------------------------------------------------------- save / load
    @classmethod
    def _from_config(cls, geometry: Geometry, config: dict[str, Any]) -> CaloFlow:
        """A fresh model of a saved configuration (:attr:`config`)."""
        # models saved before moments have none
        return cls(geometry, config["flow1"], config["flow2"], config["student"],
                   config.get("moments", 0), **_noise_config(config))  # fmt: skip

    def save(
        self,
        path: str | os.PathLike,
        extra: dict[str, Any] | None = None,
        tensors: dict[str, Tensor] | None = None,
    ) -> None:
        """Save weights, preprocessing and configuration (safetensors, atomic).

        Args:
            path: destination (``*.safetensors``).
            extra: JSON-able training state stored with the model (epochs done...).
            tensors: more tensors to store (optimiser state, keys starting ``opt.``).

        Tensors on another device are copied to the CPU, so the file loads anywhere.
        """
        tensors = {k: v.detach().to("cpu").contiguous()
                   for k, v in (self.state_dict() | (tensors or {})).items()}  # fmt: skip
        meta = {"format": self.format, "hepflows_version": hepflows.__version__,
                "config": json.dumps(self.config), "extra": json.dumps(extra or {})}  # fmt: skip
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))

    @classmethod
    def load(
        cls, path: str | os.PathLike, device: str | torch.device | None = None
    ) -> tuple[CaloFlow, dict[str, Any]]:
        """Rebuild a saved model.

        Args:
            path: a file written by :meth:`save`.
            device: where the model goes (default: the CPU); checked first
                (:func:`hepflows.device.resolve_device`).

        Returns:
            ``(model, extra)``: the model in evaluation mode and the stored training state.
        """
        dev = resolve_device(device)
        meta = read_metadata(path, cls.format, cls.label, "train it again with "
                             "hepflows calo train")  # fmt: skip
        try:
            config = json.loads(meta["config"])
            g = config["geometry"]
            layers = [dict(layer) for layer in g["layers"]]
            geometry = Geometry(
                tuple(Layer(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in layer.items()}) for layer in layers),
                g["particle"], g["pid"], g["name"], g.get("material"),
                g.get("threshold_mev", 0.0),  # models saved before readout thresholds: none
            )  # fmt: skip
            model = cls._from_config(geometry, config)
            state = load_file(str(path))
            for name in ("moment_mean", "moment_std"):  # models saved before moments
                state.setdefault(name, getattr(model, name))
            skip = ("opt.", "best.", "engine.")  # training state of a checkpoint
            model.load_state_dict({k: v for k, v in state.items() if not k.startswith(skip)})
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{path}: cannot rebuild the {cls.label} ({err}); retrain it"
            ) from None
        return model.to(dev).eval(), json.loads(meta.get("extra", "{}"))
