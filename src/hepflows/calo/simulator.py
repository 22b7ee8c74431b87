"""A fast, seeded toy calorimeter simulator that stands in for Geant4.

GFlash-like parametrised showers (Grindhammer & Peters, hep-ex/0001020, "GP" below)
written into any :class:`~hepflows.calo.geometry.Geometry` that has layer depths
in radiation lengths (``depth_x0``). Exactness is not the point: the showers are
non-trivial, have the known correlations (depth grows like ln E, width grows with
depth, resolution ~ a/sqrt(E)) and come in the real data layouts.

Per shower (all vectorised over showers and spots with numpy; Python loops only
over chunks of showers, layers and shower components):

1. **Longitudinal profile** (GP eqs. for homogeneous media): dE/dt is a Gamma
   distribution in t (radiation lengths), f(t) = (beta t)^(alpha-1) beta
   exp(-beta t) / Gamma(alpha), with (ln T, ln alpha) drawn from a correlated 2D
   normal whose means, widths and correlation depend on ln y, y = E / E_c;
   T = (alpha - 1) / beta is the depth of the maximum.
   *Electrons* start at t = 0. *Photons* first convert after an exponential depth
   of mean 9/7 X0 (the pair-production length) and the pair's shower uses the GP
   parameters at y/2 (two particles of about E/2 each): the photon profile sits
   about 0.6 X0 deeper than the electron one (Rossi's approximation B: +0.5 X0).
2. **Layer energies**: the expected fraction in layer l is the difference of the
   Gamma CDF (``scipy.special.gammainc``) at the layer's boundaries; the rest
   (behind the last layer) leaks out. Energy that falls in an empty layer (no
   voxels, e.g. CaloChallenge's zero-width layers) is lost as in dead material.
3. **Sampling fluctuations**, bounded so that E_dep <= E_inc always (energy
   conservation: CaloFlow's u = E_dep / E_inc must lie in (0, 1)):

   * the visible fraction v of the shower is Beta distributed with mean
     ``Material.sampling_fraction`` and relative width a / sqrt(E / GeV)
     (a = ``Material.sampling_resolution``);
   * the layers share the shower through a Dirichlet draw whose concentrations
     are E / a^2 (the number of independent "sampling quanta") times the
     expected fractions, so a layer with energy E_l fluctuates by about
     a / sqrt(E_l / GeV), independently of the other layers.

4. **Spots** (GFlash): N = 93 ln(Z) (E/GeV)^0.876 * ``spot_scale`` (23 000 at
   100 GeV in lead), optionally capped at ``max_spots`` per shower for speed
   (the spot energy is scaled up to match). A cap makes showers coarser than
   GFlash's: with 2000 spots at most, a voxel holds 0 or at least one ~18 MeV
   spot at 43 GeV, and the layers have half the lit voxels, with a gap in voxel
   energy between zero and one spot that real showers do not have.
   Spots are given to layers, and within a layer to sub-slices of at most 1 X0,
   *proportionally* to their energy (at least one spot per sub-slice that has
   energy). This samples the depth t of the spots from the Gamma profile on a
   1 X0 grid, which is what the radial profile needs. The visible energy of
   each spot fluctuates (sampling: the active medium sees a random share of
   it): Gamma-distributed with relative width a / sqrt(e_spot / GeV), at most
   1, for a mean spot energy e_spot, renormalised so that the sub-slice keeps
   its energy (the layer energies keep the fluctuations of step 3). Without it
   (``spot_fluctuations=False``, GFlash's equal-energy spots) every voxel holds
   a whole multiple of one spot energy, about 0.85 E / 2000 under a 2000-spot
   cap: a lattice in voxel / E_inc, shared by all showers, that no
   Geant4 shower has and that a voxel classifier learns to spot.
5. **Radial profile** (GP, in Moliere radii, tau = t / T):
   f(r) = p f_C(r) + (1 - p) f_T(r), f_X(r) = 2 r R_X^2 / (r^2 + R_X^2)^2,
   sampled by inverse CDF r = R_X sqrt(u / (1 - u)) with a uniform azimuth,
   around the shower axis at the impact point, (0, 0) plus a Gaussian jitter of
   ``impact_jitter_mm`` per coordinate. Spots outside a layer's voxels go to the
   layer's ``overflow``.

*Pions* (hadron-like): a minimum-ionising track (``Material.mip_mev_per_x0``)
until the first interaction at an exponential depth of mean
``Material.interaction_length_x0``; there the shower splits into an EM part
(fraction f_em: Beta with mean 1 - (E / 1 GeV)^(0.82 - 1), Gabriel et al. /
Wigmans, event-by-event fluctuating) with the EM profiles above, and a hadronic
part whose Gamma profile is measured in interaction lengths (maximum at
0.2 ln(E/GeV) + 0.7 lambda, PDG), which is radially wide (f_X with R =
``Material.hadronic_radius_mm``) and of which only a fluctuating fraction
h/e (Beta around ``Material.h_over_e`` with relative width
``hadronic_resolution / sqrt(E/GeV)``) is visible: invisible energy (nuclear
binding), leakage through the back and fluctuating f_em make pions longer, wider
and far more fluctuating than photons.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hepflows.calo.geometry import Geometry
from hepflows.calo.showers import Showers
from hepflows.errors import ConfigError, InputError, ShapeError
from hepflows.extras import require
from hepflows.progress import progress_bar

PARTICLES = ("photon", "electron", "pion")
DISTRIBUTIONS = ("uniform", "log-uniform")

#: GP's fits hold for y = E / E_c >~ 100; below exp(3) ~ 20 (150 MeV in lead) the
#: parameters are frozen at ln y = 3, where sigma(ln T) is already ~0.4.
LN_Y_MIN = 3.0
#: alpha is clipped from below: near alpha = 1 the mean depth T alpha / (alpha - 1)
#: diverges. At >= 2 GeV the clip touches < 0.5 % of the showers.
ALPHA_MIN = 1.5
#: Mean photon conversion depth, 9/7 X0 (PDG, pair-production mean free path).
CONVERSION_X0 = 9.0 / 7.0
#: Width of the depth sub-slices on which spot depths are sampled (X0).
SUB_SLICE_X0 = 1.0
#: Most showers per chunk, and most spots per chunk: bounds the memory of the spot
#: arrays (a few hundred MB at 4e6 spots; 100 GeV photons come 170 to a chunk).
CHUNK = 1000
SPOTS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class Material:
    """The calorimeter medium seen by the toy simulator (defaults: ATLAS-like Pb/LAr).

    Attributes:
        Z: atomic number entering the GP parametrisation (lead: 82).
        critical_energy_mev: critical energy E_c in MeV (lead 7.4; a Pb/LAr mix is
            nearer 10 MeV): sets y = E / E_c and thus the shower depth.
        moliere_radius_mm: Moliere radius R_M in mm, the unit of GP's radial profile.
            25 mm: between pure lead (16 mm) and the Pb/LAr mix (more: CaloGAN's
            layers have ~20 mm per X0, 480 mm for 23.5 X0). GP's profile puts ~90 %
            of the energy inside R_M, so with 25 mm the core spreads over a few
            5 mm strips of the first layer while the central 2x2 cells of 40 mm of
            the middle layer hold most of the energy, as in CaloGAN images.
        sampling_resolution: stochastic term a of sigma/E = a / sqrt(E/GeV) (LAr-like 0.10).
        sampling_fraction: mean visible fraction of the energy (before leakage).
            0.85 leaves room for the a / sqrt(E) fluctuation at 1 GeV below E_inc
            (E_dep <= E_inc holds by construction; with a mean closer to 1 the
            distribution would pile up at the edge).
        interaction_length_x0: nuclear interaction length lambda_I in X0 (pions).
            20: CaloGAN's 23.5 X0 are then ~1.2 lambda, like the ATLAS EM calorimeter.
        h_over_e: mean visible fraction of the hadronic part relative to the EM part
            (non-compensation, e/h ~ 1.4 for Pb/LAr).
        hadronic_resolution: relative width of the hadronic visible fraction at
            1 GeV, scaled by 1 / sqrt(E/GeV).
        hadronic_radius_mm: R of the f_X radial profile of the hadronic part (mm);
            80 mm = 0.2 lambda_I, so that ~95 % is within 1 lambda_I.
        mip_mev_per_x0: ionisation loss of a minimum-ionising pion per X0
            (lead: 1.12 MeV cm^2/g x 6.37 g/cm^2 = 7.2 MeV).
    """

    Z: float = 82.0
    critical_energy_mev: float = 7.4
    moliere_radius_mm: float = 25.0
    sampling_resolution: float = 0.10
    sampling_fraction: float = 0.85
    interaction_length_x0: float = 20.0
    h_over_e: float = 0.7
    hadronic_resolution: float = 0.3
    hadronic_radius_mm: float = 80.0
    mip_mev_per_x0: float = 7.2

    def __post_init__(self) -> None:
        positive = (
            "Z", "critical_energy_mev", "moliere_radius_mm", "sampling_resolution",
            "interaction_length_x0", "hadronic_resolution", "hadronic_radius_mm",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f"Material.{name} must be a finite number > 0, got {value}")
        if not self.Z > 1:
            raise ConfigError(f"Material.Z must be > 1 (ln Z sets the spot count), got {self.Z}")
        for name in ("sampling_fraction", "h_over_e"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ConfigError(
                    f"Material.{name} must lie in (0, 1) so that E_dep <= E_inc, got {value}"
                )
        if not (np.isfinite(self.mip_mev_per_x0) and self.mip_mev_per_x0 >= 0):
            raise ConfigError(f"Material.mip_mev_per_x0 must be >= 0, got {self.mip_mev_per_x0}")


#: Media of the toy simulator by name; a geometry's XML may name one (``<Bin material=...>``).
MATERIALS: dict[str, Material] = {
    # ATLAS-like lead / liquid argon (the class defaults): CaloGAN, CaloChallenge ds1.
    "lead-argon": Material(),
    # Silicon-tungsten (CaloChallenge ds2/ds3, ILD-like ECAL): tungsten's critical energy
    # 7.97 MeV and Moliere radius 9.33 mm (PDG), a CALICE-like stochastic term 0.17,
    # lambda_I / X0 = 99 mm / 3.5 mm = 28, a MIP loses 1.145 MeV cm^2/g x 19.3 g/cm^3 x
    # 0.35 cm = 7.7 MeV per X0.
    "tungsten-silicon": Material(Z=74.0, critical_energy_mev=7.97, moliere_radius_mm=9.33,
                                 sampling_resolution=0.17, interaction_length_x0=28.0,
                                 mip_mev_per_x0=7.7),  # fmt: skip
}


class _Component(NamedTuple):
    """One part of a shower with its own Gamma profile, per shower (all (n,))."""

    kind: str  # "em" or "had"
    start: np.ndarray  # depth where the profile starts (X0)
    alpha: np.ndarray  # Gamma shape
    beta: np.ndarray  # Gamma rate (1/X0)
    tmax: np.ndarray  # T = (alpha - 1) / beta (X0), for tau = t / T
    weight: np.ndarray  # expected visible fraction of the shower energy
    e_gev: np.ndarray  # energy entering GP's radial parameters (GeV)


def _beta_mean_rel(
    rng: np.random.Generator, mean: np.ndarray, rel: np.ndarray, kappa_min: float = 2.0
) -> np.ndarray:
    """Beta draws with the given mean and relative standard deviation (both (n,)).

    Beta(mean k, (1 - mean) k) has variance mean (1 - mean) / (k + 1); k is clipped at
    ``kappa_min`` where the requested width is impossible for a variable in (0, 1).
    """
    kappa = (1 - mean) / (mean * rel**2) - 1
    kappa = np.maximum(kappa, kappa_min)
    return rng.beta(mean * kappa, (1 - mean) * kappa)


def _gamma_cdf(comp: _Component, t: np.ndarray) -> np.ndarray:
    """CDF of a component's longitudinal profile at depths t.

    Args:
        comp: a component of n showers.
        t: (K,) depths in X0.

    Returns:
        (n, K) fraction of the component's energy deposited before each depth.
    """
    x = comp.beta[:, None] * np.maximum(t[None, :] - comp.start[:, None], 0.0)
    special = require("scipy.special", "calo", "The toy shower simulator")
    return special.gammainc(comp.alpha[:, None], x)


def em_longitudinal(
    y: np.ndarray, z: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw GP's per-shower longitudinal parameters (hep-ex/0001020, sect. 2.1).

    ln T and ln alpha are correlated normals:
    <ln T> = ln(ln y - 0.812), sigma(ln T) = 1 / (-1.4 + 1.26 ln y),
    <ln alpha> = ln(0.81 + (0.458 + 2.26 / Z) ln y), sigma(ln alpha) = 1 / (-0.58 + 0.86 ln y),
    rho = 0.705 - 0.023 ln y.

    Args:
        y: (n,) E / E_c.
        z: atomic number.
        rng: random generator.

    Returns:
        T (n,) depth of the maximum in X0 and alpha (n,) the Gamma shape (>= ALPHA_MIN).
    """
    ln_y = np.maximum(np.log(y), LN_Y_MIN)
    mean_ln_t = np.log(ln_y - 0.812)
    sigma_ln_t = 1.0 / (-1.4 + 1.26 * ln_y)
    mean_ln_a = np.log(0.81 + (0.458 + 2.26 / z) * ln_y)
    sigma_ln_a = 1.0 / (-0.58 + 0.86 * ln_y)
    rho = 0.705 - 0.023 * ln_y
    z1, z2 = rng.standard_normal((2, len(ln_y)))
    tmax = np.exp(mean_ln_t + sigma_ln_t * z1)
    alpha = np.exp(mean_ln_a + sigma_ln_a * (rho * z1 + np.sqrt(1 - rho**2) * z2))
    return tmax, np.maximum(alpha, ALPHA_MIN)


