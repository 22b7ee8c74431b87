"""Lambda_c+ -> p K- pi+: bridge vs numpy lambdify, gradients, integral, resonances, cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from decay_helpers import check_gradient, four_momenta, minkowski2
from hepflows.errors import ConfigError, MissingExtraError
from hepflows.physics.decays import lambda_c as lc_module
from hepflows.physics.decays import lc2pkpi


@pytest.fixture(scope="module")
def lc():
    """The LHCb Lambda_c model (built once into the user cache: ~25 s the first time)."""
    return lc2pkpi(progress=False)


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
    with pytest.raises(MissingExtraError, match=r"hepflows\[amplitudes\]"):
        lc2pkpi(progress=False)
