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


class Rebuilt(Exception):
    pass


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty cache folder; building the model raises Rebuilt instead of taking 25 s."""
    import polarimetry

    def refuse(*args, **kwargs):
        raise Rebuilt

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(polarimetry, "published_model", refuse)
    assert lc_module.cache_dir() == tmp_path / "hepflows"
    path = lc_module.cache_path()
    version = lc_module._package_version()
    assert path == tmp_path / "hepflows" / f"lc2pkpi-default-amplitude-model-{version}.json"
    path.parent.mkdir(parents=True)
    return path


def test_lc_cache_is_used_and_damaged_cache_rebuilt(lc, empty_cache):
    path = empty_cache
    path.write_text("not json")
    with pytest.raises(Rebuilt):  # the damaged file is not trusted: a rebuild starts
        lc_module.build_expression(progress=False)
    assert not path.exists()
    # a valid cache file is read without building
    import sympy as sp

    s1, s2 = sp.Symbol("sigma1", nonnegative=True), sp.Symbol("sigma2", nonnegative=True)
    expr = sp.Abs(s1 * sp.exp(sp.I * s2) + sp.Rational(1, 3)) ** 2 + sp.Float("0.125") * sp.pi
    version = lc_module._package_version()
    assert lc_module.save_expression(path, expr, {"m0": 1.0}, lc_module.DEFAULT_MODEL, version)
    assert lc_module.build_expression(progress=False) == (expr, {"m0": 1.0})
    assert not list(path.parent.glob(".*.tmp"))  # written atomically


def test_lc_cache_round_trip_of_the_real_expression_is_exact(lc, tmp_path):
    expr, masses = lc_module.build_expression(progress=False)
    path = tmp_path / "lc.json"
    assert lc_module.save_expression(path, expr, masses, "m", "v")
    again, masses_again = lc_module.load_expression(path, "m", "v")
    assert again == expr and masses_again == masses
    with pytest.raises(ValueError, match="not a hepflows-sympy-expression file"):
        lc_module.load_expression(path, "another model", "v")  # never mixed up


def test_lc_cache_skips_expressions_it_cannot_hold(tmp_path):
    """Types outside the table (Piecewise, Dummy, unknown assumptions) are not cached."""
    import sympy as sp

    x = sp.Symbol("x")
    for expr in (sp.Piecewise((x, x > 0), (0, True)), sp.Dummy("d") + 1,
                 sp.Symbol("y", foo=True) + 1):  # fmt: skip
        assert not lc_module.save_expression(tmp_path / "c.json", expr, {}, "m", "v")
    assert not (tmp_path / "c.json").exists()


class Payload:
    """Unpickling this runs os.system: what a hostile cache file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_lc_cache_never_runs_code_from_the_file(empty_cache, tmp_path):
    """A hostile pickle (where the cache used to be a pickle, or in the cache file itself) and
    JSON nodes naming eval, __import__ or a code string are refused and rebuilt, not run."""
    import json
    import pickle

    path, marker = empty_cache, tmp_path / "pwned"
    old_pickle = path.with_suffix(".pkl")
    version = lc_module._package_version()
    header = {"format": lc_module.CACHE_FORMAT, "version": lc_module.CACHE_VERSION,
              "model": lc_module.DEFAULT_MODEL, "package_version": version, "masses": {}}
    code = f"__import__('os').system('touch {marker}')"
    hostile = [
        pickle.dumps(Payload(marker)),
        json.dumps({**header, "nodes": [["eval", code]]}).encode(),
        json.dumps({**header, "nodes": [["__import__", "os"]]}).encode(),
        json.dumps({**header, "nodes": [["Float", code, 53]]}).encode(),
        json.dumps({**header, "nodes": [["Symbol", "x", {"__class__": True}]]}).encode(),
        json.dumps({**header, "nodes": [["Integer", 1], ["Add", [0, 5]]]}).encode(),
        json.dumps({**header, "nodes": [["Constant", "__builtins__"]]}).encode(),
    ]  # fmt: skip
    for content in hostile:
        old_pickle.write_bytes(pickle.dumps(Payload(marker)))
        path.write_bytes(content)
        with pytest.raises(Rebuilt):
            lc_module.build_expression(progress=False)
        assert not path.exists() and not old_pickle.exists()
        assert not marker.exists(), content
    # a Symbol whose name is code stays a name: it is never evaluated
    path.write_text(json.dumps({**header, "nodes": [["Symbol", code, {}]]}))
    expr, _ = lc_module.build_expression(progress=False)
    assert str(expr) == code and not marker.exists()


def test_lc_unknown_model_and_missing_package(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="published models"):
        lc_module.build_expression("no such model", progress=False)

    def missing(name):
        raise lc_module.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(lc_module.metadata, "version", missing)
    with pytest.raises(MissingExtraError, match=r"hepflows\[amplitudes\]"):
        lc2pkpi(progress=False)
