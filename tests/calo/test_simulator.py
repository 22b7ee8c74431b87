"""The toy GFlash-like simulator: layout, determinism and the physics it promises.

The predictions are computed here from the published formulas of Grindhammer &
Peters (hep-ex/0001020), independently of the simulator's code, and compared with
the simulated showers within tolerances stated next to each check.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gammainc

from hepflows.calo import Geometry, Layer, Material, Showers, ToySimulator
from hepflows.calo.simulator import ALPHA_MIN
from hepflows.errors import ConfigError, InputError, ShapeError

MAT = Material()


def gp_parameters(e_mev: float, particle: str, n: int = 200_000, seed: int = 11):
    """Draws of (T, alpha, start) from GP's correlated normal, as the module documents.

    Photons convert after Exp(9/7 X0) and use y/2 (an e+e- pair), electrons start at 0.
    """
    rng = np.random.default_rng(seed)
    y = e_mev / MAT.critical_energy_mev / (2 if particle == "photon" else 1)
    ln_y = np.log(y)
    z1, z2 = rng.standard_normal((2, n))
    rho = 0.705 - 0.023 * ln_y
    ln_t = np.log(ln_y - 0.812) + z1 / (-1.4 + 1.26 * ln_y)
    mean_ln_a = np.log(0.81 + (0.458 + 2.26 / MAT.Z) * ln_y)
    ln_a = mean_ln_a + (rho * z1 + np.sqrt(1 - rho**2) * z2) / (-0.58 + 0.86 * ln_y)
    alpha = np.maximum(np.exp(ln_a), ALPHA_MIN)
    start = rng.exponential(9 / 7, n) if particle == "photon" else np.zeros(n)
    return np.exp(ln_t), alpha, start


def fine_geometry(n: int = 80, step: float = 0.5) -> Geometry:
    """n layers of `step` X0, one huge radial bin each: a longitudinal profile meter."""
    return Geometry(tuple(Layer(i, step, r_edges=(0.0, 1e6)) for i in range(n)), name="fine")


# --------------------------------------------------------------------- layout
def test_showers_have_the_layout_and_units_of_the_geometry() -> None:
    sim = ToySimulator("calogan", "photon", seed=1)
    showers = sim.simulate(1100)  # more than one chunk of 1000
    assert isinstance(showers, Showers) and len(showers) == 1100
    assert showers.voxels.shape == (1100, 504) and showers.overflow.shape == (1100, 3)
    assert showers.geometry.name == "calogan"
    # Incident energies in MeV, uniform in 1-100 GeV: mean 50.5 GeV (SE 0.9 GeV).
    assert showers.energy.min() >= 1e3 and showers.energy.max() <= 1e5
    assert abs(showers.energy.mean() - 50.5e3) < 4e3
    # Energy conservation holds shower by shower (voxels + overflow <= incident).
    deposit = showers.voxels.sum(1) + showers.overflow.sum(1)
    assert (deposit > 0).all() and (deposit <= showers.energy).all()
    # A shower spreads over several cells: not all energy in one voxel.
    assert (showers.voxels.max(1) < 0.9 * showers.voxels.sum(1)).all()


def test_log_uniform_energies() -> None:
    sim = ToySimulator(
        "calogan", "electron", energy_range_mev=(256.0, 4096.0),
        energy_distribution="log-uniform", seed=2,
    )  # fmt: skip
    e = sim.simulate(400).energy
    assert e.min() >= 256 and e.max() <= 4096
    # log2(E) uniform in [8, 12]: half of them below 1024 MeV (uniform would give 20 %).
    assert abs((e < 1024).mean() - 0.5) < 0.1


def test_fixed_energies_and_empty_request() -> None:
    sim = ToySimulator("calogan", "photon", seed=3)
    assert np.array_equal(sim.simulate(5, 2e3).energy, np.full(5, 2e3))
    e = np.array([1e3, 5e3, 2e4])
    assert np.array_equal(sim.simulate(3, e).energy, e)
    empty = sim.simulate(0)
    assert empty.voxels.shape == (0, 504)


def test_progress_bar_runs() -> None:
    showers = ToySimulator("calogan", "pion", seed=4).simulate(20, progress=True)
    assert len(showers) == 20


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("particle", ["photon", "electron", "pion"])
def test_same_seed_same_showers_other_seed_other_showers(particle: str) -> None:
    a = ToySimulator("calogan", particle, seed=5).simulate(50)
    b = ToySimulator("calogan", particle, seed=5).simulate(50)
    c = ToySimulator("calogan", particle, seed=6).simulate(50)
    assert np.array_equal(a.energy, b.energy) and np.array_equal(a.voxels, b.voxels)
    assert np.array_equal(a.overflow, b.overflow)
    assert not np.array_equal(a.voxels, c.voxels)
    # One simulator is one stream: a second call gives new showers.
    sim = ToySimulator("calogan", particle, seed=5)
    sim.simulate(50)
    assert not np.array_equal(sim.simulate(50).voxels, a.voxels)


# -------------------------------------------------------------------- physics
@pytest.mark.parametrize("particle", ["electron", "photon"])
def test_mean_depth_grows_like_ln_e_as_the_gamma_profile_predicts(particle: str) -> None:
    """Energy-weighted mean depth vs GP's <t> = start + T alpha / (alpha - 1).

    In 80 layers of 0.5 X0 (40 X0, leakage < 0.5 % at 50 GeV) the energy-weighted
    mean layer depth estimates <t> with a binning error < 0.02 X0. Per-shower
    depths scatter by ~1-1.5 X0, so with 300 showers the means have SE <= 0.09 X0
    and the slope over ln(50/2) = 3.2 has SE ~ 0.04. Tolerances: means within
    0.25 X0 (3 SE plus 0.05 X0 for the truncated tail), slope within 0.15 of the
    prediction (~1.0 per e-fold). A depth that did not grow with E (slope 0), or
    photons without the conversion shift (-1.3 X0), fail.
    """
    geometry = fine_geometry()
    mids = (np.arange(80) + 0.5) * 0.5
    sim = ToySimulator(geometry, particle, seed=7, impact_jitter_mm=0.0)
    energies = np.array([2e3, 1e4, 5e4])
    measured, predicted = [], []
    for e in energies:
        layers = sim.simulate(300, e).layer_energies()
        measured.append(((layers * mids).sum(1) / layers.sum(1)).mean())
        tmax, alpha, start = gp_parameters(e, particle)
        predicted.append((start + tmax * alpha / (alpha - 1)).mean())
    measured, predicted = np.array(measured), np.array(predicted)
    assert np.all(np.abs(measured - predicted) < 0.25), (measured, predicted)
    slope = np.polyfit(np.log(energies), measured, 1)[0]
    slope_pred = np.polyfit(np.log(energies), predicted, 1)[0]
    assert slope > 0.5 and abs(slope - slope_pred) < 0.15, (slope, slope_pred)


def test_photons_shower_deeper_than_electrons() -> None:
    """Conversion after ~9/7 X0 minus the shallower pair showers: ~ +0.6 X0 (Rossi: +0.5)."""
    geometry = fine_geometry()
    mids = (np.arange(80) + 0.5) * 0.5
    depth = {}
    for particle in ("photon", "electron"):
        layers = ToySimulator(geometry, particle, seed=8).simulate(400, 1e4).layer_energies()
        depth[particle] = ((layers * mids).sum(1) / layers.sum(1)).mean()
    # SE of the difference ~ 0.1 X0.
    assert 0.3 < depth["photon"] - depth["electron"] < 1.0, depth


def test_calogan_layer_energies_follow_the_gamma_cdf() -> None:
    """Mean energy per CaloGAN layer = sampling_fraction x E[Gamma CDF difference].

    The visible fraction (Beta, mean 0.85) and the Dirichlet layer shares (means =
    expected fractions) are independent, so the mean layer fraction is exact. The
    per-shower layer fractions scatter by up to 0.13 (conversion depth, T and alpha),
    so the check is within 4 standard errors of the sample (+0.002 for the Monte
    Carlo error of the prediction).
    """
    bounds = np.array([0.0, 4.5, 21.5, 23.5])
    for e in (2e3, 5e4):
        showers = ToySimulator("calogan", "photon", seed=9).simulate(800, e)
        per_layer = (showers.layer_energies() + showers.overflow) / e  # (N, 3)
        measured, se = per_layer.mean(0), per_layer.std(0) / np.sqrt(len(per_layer))
        tmax, alpha, start = gp_parameters(e, "photon")
        beta = (alpha - 1) / tmax
        cdf = gammainc(alpha[:, None], beta[:, None] * np.maximum(bounds - start[:, None], 0))
        predicted = MAT.sampling_fraction * np.diff(cdf, axis=1).mean(0)
        assert np.all(np.abs(measured - predicted) < 4 * se + 0.002), (e, measured, predicted)
    # The back layer's share grows with energy, the front layer's shrinks.
    low = ToySimulator("calogan", "photon", seed=10).simulate(300, 2e3).layer_energies()
    high = ToySimulator("calogan", "photon", seed=10).simulate(300, 5e4).layer_energies()
    frac_low, frac_high = (x.sum(0) / x.sum() for x in (low, high))
    assert frac_high[2] > 2 * frac_low[2] and frac_high[0] < 0.6 * frac_low[0]


def test_deposited_fraction_and_resolution_scale_like_one_over_sqrt_e() -> None:
    """E_dep / E_inc and sigma(E_dep) / E_dep for photons in CaloGAN.

    Mean: sampling_fraction (0.85) x containment (>= 0.95 of a photon shower in 23.5 X0
    up to 50 GeV), so within [0.80, 0.86]. Resolution: a / sqrt(E/GeV) with a = 0.10
    from the sampling term, plus leakage fluctuations that matter at high E; the
    stochastic term sigma/E x sqrt(E) must be 0.08-0.13 at 2 and 10 GeV (SE of a
    width from 400 showers: 4 %), and sigma/E at 2 GeV more than twice that at 50 GeV
    (pure 1/sqrt(E) gives 5).
    """
    resolution = {}
    for e in (2e3, 1e4, 5e4):
        deposit = ToySimulator("calogan", "photon", seed=12).simulate(400, e).voxels.sum(1)
        u = deposit / e
        assert 0.80 < u.mean() < 0.86, (e, u.mean())
        assert (u < 1).all()
        resolution[e] = deposit.std() / deposit.mean()
    for e in (2e3, 1e4):
        assert 0.08 < resolution[e] * np.sqrt(e / 1e3) < 0.13, resolution
    assert resolution[2e3] > 2 * resolution[5e4], resolution


def test_layer_sampling_fluctuations_scale_like_a_squared_over_e() -> None:
    """Each layer fluctuates independently by ~ a sqrt(E_l): the Dirichlet split with
    K = E / a^2 quanta gives Var(x_l) = v^2 m_l (1 - m_l) / (K + 1) for the layer
    fractions x_l, anticorrelated between layers. Second differences of adjacent thin
    layers cancel the smooth Gamma profile (its contribution is ~1e-5 of the total),
    and sum_l Var(x_(l+1) - 2 x_l + x_(l-1)) = 6 E[v^2] / (K + 1) with
    E[v^2] = mu^2 (1 + a^2 / E). The mean of that per-shower sum over 300 showers has
    a relative SE of ~2.5 %: tolerance 10 %. Without per-layer sampling noise it
    would be ~0.
    """
    mu, a = MAT.sampling_fraction, MAT.sampling_resolution
    sim = ToySimulator(fine_geometry(), "electron", seed=18)
    for e in (2e3, 5e4):
        x = sim.simulate(300, e).layer_energies() / e
        measured = (np.diff(x, 2, axis=1) ** 2).sum(1).mean()
        e_gev = e / 1e3
        predicted = 6 * mu**2 * (1 + a**2 / e_gev) / (e_gev / a**2 + 1)
        assert abs(measured / predicted - 1) < 0.1, (e, measured, predicted)


def test_lateral_fraction_inside_the_moliere_radius() -> None:
    """GP's radial profile holds ~90 % of the energy inside R_M (their fig. / text).

    The model gives 0.88-0.90 at 2-50 GeV; with 300 showers the SE is < 0.003.
    Window [0.85, 0.93]; inside 2 R_M > 0.94. Doubling R_M with cells in units of
    R_M gives the same fractions (R_M is the unit), in fixed mm it halves the core.
    """
    rm = MAT.moliere_radius_mm
    geometry = Geometry((Layer(0, 40.0, r_edges=(0.0, rm, 2 * rm, 1e6)),), name="radial")
    for e in (2e3, 5e4):
        sim = ToySimulator(geometry, "photon", seed=13, impact_jitter_mm=0.0)
        v = sim.simulate(300, e).voxels
        inside = (v[:, 0] / v.sum(1)).mean()
        assert 0.85 < inside < 0.93, (e, inside)
        assert (v[:, :2].sum(1) / v.sum(1)).mean() > 0.94
    wide = Material(moliere_radius_mm=2 * rm)
    scaled = Geometry((Layer(0, 40.0, r_edges=(0.0, 2 * rm, 4 * rm, 1e6)),), name="radial2")
    v2 = ToySimulator(scaled, "photon", wide, seed=13, impact_jitter_mm=0.0).simulate(300, 1e4)
    v1 = ToySimulator(geometry, "photon", seed=13, impact_jitter_mm=0.0).simulate(300, 1e4)
    f1, f2 = (x.voxels[:, 0].sum() / x.voxels.sum() for x in (v1, v2))
    assert abs(f1 - f2) < 0.01
    v3 = ToySimulator(geometry, "photon", wide, seed=13, impact_jitter_mm=0.0).simulate(300, 1e4)
    assert v3.voxels[:, 0].sum() / v3.voxels.sum() < f1 - 0.1


def test_pions_are_longer_wider_and_fluctuate_more_than_photons() -> None:
    """At 10 GeV in CaloGAN: relative spread of E_dep (photons ~0.03, pions ~0.9),
    energy-weighted RMS radius in the middle layer (photons ~35 mm, pions ~50 mm),
    share of the back layer (photons < 1 %, pions ~10 %), and pions leave a large part
    of their energy unseen (punch-through, h/e < 1)."""
    stats = {}
    for particle in ("photon", "pion"):
        showers = ToySimulator("calogan", particle, seed=14).simulate(400, 1e4)
        deposit = showers.voxels.sum(1)
        middle = showers.voxels[:, showers.geometry.slices[1]]
        r2 = (showers.geometry.layers[1].centres() ** 2).sum(1)
        stats[particle] = {
            "spread": deposit.std() / deposit.mean(),
            "rms": np.sqrt((middle * r2).sum() / middle.sum()),
            "back": showers.layer_energies()[:, 2].sum() / deposit.sum(),
            "u": deposit.mean() / 1e4,
        }
    photon, pion = stats["photon"], stats["pion"]
    assert pion["spread"] > 5 * photon["spread"], stats
    assert pion["rms"] > 1.25 * photon["rms"], stats
    assert pion["back"] > 5 * photon["back"], stats
    assert pion["u"] < 0.6 * photon["u"], stats


def test_low_energy_pions_conserve_energy() -> None:
    """A 300 MeV pion ranges out in the 34 X0 of ds1 (7.2 MeV/X0): never more than E."""
    showers = ToySimulator("calochallenge-ds1-photon", "pion", seed=15).simulate(300, 300.0)
    deposit = showers.voxels.sum(1) + showers.overflow.sum(1)
    assert (deposit <= 300.0).all() and (deposit > 0).all()


def test_ds1_polar_geometry() -> None:
    """368 polar voxels; the shower sits in the inner radial bins; empty layers stay empty."""
    showers = ToySimulator("calochallenge-ds1-photon", "photon", seed=16).simulate(300, 1e4)
    geometry = showers.geometry
    assert showers.voxels.shape == (300, 368) and showers.overflow.shape == (300, 24)
    empty = [i for i in range(len(geometry.layers)) if i not in geometry.voxel_layers]
    assert showers.overflow[:, empty].sum() == 0
    for li in (1, 2):  # the strip and middle layers hold ~85 % of the energy
        r = np.hypot(*geometry.layers[li].centres().T)
        v = showers.voxels[:, geometry.slices[li]]
        assert v[:, r < 50].sum() > 0.9 * v.sum(), li
    deposit = showers.voxels.sum(1) / 1e4
    assert 0.80 < deposit.mean() < 0.86
    # Angular bins are filled evenly (the azimuth is uniform): 10 bins of layer 2.
    per_alpha = showers.voxels[:, geometry.slices[2]].reshape(300, 10, 19).sum((0, 2))
    assert per_alpha.min() > 0.8 * per_alpha.mean()


def test_readout_threshold_zeroes_faint_voxels_and_nothing_else() -> None:
    """A geometry's readout threshold: no voxel reads between 0 and it; voxels above it are
    those of the same showers without a threshold (same seed), so only faint ones vanish."""
    from dataclasses import replace

    base = Geometry.builtin("ds2")
    free = replace(base, threshold_mev=0.0)
    kw = dict(particle="electron", seed=5, max_spots=2000)
    cut = ToySimulator(base, **kw).simulate(50, 2e3)
    raw = ToySimulator(free, **kw).simulate(50, 2e3)
    thr = base.threshold_mev
    assert not ((cut.voxels > 0) & (cut.voxels < thr)).any()
    faint = (raw.voxels > 0) & (raw.voxels < thr)
    assert faint.sum() > 0.02 * (raw.voxels > 0).sum()  # 4 % of the lit voxels of 2 GeV e-
    np.testing.assert_array_equal(cut.voxels, np.where(faint, 0.0, raw.voxels))


def test_spot_cap_changes_granularity_not_the_mean() -> None:
    """Fewer spots: same mean layer energies, coarser (sparser) voxel patterns."""
    a = ToySimulator("calogan", "photon", seed=17, max_spots=None).simulate(300, 5e3)
    b = ToySimulator("calogan", "photon", seed=17, max_spots=50).simulate(300, 5e3)
    assert np.allclose(a.layer_energies().mean(0), b.layer_energies().mean(0), rtol=0.03, atol=5)
    # ~3000 spots hit ~12 strips and ~31 middle cells on average, 50 spots ~3 and ~7.
    for li in (0, 1):
        hit_a, hit_b = ((x.voxels[:, x.geometry.slices[li]] > 0).sum(1).mean() for x in (a, b))
        assert hit_b < 0.5 * hit_a, (li, hit_a, hit_b)


def test_spot_fluctuations_make_voxel_energies_continuous_and_keep_layer_energies() -> None:
    """Equal-energy spots put every voxel on a lattice of one spot energy; fluctuating
    spots do not, and leave the layer energies (mean and spread) as they were."""
    kw = dict(geometry="calogan", particle="photon", max_spots=2000)
    eq = ToySimulator(**kw, seed=21, spot_fluctuations=False).simulate(400, 4e4)
    fl = ToySimulator(**kw, seed=21).simulate(400, 4e4)

    def tie_fraction(showers: Showers) -> float:
        v = showers.voxels[:, showers.geometry.slices[0]]
        lit = [np.round(r[r > 0], 6) for r in v]
        return 1 - sum(len(np.unique(x)) for x in lit) / sum(len(x) for x in lit)

    assert tie_fraction(eq) > 0.2  # whole multiples of ~17 MeV: many exact ties
    assert tie_fraction(fl) < 0.01
    le, lf = eq.layer_energies(), fl.layer_energies()
    # Means within 3 standard errors, spreads within 15 % (400 showers).
    se = np.sqrt(le.var(0) / 400 + lf.var(0) / 400)
    assert (np.abs(le.mean(0) - lf.mean(0)) < 3 * se).all(), (le.mean(0), lf.mean(0))
    assert np.allclose(le.std(0), lf.std(0), rtol=0.15), (le.std(0), lf.std(0))


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"particle": "muon"}, "photon"),
        ({"energy_range_mev": (0.0, 1e3)}, "0 < min <= max"),
        ({"energy_range_mev": (1e4, 1e3)}, "0 < min <= max"),
        ({"energy_range_mev": (1e3,)}, "two numbers"),
        ({"energy_distribution": "gauss"}, "log-uniform"),
        ({"spot_scale": 0.0}, "spot_scale"),
        ({"max_spots": 0}, "max_spots"),
        ({"geometry": "no-such-geometry"}, "unknown geometry"),
    ],
)
def test_bad_configuration_names_the_fix(kwargs: dict, match: str) -> None:
    with pytest.raises((ConfigError, InputError), match=match):
        ToySimulator(**kwargs)


def test_geometry_without_depths_is_refused() -> None:
    geometry = Geometry((Layer(0, None, r_edges=(0.0, 10.0)),), name="nodepth")
    with pytest.raises(ConfigError, match="depth_x0"):
        ToySimulator(geometry)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"moliere_radius_mm": 0.0},
        {"sampling_fraction": 1.2},
        {"sampling_resolution": -0.1},
        {"Z": 1.0},
        {"critical_energy_mev": float("nan")},
    ],
)
def test_bad_material(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="Material"):
        Material(**kwargs)


def test_bad_simulate_arguments() -> None:
    sim = ToySimulator(seed=0)
    with pytest.raises(InputError, match="n must be"):
        sim.simulate(-1)
    with pytest.raises(InputError, match="n must be"):
        sim.simulate(2.5)
    with pytest.raises(ShapeError, match=r"shape \(3,\)"):
        sim.simulate(3, np.ones(4) * 1e3)
    with pytest.raises(InputError, match="> 0"):
        sim.simulate(2, np.array([1e3, -5.0]))
    with pytest.raises(InputError, match="finite"):
        sim.simulate(2, np.array([1e3, np.nan]))
