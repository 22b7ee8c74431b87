"""Helicity building blocks: Dirac algebra, spinors, polarisations, vertices, propagators."""

import math

import pytest
import torch

from hepflows import InputError
from hepflows.physics.helicity import (
    chiral_couplings,
    dirac_matrices,
    fermion_propagator,
    ffv_current,
    gamma5,
    lower_index,
    metric,
    projector,
    sigma_bar_dot,
    sigma_dot,
    slash,
    spinor_u,
    spinor_ubar,
    spinor_v,
    spinor_vbar,
    vector_propagator,
    vector_wavefunction,
)

C = torch.complex128
EYE = torch.eye(4, dtype=C)
G = torch.diag(metric())


def _momenta(mass: float, n: int = 50, seed: int = 0) -> torch.Tensor:
    """On-shell momenta (n + 4, 4): random 3-momenta (|p| up to ~300 GeV) and the special
    directions (along +z, along -z, on the x axis, and at rest if massive)."""
    gen = torch.Generator().manual_seed(seed)
    vec = 100 * torch.randn(n, 3, dtype=torch.float64, generator=gen)
    special = torch.tensor([[0.0, 0.0, 50.0], [0.0, 0.0, -50.0], [30.0, 0.0, 0.0],
                            [0.0, 0.0, 0.0] if mass > 0 else [1.0, 2.0, -3.0]],
                           dtype=torch.float64)  # fmt: skip
    vec = torch.cat((vec, special))
    e = torch.sqrt(mass**2 + (vec**2).sum(-1))
    return torch.cat((e[:, None], vec), dim=-1)


