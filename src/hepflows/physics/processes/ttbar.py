"""e+ e- -> gamma* / Z -> t tbar -> W+ b W- bbar at leading order: an 8-D target on [0, 1]^8.

The "8-D collider" case of FAB-meets-diffME (Kofler et al., arXiv:2411.16234): two
diagrams (photon and Z in the s-channel), off-shell tops with Breit-Wigner propagators
(pslash + m_t) / (p^2 - m_t^2 + i m_t G_t), the W bosons stable external particles, all
2 * 2 * 3 * 2 * 3 * 2 = 144 helicity combinations summed (vectorised), averaged over the
4 initial ones, colour factor N_c = 3, massless electrons, no cuts. Helicity amplitudes
from :mod:`hepflows.physics.helicity` (chiral representation; unitary-gauge Z, whose
q^mu q^nu term vanishes on the conserved massless electron current).

Parameters (MadGraph "sm" defaults; GeV):

    sqrt(s) = 1000, m_t = 173, G_t = 1.4915, m_b = 4.7, M_Z = 91.188, G_Z = 2.441404,
    1 / alpha = 132.507, G_F = 1.16639e-5 GeV^-2, V_tb = 1;
    M_W = sqrt(M_Z^2 / 2 + sqrt(M_Z^4 / 4 - pi alpha M_Z^2 / (sqrt(2) G_F))) = 80.41900 GeV,
    sin^2 theta_W = 1 - M_W^2 / M_Z^2 = 0.2222465, e = sqrt(4 pi alpha), g = e / sin theta_W.

Couplings (vertex gamma^mu (g_L P_L + g_R P_R)): photon e Q_f; Z
e (T3_f - Q_f sin^2 theta_W) / (sin theta_W cos theta_W) (left) and
-e Q_f sin^2 theta_W / (sin theta_W cos theta_W) (right); W: g / sqrt(2) V_tb, left only.
Propagators: photon -g / q^2, Z (-g + q q / M_Z^2) / (q^2 - M_Z^2 + i M_Z G_Z) (fixed width).

Momenta: (n, 6, 4) = (e-, e+, W+, b, W-, bbar), (E, px, py, pz) in GeV; in
:meth:`EEToTTbarWWbb.__call__` the e- moves along +z, the e+ along -z, in the
centre-of-mass frame. The density on the unit cube is

    f(u) = |M|^2(p(u)) W(u) / (2 s) * 0.3893793721e9 pb GeV^2      (pb),

with W the flat phase-space weight of :class:`hepflows.physics.rambo.RamboOnDiet`
(final-state order W+, b, W-, bbar); its integral over [0, 1]^8 is sigma in pb.

Reference numbers (tests/physics/test_ttbar.py): sigma(e+ e- -> t tbar) = 0.166419 pb
on shell, Gamma(t -> W b) = 1.49147 GeV, narrow-width sigma BR^2 = 0.166413 pb; the
off-shell integral is 0.17708(9) pb, +6.4 %, an excess linear in Gamma_t (the t* -> W b
width grows like m*^3 in the tails) that vanishes as Gamma_t -> 0. Uniform points on the
cube have ESS/N = 3e-5 (max/mean weight 1.6e5): two narrow ridges, curved in these
variables (VEGAS's separable grid does not follow them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.physics.helicity import (
    fermion_propagator,
    ffv_current,
    lower_index,
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
from hepflows.physics.rambo import RamboOnDiet

__all__ = ["EEToTTbarWWbb", "TTbarParameters", "top_width", "ttbar_cross_section"]

#: GeV^-2 -> pb.
GEV2_TO_PB = 0.3893793721e9
#: Colour factor: sum over the top's colour, delta_ii = N_c.
N_COLOURS = 3
#: (charge, weak isospin T3 of the left-handed field) of the electron and the top.
ELECTRON = (-1.0, -0.5)
TOP = (2.0 / 3.0, 0.5)


@dataclass(frozen=True)
class TTbarParameters:
    """Parameters of e+ e- -> t tbar -> W+ b W- bbar (GeV; MadGraph "sm" defaults).

    Attributes:
        sqrt_s: collider energy.
        mt, wt: top mass and total width (the width in the propagators).
        mb: b-quark mass.
        mz, wz: Z mass and width.
        alpha_inv: 1 / alpha (fixed, at M_Z).
        gf: Fermi constant in GeV^-2.
        vtb: CKM element V_tb.
        edge: unit-cube points are clamped to [edge, 1 - edge] in the density.
    """

    sqrt_s: float = 1000.0
    mt: float = 173.0
    wt: float = 1.4915
    mb: float = 4.7
    mz: float = 91.188
    wz: float = 2.441404
    alpha_inv: float = 132.507
    gf: float = 1.16639e-5
    vtb: float = 1.0
    edge: float = 1e-5

    @property
    def alpha(self) -> float:
        """The fine-structure constant."""
        return 1 / self.alpha_inv

    @property
    def mw(self) -> float:
        """M_W from alpha, G_F and M_Z (tree level, MadGraph's sm model): 80.419 GeV."""
        mz2 = self.mz**2
        disc = mz2**2 / 4 - math.pi * self.alpha * mz2 / (math.sqrt(2) * self.gf)
        if disc <= 0:
            raise ConfigError(f"no real M_W for alpha = 1/{self.alpha_inv}, G_F = {self.gf}, "
                              f"M_Z = {self.mz}: check the electroweak inputs")  # fmt: skip
        return math.sqrt(mz2 / 2 + math.sqrt(disc))

    @property
    def sw2(self) -> float:
        """sin^2 theta_W = 1 - M_W^2 / M_Z^2."""
        return 1 - self.mw**2 / self.mz**2

    @property
    def e(self) -> float:
        """The electric charge sqrt(4 pi alpha)."""
        return math.sqrt(4 * math.pi * self.alpha)

    @property
    def g(self) -> float:
        """The SU(2) coupling e / sin theta_W (g^2 / (8 M_W^2) = G_F / sqrt(2) exactly here)."""
        return self.e / math.sqrt(self.sw2)

    def z_couplings(self, charge: float, isospin: float) -> tuple[float, float]:
        """(g_L, g_R) of the Z to a fermion of charge Q and isospin T3.

        The vertex is gamma^mu (g_L P_L + g_R P_R).
        """
        norm = self.e / math.sqrt(self.sw2 * (1 - self.sw2))
        return norm * (isospin - charge * self.sw2), -norm * charge * self.sw2


def top_width(params: TTbarParameters | None = None) -> float:
    """Gamma(t -> W+ b) at tree level (GeV), m_b included, from the same couplings.

        Gamma = G_F m_t^3 |V_tb|^2 / (8 sqrt(2) pi) lambda^(1/2)(1, w, b)
                [(1 - b)^2 + w (1 + b) - 2 w^2],   w = M_W^2 / m_t^2, b = m_b^2 / m_t^2,

    (G_F / sqrt(2) = g^2 / (8 M_W^2) exactly with these inputs), which for m_b = 0 is
    G_F m_t^3 / (8 sqrt(2) pi) (1 - w)^2 (1 + 2 w). 1.49147 GeV at the defaults.
    """
    p = params or TTbarParameters()
    w, b = p.mw**2 / p.mt**2, p.mb**2 / p.mt**2
    lam = 1 + w * w + b * b - 2 * w - 2 * b - 2 * w * b
    if lam <= 0 or p.mt <= p.mw + p.mb:
        raise ConfigError(f"t -> W b is closed for m_t = {p.mt}, M_W = {p.mw}, m_b = {p.mb}")
    g2_over_8mw2 = p.g**2 / (8 * p.mw**2)  # = G_F / sqrt(2)
    return (g2_over_8mw2 * p.mt**3 * p.vtb**2 / (8 * math.pi) * math.sqrt(lam)
            * ((1 - b) ** 2 + w * (1 + b) - 2 * w * w))  # fmt: skip


def _effective_couplings(params: TTbarParameters) -> dict[str, tuple[complex, complex]]:
    """Per electron chirality, the top's (vector, axial) effective couplings at s (GeV^-2).

    V_i = sum_B g_i^{e,B} (g_L^{t,B} + g_R^{t,B}) / 2 P_B(s), A_i likewise with
    (g_L - g_R) / 2, over B = photon (P = 1/s), Z (P = 1 / (s - M^2 + i M G)).
    """
    s = params.sqrt_s**2
    e = params.e
    ze, zt = params.z_couplings(*ELECTRON), params.z_couplings(*TOP)
    p_photon = 1 / s
    p_z = 1 / complex(s - params.mz**2, params.mz * params.wz)
    out = {}
    for i in (0, 1):  # electron chirality L, R
        ge_photon, ge_z = e * ELECTRON[0], ze[i]
        vector = ge_photon * e * TOP[0] * p_photon + ge_z * (zt[0] + zt[1]) / 2 * p_z
        axial = ge_z * (zt[0] - zt[1]) / 2 * p_z
        out["LR"[i]] = (vector, axial)
    return out


def ttbar_cross_section(params: TTbarParameters | None = None) -> float:
    """LO sigma(e+ e- -> t tbar) in pb, on-shell tops, photon and Z (analytic).

        sigma = N_c s beta / (24 pi) sum_{i = L, R} [|V_i|^2 (3 - beta^2) / 2 + |A_i|^2 beta^2],

    beta = sqrt(1 - 4 m_t^2 / s), with the effective couplings V_i, A_i of the top current
    gamma^mu (V_i - A_i gamma^5) for electron chirality i (photon and Z propagators
    included). For the photon alone this is N_c (4 pi alpha^2 Q_t^2 / 3 s) beta (3 - beta^2) / 2.
    """
    p = params or TTbarParameters()
    s = p.sqrt_s**2
    if p.sqrt_s <= 2 * p.mt:
        raise ConfigError(f"sqrt_s = {p.sqrt_s} GeV is below the t tbar threshold 2 m_t")
    beta = math.sqrt(1 - 4 * p.mt**2 / s)
    total = 0.0
    for vector, axial in _effective_couplings(p).values():
        total += abs(vector) ** 2 * (3 - beta**2) / 2 + abs(axial) ** 2 * beta**2
    return N_COLOURS * s * beta / (24 * math.pi) * total * GEV2_TO_PB


class EEToTTbarWWbb:
    """The density of e+ e- -> t tbar -> W+ b W- bbar on [0, 1]^8 (pb), differentiable.

    Call it on (n, 8) unit-cube points to get (n,) d sigma / du in pb (its integral is
    sigma); :meth:`log_prob` is its logarithm, :meth:`matrix_element_squared` the
    spin-summed and averaged |M|^2 of momenta (n, 6, 4) = (e-, e+, W+, b, W-, bbar).

    Args:
        params: :class:`TTbarParameters` (default: the values in the module docstring).
        chunk_size: events per block inside :meth:`__call__` and
            :meth:`matrix_element_squared` (blocks that fit the CPU cache run 3-5x faster
            than one pass over 10^5 events); the results do not depend on it.
        **overrides: any field of the parameters, e.g. ``wt=1.5``.

    Example:
        >>> target = EEToTTbarWWbb()
        >>> gen = torch.Generator().manual_seed(0)
        >>> u = torch.rand(1000, 8, dtype=torch.float64, generator=gen)
        >>> density = target(u)  # (1000,) pb
        >>> grad = torch.autograd.grad(target.log_prob(u.requires_grad_()).sum(), u)[0]
    """

    dims = 8
    name = "ee_ttbar_wwbb"

    def __init__(
        self, params: TTbarParameters | None = None, chunk_size: int = 4096, **overrides: object
    ) -> None:
        params = replace(params or TTbarParameters(), **overrides)
        if not (isinstance(chunk_size, int) and chunk_size > 0):
            raise ConfigError(f"chunk_size must be a positive int, got {chunk_size!r}")
        for name in ("sqrt_s", "mt", "wt", "mz", "wz", "alpha_inv", "gf", "vtb"):
            value = getattr(params, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be finite and > 0, got {value}")
        if not (math.isfinite(params.mb) and params.mb >= 0):
            raise ConfigError(f"mb must be finite and >= 0, got {params.mb}")
        if not 0 <= params.edge < 0.5:
            raise ConfigError(f"edge must be in [0, 0.5), got {params.edge} (the papers use 1e-5)")
        if params.mt <= params.mw + params.mb:
            raise ConfigError(f"m_t = {params.mt} GeV must exceed M_W + m_b = "
                              f"{params.mw + params.mb} GeV")  # fmt: skip
        self.params = params
        self.chunk_size = chunk_size
        self.mw = params.mw
        self.phase_space = RamboOnDiet(params.sqrt_s, [self.mw, params.mb, self.mw, params.mb])
        self.exact = None  # no closed form off shell; see narrow_width_cross_section()

    # ------------------------------------------------------------- kinematics
    def beams(self, n: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Incoming e- (along +z) and e+ (along -z) momenta, each (n, 4) float64."""
        half = self.params.sqrt_s / 2
        em = torch.tensor([half, 0.0, 0.0, half], dtype=torch.float64, device=device)
        ep = torch.tensor([half, 0.0, 0.0, -half], dtype=torch.float64, device=device)
        return em.expand(n, 4), ep.expand(n, 4)

    def momenta(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """All six momenta and the phase-space weight: (n, 8) -> (n, 6, 4), (n,) GeV^4.

        u is used as given (not clamped); see :meth:`__call__`.
        """
        final, weight = self.phase_space(u)
        em, ep = self.beams(u.shape[0], u.device)
        return torch.cat((em[:, None], ep[:, None], final), dim=1), weight

    def inverse(self, p: Tensor) -> Tensor:
        """Unit-cube points of momenta (n, 6, 4) in the centre-of-mass frame -> (n, 8).

        Raises:
            InputError: momenta of the wrong shape.
        """
        p = self._check_momenta(p)
        return self.phase_space.inverse(p[:, 2:])

    # ------------------------------------------------------------- amplitudes
    def boson_currents(self, p_em: Tensor, p_ep: Tensor) -> tuple[Tensor, Tensor]:
        """The electron current through the photon and the Z, weighted by the top's couplings.

        K_B^nu = [vbar(e+, h+) gamma^mu (g_L^{e,B} P_L + g_R^{e,B} P_R) u(e-, h-)]_mu
        D_B^{mu nu}(q) for B = photon, Z and q = p(e-) + p(e+); returns
        K_L = sum_B g_L^{t,B} K_B and K_R = sum_B g_R^{t,B} K_B, the vectors the top line's
        left- and right-handed currents couple to.

        Args:
            p_em, p_ep: e- and e+ momenta, (n, 4) each.

        Returns:
            ``(K_L, K_R)``, each (n, 2, 2, 4) complex128 (upper index), indexed
            [event, h(e-), h(e+), mu], helicities in the order (-1, +1).
        """
        par = self.params
        u_em = torch.stack([spinor_u(p_em, 0.0, h) for h in (-1, 1)], dim=1)  # (n, 2, 4)
        vbar_ep = torch.stack([spinor_vbar(p_ep, 0.0, h) for h in (-1, 1)], dim=1)
        q = p_em + p_ep
        bar, spinor = vbar_ep[:, None], u_em[:, :, None]  # (n, 1, 2, 4), (n, 2, 1, 4)
        e_photon = par.e * ELECTRON[0]
        ze, zt = par.z_couplings(*ELECTRON), par.z_couplings(*TOP)
        k_photon = _contract(ffv_current(bar, spinor, e_photon, e_photon),
                             vector_propagator(q, 0.0))  # fmt: skip
        k_z = _contract(ffv_current(bar, spinor, *ze), vector_propagator(q, par.mz, par.wz))
        t_photon = par.e * TOP[0]
        return t_photon * k_photon + zt[0] * k_z, t_photon * k_photon + zt[1] * k_z

    def production_vertex(self, p_em: Tensor, p_ep: Tensor) -> Tensor:
        """The top line's s-channel vertex Kslash_L P_L + Kslash_R P_R (:meth:`boson_currents`).

        Args:
            p_em, p_ep: e- and e+ momenta, (n, 4) each.

        Returns:
            (n, 2, 2, 4, 4) complex128, indexed [event, h(e-), h(e+), row, column], helicities
            in the order (-1, +1).
        """
        k_left, k_right = self.boson_currents(p_em, p_ep)
        # Kslash_L P_L keeps the first two columns, Kslash_R P_R the last two (chiral basis).
        return torch.cat((slash(k_left)[..., :2], slash(k_right)[..., 2:]), dim=-1)

    def production_matrix_element_squared(self, p: Tensor) -> Tensor:
        """|M|^2 of e- e+ -> t tbar with on-shell tops: (n, 4, 4) (e-, e+, t, tbar) -> (n,).

        Summed over the 16 helicities, averaged over the 4 initial ones, colour factor 3;
        the 2 -> 2 part of :meth:`matrix_element_squared` (used to check it analytically).
        """
        if not isinstance(p, Tensor) or p.ndim != 3 or p.shape[1:] != (4, 4):
            shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
            raise InputError(f"momenta must have shape (n, 4, 4) = (e-, e+, t, tbar), got {shape}")
        p = p.to(torch.float64)
        mt = self.params.mt
        vertex = self.production_vertex(p[:, 0], p[:, 1])  # (n, 2, 2, 4, 4)
        ubar = torch.stack([spinor_ubar(p[:, 2], mt, h) for h in (-1, 1)], dim=1)
        v = torch.stack([spinor_v(p[:, 3], mt, h) for h in (-1, 1)], dim=1)
        amp = torch.einsum("nta,nhkab,nsb->nhkts", ubar, vertex, v)
        return N_COLOURS / 4 * _abs2(amp).sum((1, 2, 3, 4))

    def matrix_element_squared(self, p: Tensor) -> Tensor:
        """Spin-summed and averaged |M|^2: (n, 6, 4) (e-, e+, W+, b, W-, bbar) -> (n,).

        Dimension GeV^-4. Any frame (it is Lorentz invariant); the electrons massless and
        the final state on shell (W's of mass M_W, b's of mass m_b) for the spinors to
        be exact. The helicity amplitudes are computed at once (no loop over helicities)
        from two-component (Weyl) blocks of the chiral representation: the 72 with opposite
        e- and e+ helicities; the other 72 of the 144 vanish identically for massless
        electrons (chirality) and are skipped (:meth:`matrix_element_squared_dirac` sums
        all 144; the tests check both agree). With r = u_L(b)^dagger eps*(W+).sigma-bar
        (the b row after the left-handed W vertex), c = eps*(W-).sigma-bar v_L(bbar) and the
        top propagators' numerators,

            M = [-r (p_t.sigma) (K_L.sigma-bar) (p_tbar.sigma) c + m_t^2 r (K_R.sigma) c]
                (g V_tb / sqrt(2))^2 / (D_t D_tbar),   D = p^2 - m_t^2 + i m_t G_t,

        the chiral blocks of ubar epsslash* P_L S(p_t) Gamma S(-p_tbar) epsslash* P_L v
        (:meth:`matrix_element_squared_dirac` evaluates that product with 4 x 4 matrices).

        Raises:
            InputError: momenta of the wrong shape.
        """
        return _in_chunks(self._matrix_element_squared, self._check_momenta(p), self.chunk_size)

    def _matrix_element_squared(self, p: Tensor) -> Tensor:
        par = self.params
        mt, mb, mw = par.mt, par.mb, self.mw
        p_wp, p_b, p_wm, p_bb = p[:, 2], p[:, 3], p[:, 4], p[:, 5]
        p_t, p_tb = p_wp + p_b, p_wm + p_bb
        n = p.shape[0]
        k_left, k_right = self.boson_currents(p[:, 0], p[:, 1])  # (n, 2, 2, 4) each
        eps_wp = torch.stack([vector_wavefunction(p_wp, mw, h) for h in (-1, 0, 1)], dim=1)
        eps_wm = torch.stack([vector_wavefunction(p_wm, mw, h) for h in (-1, 0, 1)], dim=1)
        ubar_b = torch.stack([spinor_ubar(p_b, mb, h) for h in (-1, 1)], dim=1)  # (n, 2, 4)
        v_bb = torch.stack([spinor_v(p_bb, mb, h) for h in (-1, 1)], dim=1)
        # ubar = (u_R^*, u_L^*): its last two components meet the left-handed vertex.
        row = _mv(ubar_b[:, :, None, 2:], sigma_bar_dot(eps_wp)[:, None], left=True)
        col = _mv(sigma_bar_dot(eps_wm)[:, :, None], v_bb[:, None, :, :2])
        row, col = row.reshape(n, 6, 2), col.reshape(n, 6, 2)  # [h_b h_W+], [h_W- h_bbar]
        # Massless electrons: only opposite helicities (h-, h+) = (-1, +1), (+1, -1) couple
        # (chirality); the 72 amplitudes with equal ones vanish identically and are skipped.
        k_left, k_right = k_left[:, [0, 1], [1, 0]], k_right[:, [0, 1], [1, 0]]  # (n, 2, 4)
        pt_s, ptb_s = sigma_dot(p_t)[:, None], sigma_dot(p_tb)[:, None]
        middle = mt**2 * sigma_dot(k_right) - pt_s @ sigma_bar_dot(k_left) @ ptb_s  # (n, 2, 2, 2)
        # (n, 6, 2 * 6): [h_b h_W+] x ([h_e-], [h_W- h_bbar]); one batched matmul each.
        mc = _mv(middle[:, :, None], col[:, None]).reshape(n, 12, 2)
        amp = torch.bmm(row, mc.transpose(1, 2))
        amp2 = torch.view_as_real(amp).square().sum((1, 2, 3))
        denominators = _abs2(_breit_wigner(p_t, mt, par.wt) * _breit_wigner(p_tb, mt, par.wt))
        coupling = (par.g / math.sqrt(2) * par.vtb) ** 4  # two W vertices, squared
        return N_COLOURS / 4 * coupling * amp2 / denominators

    def matrix_element_squared_dirac(self, p: Tensor) -> Tensor:
        """:meth:`matrix_element_squared` with 4 x 4 Dirac matrices (a slower reference).

        ubar(b) epsslash*(W+) P_L S_t(p_t) Gamma(h-, h+) S_t(-p_tbar) epsslash*(W-) P_L v(bbar)
        from :func:`~hepflows.physics.helicity.fermion_propagator` and
        :meth:`production_vertex`: (n, 6, 4) -> (n,).
        """
        p = self._check_momenta(p)
        par = self.params
        mt, wt, mb, mw = par.mt, par.wt, par.mb, self.mw
        p_wp, p_b, p_wm, p_bb = p[:, 2], p[:, 3], p[:, 4], p[:, 5]
        vertex = self.production_vertex(p[:, 0], p[:, 1])  # (n, 2, 2, 4, 4)
        n = p.shape[0]
        # Slashed W polarisations eps* (outgoing), (n, 3, 4, 4); the W vertex is
        # epsslash* P_L, and P_L keeps the first two columns (chiral basis).
        eps_wp = slash(torch.stack([vector_wavefunction(p_wp, mw, h) for h in (-1, 0, 1)], 1))
        eps_wm = slash(torch.stack([vector_wavefunction(p_wm, mw, h) for h in (-1, 0, 1)], 1))
        ubar_b = torch.stack([spinor_ubar(p_b, mb, h) for h in (-1, 1)], dim=1)  # (n, 2, 4)
        v_bb = torch.stack([spinor_v(p_bb, mb, h) for h in (-1, 1)], dim=1)
        prop_t = fermion_propagator(p_wp + p_b, mt, wt)  # (n, 4, 4)
        prop_tb = fermion_propagator(-(p_wm + p_bb), mt, wt)
        # Row: ubar(b) epsslash*(W+) P_L S_t -> (n, 2 [h_b], 3 [h_W+], 4).
        row = torch.einsum("nba,nwac->nbwc", ubar_b, eps_wp[..., :2])
        row = torch.einsum("nbwc,ncd->nbwd", row, prop_t[:, :2])
        # Column: S_tbar epsslash*(W-) P_L v(bbar) -> (n, 3 [h_W-], 2 [h_bbar], 4).
        col = torch.einsum("nwac,nsc->nwsa", eps_wm[..., :2], v_bb[..., :2])
        col = torch.einsum("nda,nwsa->nwsd", prop_tb, col)
        # Amplitudes (n, 6, 4, 6): [h_b h_W+], [h_e- h_e+], [h_W- h_bbar].
        mid = torch.einsum("nkab,njb->nkja", vertex.reshape(n, 4, 4, 4), col.reshape(n, 6, 4))
        amp = torch.einsum("nia,nkja->nikj", row.reshape(n, 6, 4), mid)
        coupling = (par.g / math.sqrt(2) * par.vtb) ** 4  # two W vertices, squared
        return N_COLOURS / 4 * coupling * _abs2(amp).sum((1, 2, 3))

    # ------------------------------------------------------------- density
    def __call__(self, u: Tensor) -> Tensor:
        """d sigma / du in pb: (n, 8) unit-cube points -> (n,), differentiable in u.

        f(u) = |M|^2 W(u) / (2 s) * 0.3893793721e9, with u clamped to [edge, 1 - edge].

        Raises:
            InputError: u of the wrong shape.
        """
        return _in_chunks(self._density, self._check_u(u), self.chunk_size)

    def _density(self, u: Tensor) -> Tensor:
        edge = self.params.edge
        p, weight = self.momenta(u.clamp(edge, 1 - edge))
        flux = 2 * self.params.sqrt_s**2
        return self._matrix_element_squared(p) * weight * (GEV2_TO_PB / flux)

    def log_prob(self, u: Tensor) -> Tensor:
        """log of :meth:`__call__`: (n, 8) -> (n,) (the FAB trainer's log target)."""
        return torch.log(self(u))

    # ------------------------------------------------------------- references
    def narrow_width_cross_section(self) -> float:
        """sigma(e+ e- -> t tbar) (Gamma(t -> W b) / Gamma_t)^2 in pb, the narrow-width limit.

        Analytic on-shell sigma (:func:`ttbar_cross_section`) times the squared branching
        ratio, Gamma(t -> W b) of :func:`top_width` (m_b included, from g = e / sin theta_W,
        identical to the G_F form here) and Gamma_t = ``wt`` of the propagators. The full
        off-shell integral differs by O(Gamma_t / m_t).
        """
        return ttbar_cross_section(self.params) * (top_width(self.params) / self.params.wt) ** 2

    # ------------------------------------------------------------- checks
    def _check_u(self, u: Tensor) -> Tensor:
        if not isinstance(u, Tensor) or u.ndim != 2 or u.shape[1] != self.dims:
            shape = tuple(u.shape) if isinstance(u, Tensor) else type(u).__name__
            raise InputError(f"u must have shape (n, {self.dims}), got {shape}")
        if not u.is_floating_point():
            raise InputError(f"u must be a floating-point tensor, got {u.dtype}")
        return u.to(torch.float64)

    def _check_momenta(self, p: Tensor) -> Tensor:
        if not isinstance(p, Tensor) or p.ndim != 3 or p.shape[1:] != (6, 4):
            shape = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
            raise InputError(f"momenta must have shape (n, 6, 4) = (e-, e+, W+, b, W-, bbar) x "
                             f"(E, px, py, pz), got {shape}")  # fmt: skip
        if not p.is_floating_point():
            raise InputError(f"momenta must be a floating-point tensor, got {p.dtype}")
        return p.to(torch.float64)


def _in_chunks(fn: Callable[[Tensor], Tensor], x: Tensor, size: int) -> Tensor:
    """fn over blocks of ``size`` rows of x, concatenated (differentiable): (n, ...) -> (n,)."""
    if x.shape[0] <= size:
        return fn(x)
    return torch.cat([fn(block) for block in x.split(size)])


def _contract(current: Tensor, propagator: Tensor) -> Tensor:
    """K^nu = J_mu D^{mu nu}: (..., 4) and (n, 4, 4) -> (..., 4) (leading dims broadcast)."""
    d = propagator.reshape(propagator.shape[0], *([1] * (current.ndim - 2)), 4, 4)
    return (lower_index(current)[..., :, None] * d).sum(-2)


def _mv(a: Tensor, b: Tensor, left: bool = False) -> Tensor:
    """2 x 2 matrix times 2-vector with broadcasting, written out (faster than tiny matmuls).

    ``left=False``: a (..., 2, 2) times column b (..., 2) -> (..., 2);
    ``left=True``: row a (..., 2) times b (..., 2, 2) -> (..., 2).
    """
    if left:
        return a[..., 0, None] * b[..., 0, :] + a[..., 1, None] * b[..., 1, :]
    return a[..., 0] * b[..., 0, None] + a[..., 1] * b[..., 1, None]


def _breit_wigner(p: Tensor, mass: float, width: float) -> Tensor:
    """p^2 - m^2 + i m G: (n, 4) -> (n,) complex128."""
    p2 = p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(-1)
    return torch.complex(p2 - mass**2, torch.full_like(p2, mass * width))


def _abs2(z: Tensor) -> Tensor:
    """|z|^2 as real^2 + imag^2 (smooth at 0, unlike abs)."""
    return z.real**2 + z.imag**2
