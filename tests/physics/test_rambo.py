"""Flat n-body phase space (RAMBO on diet + massive rescaling): round trips, Jacobians, volumes."""

import math

import numpy as np
import pytest
import torch

from helpers import meta_default
from hepflows import ConfigError, InputError
from hepflows.physics.rambo import RamboOnDiet, mass_cdf, mass_cdf_inverse, massless_volume

SQRT_S = 1000.0
MW, MB = 80.41900244575616, 4.7
CASES = {
    "2 massless": [0.0, 0.0],
    "2 massive": [173.0, 80.0],
    "3 massless": [0.0, 0.0, 0.0],
    "3 massive": [100.0, 0.0, 50.0],
    "4 massless": [0.0] * 4,
    "4 WbWb": [MW, MB, MW, MB],
    "5 mixed": [0.0, 10.0, 91.0, 0.0, 300.0],
}


def _u(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """Uniform points kept 1e-5 away from the faces, (n, d) float64."""
    gen = torch.Generator().manual_seed(seed)
    return 1e-5 + (1 - 2e-5) * torch.rand(n, d, dtype=torch.float64, generator=gen)


def _kallen(a, b, c):
    return a * a + b * b + c * c - 2 * a * b - 2 * a * c - 2 * b * c


def _phi2(s, m1, m2):
    """Two-body phase-space volume lambda^(1/2)(s, m1^2, m2^2) / (8 pi s) (numpy, elementwise)."""
    return np.sqrt(np.clip(_kallen(s, m1**2, m2**2), 0, None)) / (8 * np.pi * s)


def _nodes(a, b, n=96):
    """Gauss-Legendre nodes and weights for int_a^b ds via s = a + (b - a)(1 - cos t) / 2, which
    smooths the square-root thresholds at both ends (a, b may be arrays)."""
    x, w = np.polynomial.legendre.leggauss(n)
    t = (x + 1) * np.pi / 2
    a, b = np.asarray(a)[..., None], np.asarray(b)[..., None]
    return a + (b - a) * (1 - np.cos(t)) / 2, (b - a) * np.sin(t) / 2 * w * np.pi / 2


# ----------------------------------------------------------------- maps
@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_conservation_and_masses(name):
    masses = CASES[name]
    ps = RamboOnDiet(SQRT_S, masses)
    u = _u(4000, ps.dims, seed=len(masses))
    p, w = ps(u)
    assert p.shape == (4000, len(masses), 4) and w.shape == (4000,)
    total = torch.tensor([SQRT_S, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert (p.sum(1) - total).abs().max() < 1e-12 * SQRT_S
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    assert (m2 - torch.tensor(masses, dtype=torch.float64) ** 2).abs().max() < 1e-12 * SQRT_S**2
    assert (p[..., 0] > 0).all() and (w > 0).all()
    assert (ps.inverse(p) - u).abs().max() < 1e-9
    p_again, w_again = ps(ps.inverse(p))
    assert torch.allclose(p_again, p, rtol=0, atol=1e-9) and torch.allclose(w_again, w)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_mass_cdf_inverse_and_its_derivative(k):
    r = _u(2000, 1, seed=k)[:, 0].requires_grad_(True)
    x = mass_cdf_inverse(r, k)
    assert ((x > 0) & (x < 1)).all()
    assert (mass_cdf(x, k) - r).abs().max() < 1e-14
    (grad,) = torch.autograd.grad(x.sum(), r)
    slope = k * (k + 1) * x ** (k - 1) * (1 - x)  # dF/dx, so dx/dr = 1 / slope
    assert torch.allclose(grad, 1 / slope.detach(), rtol=1e-9)


# ----------------------------------------------------------------- Jacobians
def _parametrisation(p: torch.Tensor) -> torch.Tensor:
    """(n, 4) momenta -> 3n - 4 coordinates: the 3-momenta of particles 1 .. n-2, then the
    polar cosine and azimuth of particle n - 1 (its |p| and particle n follow from
    conservation)."""
    q = p[-2, 1:]
    cos = q[2] / torch.linalg.vector_norm(q)
    phi = torch.atan2(q[1], q[0])
    return torch.cat((p[:-2, 1:].reshape(-1), cos[None], phi[None]))


def _density_in_parametrisation(p: torch.Tensor, masses) -> float:
    """d Phi_n / d y for the coordinates y of :func:`_parametrisation` (module convention)."""
    n = len(masses)
    e = p[:, 0]
    k_vec = p[-2, 1:]
    k = torch.linalg.vector_norm(k_vec)
    big_q = p[-2, 1:] + p[-1, 1:]  # 3-momentum shared by the last two
    slope = k / e[-2] + (k - (k_vec / k) @ big_q) / e[-1]  # d(E_{n-1} + E_n) / d|k|
    rho = (2 * math.pi) ** (4 - 3 * n) / torch.prod(2 * e[:-2]) * k**2
    return float(rho / (4 * e[-2] * e[-1] * slope.abs()))


@pytest.mark.parametrize("name", ["2 massive", "3 massless", "3 massive", "4 massless", "4 WbWb"])
def test_weight_is_the_jacobian(name):
    """W(u) = |det dy/du| d Phi / dy with y an independent parametrisation of the momenta."""
    masses = CASES[name]
    ps = RamboOnDiet(SQRT_S, masses)
    u = _u(5, ps.dims, seed=11)
    _, weights = ps(u)
    for point, weight in zip(u, weights, strict=True):
        jac = torch.autograd.functional.jacobian(
            lambda v: _parametrisation(ps(v[None])[0][0]), point
        )
        p = ps(point[None])[0][0]
        expected = abs(float(torch.linalg.det(jac))) * _density_in_parametrisation(p, masses)
        assert math.isclose(float(weight), expected, rel_tol=1e-8)


def test_forward_map_is_differentiable():
    ps = RamboOnDiet(SQRT_S, [MW, MB, MW, MB])
    u = _u(3, ps.dims, seed=4).requires_grad_(True)

    def outputs(v):
        p, w = ps(v)
        return p, w / 1e5

    assert torch.autograd.gradcheck(outputs, (u,), eps=1e-7, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------- volumes
def test_massless_volume_formula():
    s = SQRT_S**2
    assert math.isclose(massless_volume(2, s), 1 / (8 * math.pi), rel_tol=1e-15)
    # Recursion Phi_n(s) = int ds'/(2 pi) Phi_2(s; 0, sqrt(s')) Phi_{n-1}(s'), by quadrature.
    for n in (3, 4, 5):
        x, w = _nodes(0.0, s)
        inner = np.array([massless_volume(n - 1, v) for v in x])
        value = float((w * _phi2(s, 0.0, np.sqrt(x)) * inner).sum()) / (2 * np.pi)
        assert math.isclose(value, massless_volume(n, s), rel_tol=1e-10)


@pytest.mark.parametrize("n", [3, 4])
def test_massless_weight_is_the_volume(n):
    ps = RamboOnDiet(SQRT_S, [0.0] * n)
    _, w = ps(_u(20000, ps.dims, seed=n))
    mean, err = float(w.mean()), float(w.std()) / math.sqrt(len(w))
    exact = (
        (2 * math.pi) ** (4 - 3 * n)
        * (math.pi / 2) ** (n - 1)
        * SQRT_S ** (2 * n - 4)
        / (math.factorial(n - 1) * math.factorial(n - 2))
    )
    assert abs(mean - exact) <= 3 * err + 1e-12 * exact  # the weight is constant: err = 0


def test_massive_two_body_weight_is_analytic():
    m1, m2 = CASES["2 massive"]
    _, w = RamboOnDiet(SQRT_S, [m1, m2])(_u(100, 2))
    assert torch.allclose(w, torch.full_like(w, float(_phi2(SQRT_S**2, m1, m2))), rtol=1e-12)


def test_massive_three_body_volume():
    m1, m2, m3 = CASES["3 massive"]
    s = SQRT_S**2
    # Phi_3 = int ds23/(2 pi) Phi_2(s; m1, sqrt(s23)) Phi_2(s23; m2, m3).
    x, w = _nodes((m2 + m3) ** 2, (SQRT_S - m1) ** 2)
    exact = float((w * _phi2(s, m1, np.sqrt(x)) * _phi2(x, m2, m3)).sum()) / (2 * np.pi)
    ps = RamboOnDiet(SQRT_S, [m1, m2, m3])
    _, weight = ps(_u(200_000, ps.dims, seed=3))
    mean, err = float(weight.mean()), float(weight.std()) / math.sqrt(len(weight))
    assert err < 3e-3 * exact and abs(mean - exact) < 3 * err


def test_massive_four_body_volume():
    """W b W b: Phi_4 = int ds_a ds_b / (2 pi)^2 Phi_2(s; m_a, m_b) Phi_2(s_a) Phi_2(s_b)."""
    m1, m2, m3, m4 = CASES["4 WbWb"]
    s = SQRT_S**2
    sa, wa = _nodes((m1 + m2) ** 2, (SQRT_S - m3 - m4) ** 2)
    sb, wb = _nodes((m3 + m4) ** 2, (SQRT_S - np.sqrt(sa)) ** 2)  # (n_a, n_b)
    inner = (wb * _phi2(s, np.sqrt(sa)[:, None], np.sqrt(sb)) * _phi2(sb, m3, m4)).sum(-1)
    exact = float((wa * _phi2(sa, m1, m2) * inner).sum()) / (2 * np.pi) ** 2
    ps = RamboOnDiet(SQRT_S, [m1, m2, m3, m4])
    _, weight = ps(_u(200_000, ps.dims, seed=5))
    mean, err = float(weight.mean()), float(weight.std()) / math.sqrt(len(weight))
    assert err < 3e-3 * exact and abs(mean - exact) < 3 * err


# ----------------------------------------------------------------- errors, devices
def test_bad_input_raises():
    ps = RamboOnDiet(SQRT_S, [MW, MB, MW, MB])
    with pytest.raises(InputError, match=r"\(N, 8\)"):
        ps(torch.rand(10, 7, dtype=torch.float64))
    with pytest.raises(InputError, match=r"\(N, 8\)"):
        ps(torch.rand(8, dtype=torch.float64))
    with pytest.raises(InputError, match=r"\(N, 4, 4\)"):
        ps.inverse(torch.rand(10, 3, 4, dtype=torch.float64))
    with pytest.raises(InputError, match="floating"):
        ps(torch.ones(2, 8, dtype=torch.int64))
    with pytest.raises(ConfigError, match="exceed"):
        RamboOnDiet(100.0, [60.0, 50.0])
    with pytest.raises(ConfigError, match="at least 2"):
        RamboOnDiet(100.0, [1.0])
    with pytest.raises(ConfigError, match=">= 0"):
        RamboOnDiet(100.0, [-1.0, 1.0])


def test_runs_on_the_inputs_device():
    ps = RamboOnDiet(SQRT_S, [MW, MB, MW, MB])
    u = _u(50, ps.dims)
    with meta_default():
        p, w = ps(u)
        back = ps.inverse(p)
    assert p.device.type == "cpu" and w.device.type == "cpu"
    assert (back - u).abs().max() < 1e-9
