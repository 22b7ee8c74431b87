"""L2LFlows (Diefenbacher et al. 2023, arXiv:2302.11594): showers layer by layer.

A flow over all V voxels at once (CaloFlow's flow II) does not scale to the
granular CaloChallenge geometries (6 480 and 40 500 voxels): a MAF needs V
sequential passes to sample, and its networks grow with V. L2LFlows split the
shower into its layers:

* **energy flow**: CaloFlow's flow I, p(E_1..E_L [, M_1..M_L] | E_inc) through
  the u-variables (and the lateral moments M_l, see :mod:`hepflows.calo.caloflow`);
* **layer flow**: one conditional flow p(x_l | E_inc, E_l, E_{l-1}, l, x_{l-1}
  [, M_l]) for the D voxels of layer l (as fractions of E_l, logit-transformed
  and standardised per voxel, as in CaloFlow), conditioned on the previous
  layer's voxels x_{l-1} (zeros for the first layer) and the one-hot layer index.

**Weights are shared across layers**: one layer flow with the layer index as
context, trained on every layer of every shower, instead of L flows each
seeing 1/L of the data (the paper trains one flow per layer; with 45 layers
and a few 10^4 showers on 2 CPU cores, sharing is what fits). This needs every
voxelised layer to have the same shape, as in CaloChallenge datasets 2 and 3.

The layer flow is a MAF (the "teacher": exact density, D passes per layer to
sample); the IAF "student" distilled from it (iCaloFlow's recipe, Buckley et
al. arXiv:2305.11934, per layer) samples a layer in one pass. Training,
checkpoints and devices are CaloFlow's (:func:`hepflows.calo.training.train`,
the same three stages: energy flow, teacher, student).

At sampling the layers are generated in order; each layer's flow output (its
standardised logit fractions) is the next layer's context, as the previous
layer's training voxels were.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from hepflows.calo.caloflow import CaloFlow, _expit, _noise_config
from hepflows.calo.geometry import Geometry
from hepflows.errors import ConfigError
from hepflows.flows import MAF
from hepflows.flows.conv import ConvCouplingFlow

#: Default layer-flow sizes (2 CPU cores; D = 144 voxels per layer on dataset 2): the MAF
#: (hidden: MADE widths) and the convolutional coupling flow (hidden: channels per convolution).
#: Chosen for sampling speed: on one core, 1000 dataset-2 showers from the IAF student took
#: 17 s with 4 x [256] and 5.6 s with 2 x [128]; the convolutional flow 27 s with 4 x [16, 16]
#: and 10 s with 2 x [16, 16] (untrained weights; the cost does not depend on their values).
#: The MAF's spline bound stays the flows' 5. A bound of 10 (``flow2={"bound": 10}``) won
#: on 4k ds2 toy electrons (l2l, epochs 10,3,1: FPD 198 -> 152, KPD 2.2 -> 1.2;
#: benchmarks/results/calo_granular_bound10.json), but the 32k, 10-epoch run with bound 10
#: read FPD 211 (student 175; calo_granular_32k_bound10.json), worse than the 16k bound-5
#: run's 120 (docs/calo_granular.md).
#: The spline bound of layer flows saved before it was written into their config.
LEGACY_BOUND = 5.0
#: The bound is in the defaults so that a new model's config equals a loaded one's.
LAYER_DEFAULTS: dict[str, Any] = dict(transforms=2, bins=8, hidden=[128], bound=5.0)
CONV_DEFAULTS: dict[str, Any] = dict(transforms=2, bins=8, hidden=[16, 16], bound=5.0)
#: Voxel training noise (MeV) and logit regulator of the layer flows: 15 eV, 1000x below
#: ds2's 15.15 keV threshold (CaloFlow's 1 keV leaves only 15x). Measured on 4k ds2 toy
#: electrons, all three models: FPD 588-726 -> 198-265, KPD 41-73 -> 2.2-4.1
#: (benchmarks/results/calo_granular_noise15ev.json against calo_granular_threshold.json).
LAYER_NOISE_MEV = 1.5e-5
LAYER_ALPHA = 1e-7
#: The layer flows: ``"maf"`` (L2LFlows; IAF student possible) and ``"conv"`` (convolutional
#: L2LFlows: checkerboard couplings with convolutional conditioners, one pass both ways).
LAYER_FLOWS = ("maf", "conv")


def layer_shape(geometry: Geometry) -> tuple[int, int]:
    """The common (rows, columns) shape of the voxelised layers (polar: (n_alpha, n_r)).

    Raises:
        ConfigError: layers of different shapes (one shared layer flow cannot
            serve them).
    """
    shapes = {geometry.layers[i].shape for i in geometry.voxel_layers}
    if len(shapes) != 1:
        raise ConfigError(
            f"geometry {geometry.name!r} has voxelised layers of shapes {sorted(shapes)}: a "
            "layer-to-layer flow shares one flow across layers, which needs one shape (as "
            "CaloChallenge datasets 2 and 3); use CaloFlow for this geometry"
        )
    return shapes.pop()


class L2LFlow(CaloFlow):
    """Layer-to-layer flow: CaloFlow's energy flow and one shared conditional layer flow.

    Args:
        geometry: the calorimeter; all voxelised layers of one shape.
        flow1: energy flow (:class:`~hepflows.flows.MAF`) settings; defaults
            :data:`~hepflows.calo.caloflow.FLOW1_DEFAULTS`.
        flow2: layer flow settings (teacher MAF, student IAF); defaults
            :data:`LAYER_DEFAULTS`.
        student: also build the IAF student of the layer flow (MAF layer flow only).
        moments: lateral moments per layer modelled by the energy flow and given
            to the layer flow of that layer (0, 1 centres, 2 centres and widths).
            Default 0: the previous layer already tells the layer flow where the
            shower is, and 45 layers x 4 moments would make the energy flow 225-D
            (its MAF samples one dimension per pass).
        seed: seed of the weight initialisation (``None``: a fresh one).
        layer_flow: ``"maf"`` or ``"conv"`` (:data:`LAYER_FLOWS`); ``"conv"`` is the
            convolutional L2LFlow: :class:`~hepflows.flows.conv.ConvCouplingFlow`
            over the layer's (angle x radius) grid, periodic in angle, with the
            previous layer as a second input grid of every conditioner.
        noise_mev, alpha, anchor: the voxels' training noise (MeV), logit regulator and
            anchoring of the logits, as :class:`~hepflows.calo.caloflow.CaloFlow`'s;
            the defaults are :data:`LAYER_NOISE_MEV` and :data:`LAYER_ALPHA`, not
            CaloFlow's (1 keV, 1e-6).
    """

    format = "hepflows-l2lflow"
    label = "L2LFlow model"

    def __init__(
        self,
        geometry: str | os.PathLike | Geometry = "calochallenge-ds2",
        flow1: dict[str, Any] | None = None,
        flow2: dict[str, Any] | None = None,
        student: bool = True,
        moments: int = 0,
        seed: int | None = None,
        layer_flow: str = "maf",
        noise_mev: float = LAYER_NOISE_MEV,
        alpha: float = LAYER_ALPHA,
        anchor: bool = False,
    ) -> None:
        if layer_flow not in LAYER_FLOWS:
            raise ConfigError(f"layer_flow must be one of {LAYER_FLOWS}, got {layer_flow!r}")
        if layer_flow == "conv" and student:
            raise ConfigError("a convolutional layer flow samples in one pass and has no "
                              "student: build it with student=False (CLI: --epochs-student 0)")
        geometry = Geometry.resolve(geometry)
        self.layer_grid = layer_shape(geometry)  # read by _flow2, called by CaloFlow.__init__
        self.layer_voxels = self.layer_grid[0] * self.layer_grid[1]
        self.layer_flow = layer_flow
        defaults = CONV_DEFAULTS if layer_flow == "conv" else LAYER_DEFAULTS
        super().__init__(geometry, flow1, {**defaults, **(flow2 or {})}, student=student,
                         moments=moments, seed=seed, noise_mev=noise_mev, alpha=alpha,
                         anchor=anchor)  # fmt: skip
        self.register_buffer("layer_onehot", torch.eye(self.n_layers), persistent=False)

    def _flow2(self) -> MAF | ConvCouplingFlow:
        """The layer flow: D voxels, context :attr:`layer_context_size` (the previous
        layer last: the convolutional flow reads it as a grid)."""
        if self.layer_flow == "conv":
            return ConvCouplingFlow(self.layer_voxels, context=self.layer_context_size,
                                    grid=self.layer_grid, grid_context=1,
                                    **self.flow2_config)  # fmt: skip
        return MAF(self.layer_voxels, context=self.layer_context_size, **self.flow2_config)

    @property
    def layer_context_size(self) -> int:
        """Context of the layer flow: E_inc, log E_l, log E_(l-1), one-hot l (L), this
        layer's 2 * moments lateral moments and the previous layer's D voxels (last)."""
        return 3 + self.n_layers + self.layer_voxels + 2 * self.moments

    @property
    def flow2_dims(self) -> int:
        """Dimensions of one layer-flow sample: the voxels of one layer."""
        return self.layer_voxels

    @property
    def config(self) -> dict[str, Any]:
        return {**super().config, "model": "l2lflow", "layer_flow": self.layer_flow}

    @classmethod
    def _from_config(cls, geometry: Geometry, config: dict[str, Any]) -> CaloFlow:
        flow2 = {"bound": LEGACY_BOUND, **config["flow2"]}  # files from before the setting
        return cls(geometry, config["flow1"], flow2, config["student"],
                   config["moments"], layer_flow=config["layer_flow"],
                   **_noise_config(config))  # fmt: skip

    # ------------------------------------------------------------ layer data
    def _layer_moments(self, m: Tensor) -> Tensor:
        """(N, 2L * moments) standardised moments (flow I's order) -> (N, L, 2 * moments):
        per layer its centre (x, y) [and width (x, y)]."""
        L = self.n_layers
        parts = [m[:, 2 * L * k : 2 * L * (k + 1)].reshape(len(m), L, 2)
                 for k in range(self.moments)]  # fmt: skip
        return torch.cat(parts, 2) if parts else m.new_zeros(len(m), L, 0)

    def _context(self, e_ctx: Tensor, loge: Tensor, layer: int | slice, prev: Tensor,
                 loge_prev: Tensor, mom: Tensor) -> Tensor:  # fmt: skip
        """Layer-flow context rows: e_ctx (N, 1), loge/loge_prev (N, k), prev (N, k, D),
        mom (N, k, 2 * moments) for the layers ``layer`` (k of them) -> (N * k, C)."""
        n, k = prev.shape[0], prev.shape[1]
        onehot = self.layer_onehot[layer].reshape(1, k, -1).expand(n, k, -1)
        parts = [e_ctx[:, None, :].expand(n, k, 1), loge[:, :, None], loge_prev[:, :, None],
                 onehot, mom, prev]  # fmt: skip
        return torch.cat(parts, 2).reshape(n * k, -1)

    def flow2_data(
        self, vox: Tensor, e_inc: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Layer-flow training pairs, every layer of every shower (fresh noise on every call).

        Args:
            vox: (N, V) voxel energies, MeV.
            e_inc: (N,) incident energies, MeV.
            generator: for the noise.

        Returns:
            ``(y, c)``: (N * L, D) standardised logit voxel fractions of each layer
            (shower-major) and their (N * L, C) contexts (:attr:`layer_context_size`).
        """
        self._require_fitted()
        clean = vox
        vox, layers, e_inc = self._raw(vox, e_inc, generator)
        n, L, D = len(vox), self.n_layers, self.layer_voxels
        y = (self.voxel_logits(vox, layers[:, self.owner]) - self.y2_mean) / self.y2_std
        y = y.reshape(n, L, D)
        loge = self._layer_context(layers)  # (N, L)
        prev = torch.cat([y.new_zeros(n, 1, D), y[:, :-1]], 1)
        loge_prev = torch.cat([loge.new_zeros(n, 1), loge[:, :-1]], 1)
        mom = self._layer_moments(self._moment_variables(clean, generator)) if self.moments \
            else y.new_zeros(n, L, 0)  # fmt: skip
        c = self._context(self._energy_context(e_inc), loge, slice(None), prev, loge_prev, mom)
        return y.reshape(n * L, D), c

    def _sample_batch(
        self, eb: Tensor, flow2: torch.nn.Module, generator: torch.Generator | None
    ) -> Tensor:
        """(B,) incident energies -> (B, V) voxels (MeV): the energy flow, then the layers
        in order, each conditioned on the one before."""
        b, L, D = len(eb), self.n_layers, self.layer_voxels
        e_ctx = self._energy_context(eb)
        y1 = self.flow1.sample(b, e_ctx, generator=generator)
        u = _expit(y1[:, :L] * self.y1_std + self.y1_mean)
        layers = self._layers_from_u(u, eb).clamp_min(0)
        loge = self._layer_context(layers)
        mom = self._layer_moments(y1[:, L:])
        prev, loge_prev = eb.new_zeros(b, D), eb.new_zeros(b)
        out = []
        for i in range(L):
            c = self._context(e_ctx, loge[:, i : i + 1], slice(i, i + 1), prev[:, None],
                              loge_prev[:, None], mom[:, i : i + 1])  # fmt: skip
            y, vox = self._draw_layer(flow2, c, i, layers[:, i : i + 1], generator)
            out.append(vox)
            prev, loge_prev = y, loge[:, i]
        vox = torch.cat(out, 1)
        return torch.where(vox < self.threshold_mev, torch.zeros_like(vox), vox)

    def _draw_layer(self, flow2: torch.nn.Module, c: Tensor, layer: int, e_layer: Tensor,
                    generator: torch.Generator | None) -> tuple[Tensor, Tensor]:  # fmt: skip
        """One layer from the layer flow: (B, C) contexts and (B, 1) layer energies (MeV) ->
        the flow's (B, D) standardised output and the (B, D) voxels summing to the energy."""
        y = flow2.sample(len(c), c, generator=generator)
        d = self.layer_voxels
        mean = self.y2_mean[layer * d : (layer + 1) * d]
        std = self.y2_std[layer * d : (layer + 1) * d]
        frac = self.voxel_fractions(y * std + mean, e_layer)
        return y, frac / frac.sum(1, keepdim=True).clamp_min(1e-12) * e_layer

    @torch.no_grad()
    def sample_layer(
        self,
        layer: int,
        energies_mev: Tensor,
        layer_mev: Tensor,
        previous: Tensor | None = None,
        moments: Tensor | None = None,
        model: str = "teacher",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Generate one layer given its conditions (the step :meth:`sample` repeats).

        Args:
            layer: position among the voxelised layers (0 = front).
            energies_mev: (B,) incident energies, MeV.
            layer_mev: (B,) energy of this layer, MeV.
            previous: (B, D) voxels of the layer before, MeV (``None`` for layer 0).
            moments: (B, 2 * moments) this layer's standardised lateral moments as
                flow I gives them (``None``: zeros, the training mean).
            model: ``"teacher"`` or ``"student"``.
            generator: for reproducible draws (on the model's device).

        Returns:
            (B, D) voxel energies of the layer, MeV, on the model's device.
        """
        self._require_fitted()
        if not 0 <= layer < self.n_layers:
            raise ConfigError(f"layer must lie in [0, {self.n_layers}), got {layer}")
        if (layer == 0) != (previous is None):
            raise ConfigError("give previous voxels for every layer but the first (layer 0)")
        flow2 = {"teacher": self.teacher, "student": self.student}.get(model)
        if flow2 is None:
            raise ConfigError(f"no {model!r} layer flow: use 'teacher' or build a student")
        self.eval()
        dev, L, D = self.device, self.n_layers, self.layer_voxels
        e = torch.as_tensor(energies_mev, dtype=torch.float32, device=dev).reshape(-1)
        e_l = torch.as_tensor(layer_mev, dtype=torch.float32, device=dev).reshape(-1, 1)
        b = len(e)
        layers = e.new_zeros(b, L)  # only this layer's and the previous layer's energies
        layers[:, layer] = e_l[:, 0]
        mean, std = self.y2_mean.reshape(L, D), self.y2_std.reshape(L, D)
        prev_y, prev_loge = e.new_zeros(b, D), e.new_zeros(b)
        if previous is not None:
            p = torch.as_tensor(previous, dtype=torch.float32, device=dev).reshape(b, D)
            p_sum = p.sum(1, keepdim=True)
            layers[:, layer - 1] = p_sum[:, 0]
            prev_y = (self.voxel_logits(p, p_sum) - mean[layer - 1]) / std[layer - 1]
            prev_loge = self._layer_context(layers)[:, layer - 1]
        loge = self._layer_context(layers)[:, layer : layer + 1]
        mom = e.new_zeros(b, 1, 2 * self.moments) if moments is None else torch.as_tensor(
            moments, dtype=torch.float32, device=dev).reshape(b, 1, -1)  # fmt: skip
        c = self._context(self._energy_context(e), loge, slice(layer, layer + 1),
                          prev_y[:, None], prev_loge[:, None], mom)  # fmt: skip
        return self._draw_layer(flow2, c, layer, e_l, generator)[1]