def em_radial(tau: np.ndarray, e_gev: np.ndarray, z: float) -> tuple[np.ndarray, ...]:
    """GP's radial parameters (hep-ex/0001020, sect. 2.2) at depth tau = t / T.

    Args:
        tau: (m,) depths in units of the shower's T.
        e_gev: (m,) energies in GeV.
        z: atomic number.

    Returns:
        R_C, R_T (core and tail radii, in Moliere radii) and p (core probability), each (m,).
    """
    ln_e = np.log(e_gev)
    z1, z2 = 0.0251 + 0.00319 * ln_e, 0.1162 - 0.000381 * z
    k1, k2, k3, k4 = 0.659 - 0.00309 * z, 0.645, -2.59, 0.3585 + 0.0421 * ln_e
    p1, p2, p3 = 2.632 - 0.00094 * z, 0.401 + 0.00187 * z, 1.313 - 0.0686 * ln_e
    r_core = z1 + z2 * tau
    r_tail = k1 * (np.exp(k3 * (tau - k2)) + np.exp(k4 * (tau - k2)))
    arg = (p2 - tau) / p3
    p = np.clip(p1 * np.exp(arg - np.exp(arg)), 0.0, 1.0)
    return r_core, r_tail, p


class ToySimulator:
    """GFlash-like parametrised showers in any geometry (see the module docstring).

    Args:
        geometry: a built-in geometry name, a binning-XML path or a :class:`Geometry`;
            every layer needs ``depth_x0``.
        particle: ``"photon"``, ``"electron"`` (EM showers) or ``"pion"`` (hadron-like).
        material: the calorimeter medium, a :class:`Material` or a :data:`MATERIALS`
            name; ``None``: the geometry's (its XML's ``material``), else lead/argon.
        energy_range_mev: (min, max) incident energy in MeV (CaloGAN: 1-100 GeV).
        energy_distribution: ``"uniform"`` (CaloGAN) or ``"log-uniform"`` in that range.
        seed: seed of the ``numpy.random.Generator``; one simulator is one random
            stream: the same seed and the same sequence of calls give identical
            showers, and successive :meth:`simulate` calls give new showers.
        spot_scale: multiplies GFlash's number of spots per shower.
        max_spots: cap on the spots per shower (after ``spot_scale``), for speed
            (2000: about 8x faster for 1-100 GeV photons); the per-spot energy is
            scaled so that the energy is unchanged. ``None`` (default): no cap,
            GFlash's count (23 000 spots at 100 GeV in lead).
        impact_jitter_mm: standard deviation of the Gaussian impact point around
            (0, 0) per coordinate, so that showers are not all centred on the same
            cell boundary.
        spot_fluctuations: give each spot a fluctuating visible energy (module
            docstring, step 4); ``False``: equal-energy spots as in GFlash.

    Raises:
        ConfigError: unknown particle or energy distribution, bad energy range,
            a geometry without layer depths.
    """

    def __init__(
        self,
        geometry: str | os.PathLike | Geometry = "calogan",
        particle: str = "photon",
        material: Material | str | None = None,
        energy_range_mev: tuple[float, float] = (1e3, 1e5),
        energy_distribution: str = "uniform",
        seed: int = 0,
        spot_scale: float = 1.0,
        max_spots: int | None = None,
        impact_jitter_mm: float = 5.0,
        spot_fluctuations: bool = True,
    ) -> None:
        if particle not in PARTICLES:
            raise ConfigError(f"unknown particle {particle!r}: choose one of {list(PARTICLES)}")
        if energy_distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"unknown energy_distribution {energy_distribution!r}: "
                f"choose one of {list(DISTRIBUTIONS)}"
            )
        try:
            lo, hi = (float(e) for e in energy_range_mev)
        except (TypeError, ValueError):
            raise ConfigError(
                f"energy_range_mev must be two numbers (min, max) in MeV, got {energy_range_mev!r}"
            ) from None
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
            raise ConfigError(
                f"energy_range_mev must satisfy 0 < min <= max (MeV), got ({lo}, {hi}): "
                "e.g. (1e3, 1e5) for 1-100 GeV"
            )
        if not (np.isfinite(spot_scale) and spot_scale > 0):
            raise ConfigError(f"spot_scale must be > 0, got {spot_scale}")
        if max_spots is not None and max_spots < 1:
            raise ConfigError(f"max_spots must be >= 1 or None (no cap), got {max_spots}")
        if not (np.isfinite(impact_jitter_mm) and impact_jitter_mm >= 0):
            raise ConfigError(f"impact_jitter_mm must be >= 0, got {impact_jitter_mm}")
        self.geometry = Geometry.resolve(geometry)
        depths = self.geometry.depths_x0  # ConfigError naming the fix if missing
        if not depths.sum() > 0:
            raise ConfigError(
                f"geometry {self.geometry.name!r} has zero total depth: give its layers "
                "depth_x0 > 0 (radiation lengths)"
            )
        self.particle = particle
        if material is None:
            material = self.geometry.material or "lead-argon"
        if isinstance(material, str):
            if material not in MATERIALS:
                raise ConfigError(f"unknown material {material!r}: choose from "
                                  f"{sorted(MATERIALS)} or pass a Material")  # fmt: skip
            material = MATERIALS[material]
        if not isinstance(material, Material):
            raise ConfigError(f"material must be a Material or a name, got "
                              f"{type(material).__name__}")  # fmt: skip
        self.material = material
        self.energy_range_mev = (lo, hi)
        self.energy_distribution = energy_distribution
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = seed
        self.spot_scale = float(spot_scale)
        self.max_spots = max_spots
        self.impact_jitter_mm = float(impact_jitter_mm)
        self.spot_fluctuations = bool(spot_fluctuations)
        #: (L + 1,) layer boundaries in X0, front face at 0.
        self.boundaries_x0 = np.concatenate([[0.0], np.cumsum(depths)])
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        lo, hi = self.energy_range_mev
        return (
            f"ToySimulator(geometry={self.geometry.name!r}, particle={self.particle!r}, "
            f"energy_range_mev=({lo:g}, {hi:g}), energy_distribution="
            f"{self.energy_distribution!r}, seed={self.seed}, max_spots={self.max_spots}, "
            f"spot_fluctuations={self.spot_fluctuations}, "
            f"threshold_mev={self.geometry.threshold_mev:g})"
        )

    # ----------------------------------------------------------------- public
    def simulate(
        self, n: int, energies_mev: np.ndarray | float | None = None, progress: bool = False
    ) -> Showers:
        """Simulate ``n`` showers.

        Args:
            n: number of showers.
            energies_mev: incident energies in MeV, a number or (n,); ``None`` draws
                them from ``energy_range_mev`` and ``energy_distribution``.
            progress: show a progress bar.

        Returns:
            :class:`Showers` with energy (n,) and voxels (n, V) in MeV and overflow
            (n, L): energy in a layer's depth but outside its voxels.

        Raises:
            InputError: n < 0 or not an integer, energies not finite and > 0.
            ShapeError: energies of the wrong shape.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise InputError(f"n must be an integer >= 0 (number of showers), got {n!r}")
        n = int(n)
        energies = None
        if energies_mev is not None:
            energies = np.asarray(energies_mev, np.float64)
            if energies.ndim == 0:
                energies = np.full(n, float(energies))
            if energies.shape != (n,):
                raise ShapeError(
                    f"energies_mev must be a number or have shape ({n},), got {energies.shape}"
                )
            if not (np.isfinite(energies).all() and (energies > 0).all()):
                raise InputError("energies_mev must be finite and > 0 (MeV)")
        geometry = self.geometry
        voxels = np.zeros((n, geometry.n_voxels))
        overflow = np.zeros((n, len(geometry.layers)))
        incident = np.zeros(n)
        e_max = self.energy_range_mev[1] if energies is None or n == 0 else energies.max()
        chunk = self._chunk_size(e_max)
        with progress_bar(n, f"toy {self.particle} showers", enabled=progress) as bar:
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                e = self._draw_energies(stop - start) if energies is None else energies[start:stop]
                incident[start:stop] = e
                self._chunk(e, voxels[start:stop], overflow[start:stop])
                bar.advance(stop - start)
        if geometry.threshold_mev > 0:  # the readout: fainter voxels read zero (energy lost)
            voxels[voxels < geometry.threshold_mev] = 0.0
        return Showers(incident, voxels, geometry, overflow)

    def simulate_to_file(
        self,
        path: str | os.PathLike,
        n: int,
        chunk_size: int = 5000,
        progress: bool = True,
        resume: bool = True,
    ) -> Path:
        """Simulate ``n`` showers into a CaloChallenge HDF5 file, chunk by chunk.

        Memory stays at one chunk (chunk_size x V x 8 bytes) whatever ``n``.
        Chunk k draws from its own stream, ``SeedSequence(seed, spawn_key=(k,))``,
        so the file depends only on (settings, seed, chunk_size), not on how
        the run was cut or resumed, and different chunks can be made by
        different processes. This method does not touch the stream of
        :meth:`simulate`. A cut-off run resumes from ``<path>.partial``
        (:class:`~hepflows.calo.showerstream.ShowerWriter`).

        Args:
            path: the file to write (replaced atomically when complete).
            n: number of showers.
            chunk_size: showers per chunk.
            progress: show a progress bar.
            resume: continue an unfinished run of the same settings.

        Returns:
            ``path``.

        Raises:
            InputError: n or chunk_size not an integer >= 1.
            ConfigError: an unfinished file of other settings.
        """
        from hepflows.calo.showerstream import ShowerWriter

        for name, value in (("n", n), ("chunk_size", chunk_size)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        attrs = {"simulator": repr(self), "chunk_size": int(chunk_size), "n_showers": int(n)}
        with ShowerWriter(path, self.geometry, resume=resume, attrs=attrs) as out, \
                progress_bar(n, f"toy {self.particle} showers -> {Path(path).name}",
                             enabled=progress) as bar:  # fmt: skip
            bar.advance(out.n_done)
            for chunk in self.simulate_chunks(n, chunk_size, start=out.n_done):
                out.append(chunk)
                bar.advance(len(chunk))
            return out.finish()

    def simulate_chunks(self, n: int, chunk_size: int = 5000, start: int = 0) -> Iterator[Showers]:
        """Showers ``start`` to ``n`` in chunks, chunk k from ``SeedSequence(seed, (k,))``.

        The streams of :meth:`simulate_to_file`: ``start`` must be a multiple of
        ``chunk_size`` (a chunk boundary). Does not touch :meth:`simulate`'s stream.

        Yields:
            :class:`Showers` of chunk_size showers (the last may be shorter).

        Raises:
            InputError: ``start`` not on a chunk boundary or beyond ``n``.
        """
        from hepflows.calo.showerstream import chunk_streams

        chunks = chunk_streams(n, chunk_size, self.seed, start)  # checks start
        own = self._rng
        try:
            for lo, hi, seq in chunks:
                self._rng = np.random.default_rng(seq)
                shower = self.simulate(hi - lo)
                self._rng = own
                yield shower
        finally:
            self._rng = own

    # ---------------------------------------------------------------- private
    def _spot_count(self, e_gev: np.ndarray | float) -> np.ndarray | float:
        """Spots per shower of energy e_gev (GeV), capped at ``max_spots``."""
        n = self.spot_scale * 93 * math.log(self.material.Z) * np.power(e_gev, 0.876)
        return n if self.max_spots is None else np.minimum(n, self.max_spots)

    def _chunk_size(self, e_max_mev: float) -> int:
        """Showers per chunk such that a chunk holds at most ~SPOTS_PER_CHUNK spots."""
        per_shower = float(self._spot_count(max(e_max_mev / 1e3, 1e-3))) + 1.0
        return int(np.clip(SPOTS_PER_CHUNK // per_shower, 16, CHUNK))

    def _draw_energies(self, n: int) -> np.ndarray:
        lo, hi = self.energy_range_mev
        u = self._rng.random(n)
        if self.energy_distribution == "uniform":
            return lo + (hi - lo) * u
        return lo * (hi / lo) ** u

    def _components(self, e_mev: np.ndarray) -> tuple[list[_Component], np.ndarray, np.ndarray]:
        """The shower components of n showers (energies e_mev (n,) in MeV).

        Returns:
            components, the shower energy (n,) in MeV (incident minus the pion's
            ionisation track) and the track length (n,) in X0 of the ionising pion
            before its first interaction (zeros for EM particles).
        """
        rng, mat = self._rng, self.material
        n = len(e_mev)
        if self.particle in ("photon", "electron"):
            y = e_mev / mat.critical_energy_mev
            if self.particle == "photon":
                start, y = rng.exponential(CONVERSION_X0, n), y / 2
            else:
                start = np.zeros(n)
            tmax, alpha = em_longitudinal(y, mat.Z, rng)
            em = _Component("em", start, alpha, (alpha - 1) / tmax, tmax, np.ones(n), e_mev / 1e3)
            return [em], e_mev, np.zeros(n)

        # Pion: ionising track, then an EM (pi0) part and a hadronic part.
        lam = mat.interaction_length_x0
        t_int = rng.exponential(lam, n)
        t_end = self.boundaries_x0[-1]
        if mat.mip_mev_per_x0 > 0:  # a slow pion ranges out before the back
            t_end = np.minimum(t_end, e_mev / mat.mip_mev_per_x0)
        t_track = np.minimum(t_int, t_end)
        e_shower = np.maximum(e_mev - mat.mip_mev_per_x0 * t_track, 0.0)
        showers = t_int < t_end
        e_gev = np.maximum(e_shower / 1e3, 1e-3)
        # EM fraction <f_em> = 1 - (E / E0)^(k - 1), E0 = 1 GeV, k = 0.82 (Wigmans,
        # "Calorimetry", ch. 2), fluctuating event by event (Beta, concentration 8).
        f_mean = np.clip(1 - np.maximum(e_gev, 1.0) ** (0.82 - 1), 0.05, 0.95)
        kappa = 8.0
        f_em = rng.beta(f_mean * kappa, (1 - f_mean) * kappa)
        tmax, alpha = em_longitudinal(
            np.maximum(f_em * e_shower, 1e-3) / mat.critical_energy_mev, mat.Z, rng
        )
        em = _Component(
            "em", t_int, alpha, (alpha - 1) / tmax, tmax, f_em * showers,
            np.maximum(f_em * e_gev, 1e-3),
        )  # fmt: skip
        # Hadronic part: maximum at 0.2 ln(E/GeV) + 0.7 interaction lengths after the
        # first interaction (PDG, "Calorimetry"), log-normal with width 0.3; Gamma
        # shape log-normal around 2 (width 0.25); visible fraction h/e fluctuating.
        t_h = np.maximum(0.2 * np.log(e_gev) + 0.7, 0.3) * np.exp(0.3 * rng.standard_normal(n))
        a_h = np.maximum(2.0 * np.exp(0.25 * rng.standard_normal(n)), ALPHA_MIN)
        h_vis = _beta_mean_rel(
            rng, np.full(n, mat.h_over_e), mat.hadronic_resolution / np.sqrt(e_gev)
        )
        tmax_h = t_h * lam
        had = _Component(
            "had", t_int, a_h, (a_h - 1) / tmax_h, tmax_h, (1 - f_em) * h_vis * showers, e_gev
        )
        return [em, had], e_shower, t_track

    def _chunk(self, e_mev: np.ndarray, voxels: np.ndarray, overflow: np.ndarray) -> None:
        """Simulate showers of energies e_mev (n,) into voxels (n, V) and overflow (n, L)."""
        rng, mat, geometry = self._rng, self.material, self.geometry
        n = len(e_mev)
        bounds = self.boundaries_x0
        jitter = rng.normal(0.0, self.impact_jitter_mm, (2, n)) if n else np.zeros((2, 0))
        comps, e_shower, t_track = self._components(e_mev)
        a = mat.sampling_resolution
        e_gev = np.maximum(e_shower / 1e3, 1e-3)

        # Expected visible fraction per layer and component (n, L, C), and lost behind.
        cdfs = [_gamma_cdf(c, bounds) for c in comps]  # (n, L + 1) each
        m = np.stack(
            [c.weight[:, None] * np.diff(f, axis=1) for c, f in zip(comps, cdfs, strict=True)], -1
        )
        behind = sum(c.weight * (1 - f[:, -1]) for c, f in zip(comps, cdfs, strict=True))
        total_weight = sum(c.weight for c in comps)  # (n,)

        # Sampling: Dirichlet split with E/a^2 quanta; Beta visible fraction (module doc).
        quanta = e_gev / a**2
        g = rng.gamma(quanta[:, None, None] * m)
        g_behind = rng.gamma(quanta * behind)
        norm = g.sum((1, 2)) + g_behind
        share = g / np.where(norm > 0, norm, 1.0)[:, None, None]
        visible = _beta_mean_rel(rng, np.full(n, mat.sampling_fraction), a / np.sqrt(e_gev))
        bucket = (e_shower * visible * total_weight)[:, None, None] * share  # (n, L, C) MeV

        # Spots per unit of expected visible fraction in voxelised layers.
        n_spots = self._spot_count(e_gev)
        m_vox = m[:, geometry.voxel_layers, :].sum((1, 2))
        rate = np.where(m_vox > 0, n_spots / np.where(m_vox > 0, m_vox, 1.0), 0.0)

        # Ionising track of pions: per layer, the overlap of [0, t_track] with the layer.
        track = np.clip(t_track[:, None] - bounds[None, :-1], 0.0, np.diff(bounds)[None, :])
        track_e = mat.mip_mev_per_x0 * track * visible[:, None]  # (n, L) MeV

        shower_ids = np.arange(n)
        for li in geometry.voxel_layers:
            layer = geometry.layers[li]
            parts = [self._spots(c, ci, li, bucket, rate, jitter) for ci, c in enumerate(comps)]
            if self.particle == "pion":
                has = track_e[:, li] > 0
                ids = shower_ids[has]
                parts.append((jitter[0, has], jitter[1, has], track_e[has, li], ids))
            if len(parts) == 1:
                x, y, e, ids = parts[0]
            else:
                x, y, e, ids = (np.concatenate(p) for p in zip(*parts, strict=True))
            # One bincount: voxel k of shower i -> i * nv + k; outside -> n * nv + i.
            nv = layer.n_voxels
            voxel = layer.locate(x, y)
            flat = np.where(voxel >= 0, ids * nv + voxel, n * nv + ids)
            sums = np.bincount(flat, weights=e, minlength=n * nv + n)
            voxels[:, geometry.slices[li]] += sums[: n * nv].reshape(n, nv)
            overflow[:, li] += sums[n * nv :]

    def _spots(
        self,
        comp: _Component,
        ci: int,
        li: int,
        bucket: np.ndarray,
        rate: np.ndarray,
        jitter: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Spots of one component in one layer.

        Args:
            comp: the component (n showers).
            ci: its index in ``bucket``.
            li: the layer's position.
            bucket: (n, L, C) visible energy per layer and component (MeV).
            rate: (n,) spots per unit of expected visible fraction.
            jitter: (2, n) impact point (mm).

        Returns:
            x, y (mm), energy (MeV) and shower index (within the chunk) of each spot, (m,).
        """
        rng, mat = self._rng, self.material
        lo, hi = self.boundaries_x0[li], self.boundaries_x0[li + 1]
        n = len(comp.start)
        # Sub-slices of <= 1 X0 for EM parts (the radial profile depends on depth); the
        # hadronic radial profile does not, one slice is enough.
        n_sub = max(1, math.ceil((hi - lo) / SUB_SLICE_X0)) if comp.kind == "em" else 1
        edges = np.linspace(lo, hi, n_sub + 1)
        cdf = _gamma_cdf(comp, edges)  # (n, J + 1)
        d_cdf = np.diff(cdf, axis=1)  # (n, J)
        layer_cdf = cdf[:, -1] - cdf[:, 0]
        energy = bucket[:, li, ci, None] * d_cdf / np.where(layer_cdf > 0, layer_cdf, 1.0)[:, None]
        count = np.ceil(rate[:, None] * comp.weight[:, None] * d_cdf).astype(np.int64)
        count = np.where(energy > 0, np.maximum(count, 1), 0).ravel()
        rows = np.repeat(np.arange(n * n_sub), count)
        shower = rows // n_sub
        e_row = energy.ravel()
        e_mean = e_row / np.maximum(count, 1)  # per sub-slice
        e_spot = e_mean[rows]
        if self.spot_fluctuations and len(rows):
            # Gamma(k, 1/k) visible shares, k = 1 / rel^2, renormalised per sub-slice;
            # rel depends only on the sub-slice: computed per sub-slice, not per spot.
            rel = np.minimum(mat.sampling_resolution / np.sqrt(np.maximum(e_mean, 1e-9) / 1e3), 1.0)
            k = (1.0 / rel**2).astype(np.float32)[rows]
            w = rng.standard_gamma(k, dtype=np.float32) / k
            total = np.bincount(rows, weights=w, minlength=len(e_row))
            e_spot = e_row[rows] * w / np.where(total > 0, total, 1.0)[rows]

        if comp.kind == "em":
            # Radial parameters at the sub-slice's middle (tau = t / T, t from the start).
            t_lo = np.maximum(edges[None, :-1], comp.start[:, None])
            t_mid = 0.5 * (t_lo + np.maximum(edges[None, 1:], t_lo))
            tau = (t_mid - comp.start[:, None]) / comp.tmax[:, None]
            e_row = np.broadcast_to(comp.e_gev[:, None], tau.shape)
            r_core, r_tail, p = (
                v.astype(np.float32).ravel()[rows] for v in em_radial(tau, e_row, mat.Z)
            )
            # float32 for the per-spot arithmetic: 3-5x faster (uniforms, sqrt, cos,
            # sin), and 1e-7 relative precision is far below any cell size.
            u_core, u_r, u_phi = rng.random((3, len(rows)), dtype=np.float32)
            radius = np.where(u_core < p, r_core, r_tail) * np.float32(mat.moliere_radius_mm)
        else:
            u_r, u_phi = rng.random((2, len(rows)), dtype=np.float32)
            radius = np.float32(mat.hadronic_radius_mm)
        # Inverse CDF of f_X(r) = 2 r R^2 / (r^2 + R^2)^2: F(r) = r^2 / (r^2 + R^2).
        r = radius * np.sqrt(u_r / (np.float32(1) - u_r))
        phi = np.float32(2 * np.pi) * u_phi
        x = jitter[0, shower] + r * np.cos(phi)
        y = jitter[1, shower] + r * np.sin(phi)
        return x, y, e_spot, shower
