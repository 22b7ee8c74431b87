"""Three-body decays: Dalitz phase space, the pi(1800) and Lambda_c amplitudes, the JAX bridge."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import vegas

from hepflows.errors import ConfigError, ShapeError
from hepflows.physics.decays import (
    DalitzPlot,
    Pi1800Parameters,
    Resonance,
    kallen,
    lc2pkpi,
    pi1800,
)
from hepflows.physics.decays import lambda_c as lc_module
from hepflows.physics.decays.jax_bridge import MAX_BUCKET, JaxFunction

LC_MASSES = (2.28646, 0.938272046, 0.493677, 0.13957018)


@pytest.fixture(scope="module")
def lc():
    """The LHCb Lambda_c model (built once into the user cache: ~25 s the first time)."""
    return lc2pkpi(progress=False)


def four_momenta(d: DalitzPlot, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Explicit four-vectors of 1, 2, 3 in the (12) rest frame for unit-square points u.

    1 and 2 back to back along z, 3 at angle theta to 2 with cos(theta) = 1 - 2 u1
    (the convention of DalitzPlot.map), built from energies and momenta only.
    """
    lo, hi = d.bounds("12")
    s12 = lo + u[:, 0] * (hi - lo)
    m12 = torch.sqrt(s12)
    p = torch.sqrt(kallen(s12, d.m1**2, d.m2**2) / (4 * s12))
    e1 = torch.sqrt(p**2 + d.m1**2)
    e2 = torch.sqrt(p**2 + d.m2**2)
    # parent momentum in the (12) frame equals the momentum of 3 there
    e3 = (d.M**2 - s12 - d.m3**2) / (2 * m12)
    p3 = torch.sqrt(e3**2 - d.m3**2)
    c = 1 - 2 * u[:, 1]
    s = torch.sqrt(1 - c**2)
    zero = torch.zeros_like(p)
    v1 = torch.stack((e1, zero, zero, -p), 1)
    v2 = torch.stack((e2, zero, zero, p), 1)
    v3 = torch.stack((e3, p3 * s, zero, p3 * c), 1)
    return v1, v2, v3


def minkowski2(a: torch.Tensor) -> torch.Tensor:
    return a[:, 0] ** 2 - (a[:, 1:] ** 2).sum(1)