def _outer(col: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    return col[..., :, None] * row[..., None, :]


# ----------------------------------------------------------------- Dirac algebra
def test_clifford_algebra_gamma5_and_projectors():
    gam = dirac_matrices()
    for mu in range(4):
        for nu in range(4):
            anti = gam[mu] @ gam[nu] + gam[nu] @ gam[mu]
            assert torch.equal(anti, 2 * G[mu, nu] * EYE)
    assert torch.allclose(1j * gam[0] @ gam[1] @ gam[2] @ gam[3], gamma5())
    assert torch.equal(projector("L") + projector("R"), EYE)
    assert torch.equal(projector("L"), (EYE - gamma5()) / 2)
    with pytest.raises(InputError, match="chirality"):
        projector("X")


def test_slash_and_sigma_blocks():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(7, 4, dtype=torch.float64, generator=gen)
    ref = torch.einsum("mab,nm->nab", dirac_matrices(), lower_index(a).to(C))
    assert torch.allclose(slash(a), ref, atol=1e-14)
    assert torch.equal(slash(a)[:, :2, 2:], sigma_dot(a))
    assert torch.equal(slash(a)[:, 2:, :2], sigma_bar_dot(a))
    a2 = (lower_index(a) * a).sum(-1)
    assert torch.allclose(slash(a) @ slash(a), a2[:, None, None] * EYE, atol=1e-13)


# ----------------------------------------------------------------- spinors
@pytest.mark.parametrize("mass", [0.0, 4.7, 173.0])
def test_dirac_equation(mass):
    p = _momenta(mass)
    ps = slash(p)
    scale = p[:, 0, None] ** 1.5  # |u| ~ sqrt(E), pslash ~ E
    for h in (-1, 1):
        u, v = spinor_u(p, mass, h), spinor_v(p, mass, h)
        ubar, vbar = spinor_ubar(p, mass, h), spinor_vbar(p, mass, h)
        assert ((ps - mass * EYE) @ u[..., None]).squeeze(-1).abs().max(-1).values.le(
            1e-13 * scale[:, 0]).all()  # fmt: skip
        assert ((ps + mass * EYE) @ v[..., None]).squeeze(-1).abs().le(1e-13 * scale).all()
        assert (ubar[:, None, :] @ (ps - mass * EYE)).squeeze(1).abs().le(1e-13 * scale).all()
        assert (vbar[:, None, :] @ (ps + mass * EYE)).squeeze(1).abs().le(1e-13 * scale).all()
        # Normalisation ubar u = 2m, vbar v = -2m.
        assert torch.allclose((ubar * u).sum(-1).real, torch.full_like(p[:, 0], 2 * mass),
                              atol=1e-11)  # fmt: skip
        assert torch.allclose((vbar * v).sum(-1).real, torch.full_like(p[:, 0], -2 * mass),
                              atol=1e-11)  # fmt: skip


@pytest.mark.parametrize("mass", [0.0, 4.7, 173.0])
def test_completeness(mass):
    p = _momenta(mass)
    ps = slash(p)
    u_sum = sum(_outer(spinor_u(p, mass, h), spinor_ubar(p, mass, h)) for h in (-1, 1))
    v_sum = sum(_outer(spinor_v(p, mass, h), spinor_vbar(p, mass, h)) for h in (-1, 1))
    tol = 1e-13 * p[:, 0, None, None]
    assert (u_sum - (ps + mass * EYE)).abs().le(tol).all()
    assert (v_sum - (ps - mass * EYE)).abs().le(tol).all()


def test_helicity_and_chirality():
    p = _momenta(0.0)
    pl, pr = projector("L"), projector("R")
    # Massless: u(-1) and v(+1) are left-handed, u(+1) and v(-1) right-handed.
    for spinor, left in ((spinor_u(p, 0.0, -1), True), (spinor_u(p, 0.0, 1), False),
                         (spinor_v(p, 0.0, 1), True), (spinor_v(p, 0.0, -1), False)):  # fmt: skip
        proj = (pl if left else pr) @ spinor[..., None]
        assert torch.allclose(proj.squeeze(-1), spinor, atol=1e-12)
    # Massive: helicity eigenstates, (Sigma . p_hat) u(lambda) = lambda u(lambda).
    p = _momenta(4.7)[:-1]  # not at rest
    gam = dirac_matrices()
    spin = [1j * gam[2] @ gam[3], 1j * gam[3] @ gam[1], 1j * gam[1] @ gam[2]]  # Sigma^k
    phat = p[:, 1:] / torch.linalg.vector_norm(p[:, 1:], dim=-1, keepdim=True)
    helicity_op = sum(phat[:, k, None, None].to(C) * spin[k] for k in range(3))
    for h in (-1, 1):
        u = spinor_u(p, 4.7, h)
        assert torch.allclose((helicity_op @ u[..., None]).squeeze(-1), h * u, atol=1e-11)


# ----------------------------------------------------------------- vectors
@pytest.mark.parametrize("outgoing", [True, False])
def test_polarisation_vectors(outgoing):
    mass = 80.419
    p = _momenta(mass)
    eps = torch.stack([vector_wavefunction(p, mass, h, outgoing) for h in (-1, 0, 1)], dim=1)
    # Transverse to p, normalised eps . eps* = -1, orthogonal to each other.
    assert (lower_index(eps) * p[:, None].to(C)).sum(-1).abs().max() < 1e-11
    gram = torch.einsum("nam,nbm->nab", lower_index(eps), eps.conj())
    assert torch.allclose(gram, -torch.eye(3, dtype=C).expand_as(gram), atol=1e-12)
    # Polarisation sum -g + p p / M^2.
    total = torch.einsum("nhm,nhv->nmv", eps, eps.conj())
    expect = -G + p[:, :, None] * p[:, None, :] / mass**2
    assert torch.allclose(total, expect.to(C), atol=1e-11)
    with pytest.raises(InputError, match="helicity 0 needs mass > 0"):
        vector_wavefunction(p, 0.0, 0)
    with pytest.raises(InputError, match="finite and >= 0"):
        vector_wavefunction(p, -1.0, 1)
    # Massless (gluon): transverse, p.eps = 0, and the same vectors as any mass gives.
    for h in (-1, 1):
        eps0 = vector_wavefunction(p, 0.0, h)
        assert torch.allclose(eps0, vector_wavefunction(p, mass, h))
        p_dot_eps = (eps0 * (p * G.diagonal()).to(C)).sum(-1)
        assert torch.allclose(p_dot_eps, torch.zeros(len(p), dtype=C), atol=1e-9)


# ----------------------------------------------------------------- vertices, propagators
def test_ffv_current_matches_dirac_matrices():
    gen = torch.Generator().manual_seed(2)
    bar = torch.randn(5, 3, 4, dtype=C, generator=gen)
    spinor = torch.randn(5, 1, 4, dtype=C, generator=gen)
    gl, gr = 0.3 - 0.1j, -0.7
    coupling = gl * projector("L") + gr * projector("R")
    ref = torch.einsum("nka,mab,nkb->nkm", bar, dirac_matrices() @ coupling,
                       spinor.expand(5, 3, 4))  # fmt: skip
    assert torch.allclose(ffv_current(bar, spinor, gl, gr), ref, atol=1e-14)
    # Vector and axial couplings: gamma^mu (v - a gamma^5).
    v, a = 0.4, -0.25
    ref = torch.einsum("nka,mab,nkb->nkm", bar, dirac_matrices() @ (v * EYE - a * gamma5()),
                       spinor.expand(5, 3, 4))  # fmt: skip
    assert torch.allclose(ffv_current(bar, spinor, *chiral_couplings(v, a)), ref, atol=1e-14)
    # A conserved vector current: ubar(p') gamma^mu u(p) contracted with (p' - p) = 0.
    p, q = _momenta(4.7, seed=3), _momenta(4.7, seed=4)
    cur = ffv_current(spinor_ubar(q, 4.7, 1), spinor_u(p, 4.7, -1), 1.0, 1.0)
    assert (lower_index(cur) * (q - p).to(C)).sum(-1).abs().max() < 1e-9


def test_propagators():
    gen = torch.Generator().manual_seed(5)
    p = 200 * torch.randn(9, 4, dtype=torch.float64, generator=gen)
    mass, width = 173.0, 1.4915
    p2 = (lower_index(p) * p).sum(-1)
    # (pslash + m) (pslash - m) = p^2 - m^2: S(p) (pslash - m) = (p^2 - m^2) / (p^2 - m^2 + i m G).
    ratio = (p2 - mass**2) / torch.complex(p2 - mass**2, torch.full_like(p2, mass * width))
    prod = fermion_propagator(p, mass, width) @ (slash(p) - mass * EYE)
    assert torch.allclose(prod, ratio[:, None, None] * EYE, atol=1e-12)
    # q_mu D^{mu nu}(q) = q^nu (q^2 - M^2) / (M^2 (q^2 - M^2 + i M G)) in unitary gauge.
    mz, wz = 91.188, 2.441404
    d = vector_propagator(p, mz, wz)
    lhs = torch.einsum("nm,nmv->nv", lower_index(p).to(C), d)
    factor = (p2 - mz**2) / (mz**2 * torch.complex(p2 - mz**2, torch.full_like(p2, mz * wz)))
    assert torch.allclose(lhs, factor[:, None] * p.to(C), rtol=1e-12, atol=1e-18)
    photon = vector_propagator(p, 0.0)
    assert torch.allclose(photon, (-G / p2[:, None, None]).to(C))


# ----------------------------------------------------------------- gradients, errors
@pytest.mark.parametrize("mass", [0.0, 4.7])
def test_wavefunctions_are_differentiable(mass):
    gen = torch.Generator().manual_seed(6)
    vec = (50 * torch.randn(3, 3, dtype=torch.float64, generator=gen)).requires_grad_(True)

    def components(v):
        p = torch.cat((torch.sqrt(mass**2 + (v**2).sum(-1, keepdim=True)), v), dim=-1)
        out = [spinor_u(p, mass, 1), spinor_v(p, mass, -1), spinor_ubar(p, mass, -1)]
        if mass > 0:
            out += [vector_wavefunction(p, 80.0 + mass, h) for h in (-1, 0, 1)]
        return torch.view_as_real(torch.stack(out))

    assert torch.autograd.gradcheck(components, (vec,), eps=1e-6, atol=1e-7, rtol=1e-6)


def test_bad_input_raises():
    with pytest.raises(InputError, match=r"\(\.\.\., 4\)"):
        spinor_u(torch.zeros(3, 3, dtype=torch.float64), 0.0, 1)
    with pytest.raises(InputError, match="float64"):
        spinor_u(torch.zeros(3, 4), 0.0, 1)
    with pytest.raises(InputError, match="helicity"):
        spinor_v(torch.ones(3, 4, dtype=torch.float64), 0.0, 0)
    with pytest.raises(InputError, match="mass"):
        spinor_u(torch.ones(3, 4, dtype=torch.float64), -1.0, 1)
    with pytest.raises(InputError, match="spinors"):
        ffv_current(torch.zeros(2, 3, dtype=C), torch.zeros(2, 4, dtype=C), 1.0, 1.0)
    assert math.isfinite(float(slash(torch.zeros(4)).abs().sum()))