# ------------------------------------------------------------------ phase space
@pytest.mark.parametrize(
    "masses", [LC_MASSES, (1.81, 0.1396, 0.1396, 0.1396), (3.0, 0.5, 1.0, 0.2)]
)
def test_dalitz_invariants_match_four_vectors(masses):
    d = DalitzPlot(*masses)
    u = torch.rand(2000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    s12, s23, _ = d.map(u)
    v1, v2, v3 = four_momenta(d, u)
    torch.testing.assert_close(s12, minkowski2(v1 + v2), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s23, minkowski2(v2 + v3), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(d.s13(s12, s23), minkowski2(v1 + v3), rtol=1e-10, atol=1e-10)
    assert bool(d.contains(s12, s23).all())


@pytest.mark.parametrize("masses", [LC_MASSES, (1.81, 0.1396, 0.1396, 0.1396)])
def test_dalitz_jacobian_matches_autograd_and_inverse(masses):
    d = DalitzPlot(*masses)
    u = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    _, _, jac = d.map(u)
    def invariants(v):
        return torch.stack(d.map(v[None])[:2])[:, 0]

    for i in range(len(u)):
        j = torch.autograd.functional.jacobian(invariants, u[i])
        assert abs(torch.det(j).abs().item() - jac[i].item()) < 1e-9 * jac[i].item()
    s12, s23, _ = d.map(u)
    torch.testing.assert_close(d.inverse(s12, s23), u, rtol=0, atol=1e-12)


def test_dalitz_area_massless_is_half_m4():
    # s12 + s23 <= M^2, s12, s23 >= 0: a triangle of area M^4 / 2
    assert DalitzPlot(2.0, 0.0, 0.0, 0.0).area() == pytest.approx(8.0, rel=1e-10)
    d = DalitzPlot(*LC_MASSES)
    u = torch.rand(400_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    jac = d.map(u)[2]
    assert jac.mean().item() == pytest.approx(d.area(), abs=5 * jac.std().item() / 630)


def test_dalitz_bad_input():
    with pytest.raises(ConfigError, match="closed"):
        DalitzPlot(1.0, 0.5, 0.4, 0.2)
    with pytest.raises(ConfigError, match=">= 0"):
        DalitzPlot(1.0, -0.1, 0.1, 0.1)
    with pytest.raises(ShapeError):
        DalitzPlot(*LC_MASSES).map(torch.rand(4, 3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="pair"):
        DalitzPlot(*LC_MASSES).bounds("11")


# ------------------------------------------------------------------ pi(1800)
def composite_gauss(a: float, b: float, panels: int, nodes: int = 16):
    """Nodes and weights of composite Gauss-Legendre quadrature on [a, b]."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    edges = np.linspace(a, b, panels + 1)
    h = np.diff(edges)[:, None] / 2
    return (edges[:-1, None] + h * (x[None] + 1)).ravel(), (h * w[None]).ravel()


def test_pi1800_integral_vegas_vs_direct_quadrature():
    """int ds12 ds23 |M|^2 by VEGAS on the unit square equals a quadrature directly in
    (s12, s23), with the s23 limits at each s12 from explicit four-vectors (1280^2 nodes:
    80 panels were measured to change the result by 1.5e-6 relative from 40)."""
    f = pi1800()
    d = f.dalitz

    @vegas.lbatchintegrand
    def fv(x):
        return f(torch.from_numpy(np.ascontiguousarray(x))).numpy()

    integ = vegas.Integrator([[0, 1], [0, 1]], ran_array_generator=np.random.default_rng(1).random)
    integ(fv, nitn=10, neval=20_000)
    res = integ(fv, nitn=10, neval=50_000)

    lo, hi = d.bounds("12")
    s12, w12 = composite_gauss(lo, hi, 80)
    t, wt = composite_gauss(0.0, 1.0, 80)
    s12 = torch.from_numpy(s12)
    edge = torch.stack((torch.zeros_like(s12), torch.ones_like(s12)), 1)
    limits = []
    for k in range(2):  # cos(theta) = +1 and -1: the s23 limits at each s12
        u = torch.stack(((s12 - lo) / (hi - lo), edge[:, k]), 1)
        _, v2, v3 = four_momenta(d, u)
        limits.append(minkowski2(v2 + v3))
    a, b = limits
    s12_grid = s12[:, None].expand(-1, len(t))
    s23_grid = a[:, None] + (b - a)[:, None] * torch.from_numpy(t)[None]
    values = f.intensity(s12_grid.ravel(), s23_grid.ravel(), d.s13(s12_grid, s23_grid).ravel())
    weights = torch.from_numpy(w12)[:, None] * (b - a).abs()[:, None] * torch.from_numpy(wt)[None]
    direct = (values.reshape(s12_grid.shape) * weights).sum().item()
    assert abs(res.mean - direct) < 4 * res.sdev
    assert res.sdev / res.mean < 2e-3


def test_pi1800_bose_symmetry_and_gradient():
    f = pi1800()
    d = f.dalitz
    u = torch.rand(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    s12, s23, _ = d.map(u)
    s13 = d.s13(s12, s23)
    torch.testing.assert_close(f.intensity(s12, s23, s13), f.intensity(s23, s12, s13))
    check_gradient(f, u[:20])


def test_pi1800_resonances_visible():
    """The pi+ pi- mass spectrum peaks at the rho and the f0(980)."""
    f = pi1800()
    u = torch.rand(400_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    w = f(u)
    m12 = torch.sqrt(f.invariants(u)["s12"])
    hist = torch.histogram(m12, bins=torch.linspace(0.28, 1.68, 71, dtype=torch.float64),
                           weight=w).hist  # fmt: skip
    centres = torch.linspace(0.29, 1.67, 70)
    near = {m: hist[(centres - m).abs().argmin()] for m in (0.775, 0.99)}
    between = hist[(centres - 0.6).abs().argmin()]
    assert all(v > 1.5 * between for v in near.values())


def test_pi1800_bad_parameters():
    with pytest.raises(ConfigError, match="width"):
        Pi1800Parameters(isobars=(Resonance("x", 0.8, -0.1, 0, 1.0),))
    with pytest.raises(ConfigError, match="spin"):
        Pi1800Parameters(isobars=(Resonance("x", 0.8, 0.1, 2, 1.0),))
    with pytest.raises(ConfigError, match="closed"):
        pi1800(Pi1800Parameters(mass=0.3))


# ------------------------------------------------------------------ Lambda_c
def check_gradient(f, u: torch.Tensor, h: float = 1e-6) -> None:
    """Autograd gradient of log f at u (n, 2) equals central finite differences."""
    ug = u.clone().requires_grad_(True)
    torch.log(f(ug)).sum().backward()
    eye = torch.eye(2, dtype=torch.float64)
    fd = torch.stack([(torch.log(f(u + h * eye[i])) - torch.log(f(u - h * eye[i]))) / (2 * h)
                      for i in range(2)], 1)  # fmt: skip
    torch.testing.assert_close(ug.grad, fd, rtol=1e-5, atol=1e-5)


def test_lc_gradient_matches_finite_differences(lc):
    u = torch.rand(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    check_gradient(lc, 0.02 + 0.96 * u)


def test_lc_bridge_equals_numpy_lambdify(lc):
    """The JAX bridge (padded, bucketed) and a plain numpy lambdify of the expression agree,
    with the package's numbering sigma1 = m^2(K pi), sigma2 = m^2(p K), sigma3 = m^2(p pi)."""
    import sympy as sp

    expr, masses = lc_module.build_expression(progress=False)
    syms = sorted(expr.free_symbols, key=str)
    numpy_fn = sp.lambdify(syms, expr, modules="numpy", cse=True)
    assert masses["m1"] == pytest.approx(0.938272046) and masses["m3"] == pytest.approx(0.493677)
    u = torch.rand(3001, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    inv = lc.invariants(u)
    v1, v2, v3 = four_momenta(lc.dalitz, u)  # 1 = p, 2 = K, 3 = pi
    sigma1 = minkowski2(v2 + v3).numpy()
    sigma2 = minkowski2(v1 + v2).numpy()
    sigma3 = minkowski2(v1 + v3).numpy()
    ref = np.real(numpy_fn(sigma1, sigma2, sigma3))
    got = lc.intensity(inv["s12"], inv["s23"], inv["s13"]).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-8)


def test_lc_integral_mapping_vs_box(lc):
    """int |M|^2 over the Dalitz plot: the unit-square mapping (with its Jacobian) and a
    rectangular box in (s12, s23) with the region's indicator (no Jacobian) agree."""
    d = lc.dalitz
    gen = torch.Generator().manual_seed(10)
    n = 400_000
    u = torch.rand(n, 2, dtype=torch.float64, generator=gen)
    w = lc(u)
    a = (w.mean().item(), w.std().item() / math.sqrt(n))
    (lo1, hi1), (lo2, hi2) = d.bounds("12"), d.bounds("23")
    r = torch.rand(n, 2, dtype=torch.float64, generator=gen)
    s12, s23 = lo1 + r[:, 0] * (hi1 - lo1), lo2 + r[:, 1] * (hi2 - lo2)
    inside = d.contains(s12, s23)
    wb = torch.zeros(n, dtype=torch.float64)
    si, ti = s12[inside], s23[inside]
    wb[inside] = lc.intensity(si, ti, d.s13(si, ti)) * (hi1 - lo1) * (hi2 - lo2)
    b = (wb.mean().item(), wb.std().item() / math.sqrt(n))
    assert abs(a[0] - b[0]) < 4 * math.hypot(a[1], b[1])
    assert inside.to(torch.float64).mean().item() * (hi1 - lo1) * (hi2 - lo2) == pytest.approx(
        d.area(), rel=0.01
    )


def test_lc_resonances_where_lhcb_sees_them(lc):
    """Lambda(1520) in m(pK) and K*(892) in m(K pi): the variables are not mixed up."""
    u = torch.rand(400_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    w = lc(u)
    inv = lc.invariants(u)
    for key, peak, lo, hi in (("s12", 1.5195, 1.44, 2.14), ("s23", 0.8955, 0.64, 1.34)):
        m = torch.sqrt(inv[key])
        edges = torch.linspace(lo, hi, 71, dtype=torch.float64)
        hist = torch.histogram(m, bins=edges, weight=w).hist
        centre = 0.5 * (edges[:-1] + edges[1:])
        assert abs(centre[hist.argmax()].item() - peak) < 0.02, key


def test_lc_cache_is_used_and_damaged_cache_rebuilt(lc, tmp_path, monkeypatch):
    import polarimetry

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert lc_module.cache_dir() == tmp_path / "hepflows"
    version = lc_module._package_version()
    path = tmp_path / "hepflows" / f"lc2pkpi-default-amplitude-model-{version}.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a pickle")

    class Rebuilt(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Rebuilt

    monkeypatch.setattr(polarimetry, "published_model", refuse)
    with pytest.raises(Rebuilt):  # the damaged file is not trusted: a rebuild starts
        lc_module.build_expression(progress=False)
    assert not path.exists()
    # a valid cache file is read without building
    import pickle

    path.write_bytes(pickle.dumps(("expr", {"m0": 1.0})))
    assert lc_module.build_expression(progress=False) == ("expr", {"m0": 1.0})


def test_lc_unknown_model_and_missing_package(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="published models"):
        lc_module.build_expression("no such model", progress=False)

    def missing(name):
        raise lc_module.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(lc_module.metadata, "version", missing)
    with pytest.raises(ConfigError, match="pip install"):
        lc2pkpi(progress=False)


# ------------------------------------------------------------------ JAX bridge
@pytest.mark.parametrize("n", [1, 1025, MAX_BUCKET + 7])
def test_jax_bridge_values_and_gradients(n):
    import jax.numpy as jnp

    fn = JaxFunction(lambda a, b: jnp.sin(a) * b**2, pad=(0.0, 1.0))
    gen = torch.Generator().manual_seed(n)
    a = torch.rand(n, dtype=torch.float64, generator=gen).requires_grad_(True)
    b = torch.rand(n, dtype=torch.float64, generator=gen).requires_grad_(True)
    out = fn(a, b)
    torch.testing.assert_close(out, torch.sin(a) * b**2)
    out.sum().backward()
    torch.testing.assert_close(a.grad, torch.cos(a.detach()) * b.detach() ** 2)
    torch.testing.assert_close(b.grad, 2 * torch.sin(a.detach()) * b.detach())
    with torch.no_grad():
        torch.testing.assert_close(fn(a, b), out.detach())


# ------------------------------------------------------------------ events
def test_momenta_conserve_and_orientation_is_uniform():
    from scipy import stats

    f = pi1800()
    d = f.dalitz
    u = torch.rand(20_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(12))
    p = d.momenta(u, torch.Generator().manual_seed(13))
    total = p.sum(1)
    rest = torch.tensor([d.M, 0.0, 0.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(total, rest.expand_as(total))
    torch.testing.assert_close(minkowski2(p.reshape(-1, 4)).reshape(-1, 3),
                               torch.tensor([d.m1**2, d.m2**2, d.m3**2],
                                            dtype=torch.float64).expand(len(u), 3),
                               rtol=1e-9, atol=1e-9)  # fmt: skip
    inv = f.invariants(u)
    torch.testing.assert_close(minkowski2(p[:, 0] + p[:, 1]), inv["s12"])
    torch.testing.assert_close(minkowski2(p[:, 1] + p[:, 2]), inv["s23"])
    # unpolarised: the direction of particle 1 is uniform on the sphere
    cos = p[:, 0, 3] / p[:, 0, 1:].norm(dim=1)
    phi = torch.atan2(p[:, 0, 2], p[:, 0, 1])
    assert stats.kstest(cos.numpy(), stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert stats.kstest(phi.numpy(), stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3


def test_generate_decay_writes_lhe_that_reads_back(tmp_path):
    from hepflows.io import read_events
    from hepflows.physics.generation import generate_decay

    f = pi1800()
    out = tmp_path / "pi.lhe"
    saved = tmp_path / "fab.safetensors"
    run = generate_decay(f, 500, out=out, train_calls=20_000, calls=20_000, seed=1,
                         integrator=saved, progress=False)  # fmt: skip
    assert run.trained and saved.exists()
    density, gradient = run.training_calls
    assert 0 < gradient <= density and density + gradient <= 20_000
    init, events = read_events(out)
    assert len(events) == 500
    assert init.initInfo.beamA == -9010211
    for ev in events[:50]:
        ids = [p.id for p in ev.particles]
        assert ids == [-9010211, -211, 211, -211]
        daughters = ev.particles[1:]
        assert sum(p.e for p in daughters) == pytest.approx(f.dalitz.M, rel=1e-7)
        assert abs(sum(p.px for p in daughters)) < 1e-7  # LHE keeps 9 digits
    # the saved integrator is loaded, not retrained, and gives the same integral
    again = generate_decay(f, 0, calls=20_000, seed=1, integrator=saved, progress=False)
    assert not again.trained and again.training_calls is None
    assert abs(again.result.value - run.result.value) < 5 * math.hypot(again.result.error,
                                                                        run.result.error)
    with pytest.raises(ConfigError, match="method"):
        generate_decay(f, 10, method="vegas", progress=False)


def test_cli_generate_decay(tmp_path):
    from typer.testing import CliRunner

    from hepflows.cli import app

    runner = CliRunner()
    out, png = tmp_path / "d.h5", tmp_path / "d.png"
    res = runner.invoke(app, ["generate", "decay", "pi1800", "--events", "300", "--train-calls",
                              "2e4", "--calls", "2e4", "--out", str(out), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert out.exists() and png.stat().st_size > 1000
    assert "gradient evaluations" in res.output
    bad = runner.invoke(app, ["generate", "decay", "omega"])
    assert bad.exit_code != 0
