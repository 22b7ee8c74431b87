"""pp -> l+ l- through gamma / Z / Z' at leading order (the MadNIS toy process).

Partonic cross-section from helicity amplitudes of massless fermions: for
quark helicity a and lepton helicity b (L or R),

    A_ab(s) = sum_V g^V_{q,a} g^V_{l,b} P_V(s),   P_gamma = 1/s,
    P_V = 1 / (s - M_V^2 + i M_V G_V)   (or i s G_V / M_V, running width),

with g^gamma_f = e Q_f and g^Z_{f,L} = e (T3_f - Q_f sw^2) / (sw cw),
g^Z_{f,R} = -e Q_f sw^2 / (sw cw) (the Z' with the Z couplings). Summed over
helicities (theta = angle between the quark and the l-),

    sum |M|^2 = s^2 [(|A_LL|^2 + |A_RR|^2)(1 + c)^2 + (|A_LR|^2 + |A_RL|^2)(1 - c)^2]
    dsigma_hat / dcos(theta) = sum |M|^2 / (4 * 3) / (32 pi s)

(spin average 1/4, colour average 1/3). Hadronic: sum over q in both beams,
sigma = int du jac sum_q [f_q(x1) f_qbar(x2) dsigma(c) + f_qbar(x1) f_q(x2) dsigma(-c)],
in pb. Defaults are the MadNIS set-up (2212.06172); :meth:`DrellYan.from_pythia`
takes Pythia 8's conventions instead (running alpha_EM, sin^2 theta_W-bar,
running width) for the cross-check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.integrate.channels import Channel
from hepflows.io.particles import particle_table, records
from hepflows.physics.phasespace import (
    HadronicPhaseSpace,
    LeptonCuts,
    PartonicPoint,
    s_hat_channel,
)
from hepflows.physics.symmetry import Folded

if TYPE_CHECKING:
    import pylhe

#: GeV^-2 -> pb.
GEV2_TO_PB = 0.3893793721e9
#: PDG id -> (charge, weak isospin T3) of the left-handed fermion.
FERMIONS = {1: (-1 / 3, -0.5), 2: (2 / 3, 0.5), 3: (-1 / 3, -0.5), 4: (2 / 3, 0.5),
            5: (-1 / 3, -0.5), 11: (-1.0, -0.5), 13: (-1.0, -0.5), 15: (-1.0, -0.5)}  # fmt: skip
#: Lepton names of ``hepflows generate drell-yan --lepton`` -> PDG id.
LEPTONS = {"e": 11, "mu": 13}


def lepton_id(name: str) -> int:
    """The PDG id of a lepton name of :data:`LEPTONS` (``"e"`` -> 11).

    Raises:
        ConfigError: an unknown name; the message lists the known ones.
    """
    if name not in LEPTONS:
        raise ConfigError(f"unknown lepton {name!r}: choose one of {', '.join(LEPTONS)}")
    return LEPTONS[name]


@dataclass
class DrellYanParameters:
    """Parameters of pp -> l+ l- (GeV; defaults: MadNIS 2212.06172).

    Attributes:
        sqrt_s: collider energy.
        flavours: incoming quark flavours (PDG ids 1-5), with their antiquarks.
        lepton: 11 (e) or 13 (mu).
        mz, wz, mw: Z mass and width, W mass.
        alpha_em: fine-structure constant (fixed), or a function of s_hat (n,) -> (n,).
        sin2w: sin^2 theta_W in the Z's vector couplings T3 - Q sin^2 theta_W
            (default 1 - mw^2 / mz^2).
        sin2w_norm: sin^2 theta_W in the overall 1 / (sin theta_W cos theta_W)
            (default: ``sin2w``; Pythia uses sin^2 theta_W here and its
            sin^2 theta_W-bar in the vector couplings).
        zprime: include the Z' (Z couplings).
        mzp, wzp: Z' mass and width.
        zprime_coupling: the Z' boson's couplings to quarks and leptons in units of the
            Z's (1: MadNIS' Z'; the amplitude scales with its square, the peak
            cross-section at fixed width with its fourth power).
        running_width: s_hat G / M in the propagators (Pythia) instead of M G.
        mu_f: factorisation scale (fixed).
        sqrt_s_hat_min: cut on the lepton-pair mass.
        sqrt_s_hat_max: upper limit (default sqrt_s).
        lepton_pt_min: cut on both leptons' transverse momenta (GeV; 0: none).
        lepton_eta_max: cut on both leptons' |pseudorapidity| (inf: none).
        pdf: PDF set name (LHAPDF6 grid; shipped by pythia8mc) or a loaded PDF.
    """

    sqrt_s: float = 13_000.0
    flavours: tuple[int, ...] = (1, 2, 3, 4)
    lepton: int = 11
    mz: float = 91.188
    wz: float = 2.441404
    mw: float = 80.419
    alpha_em: float | Callable[[Tensor], Tensor] = 1 / 132.507
    sin2w: float | None = None
    sin2w_norm: float | None = None
    zprime: bool = True
    mzp: float = 400.0
    wzp: float = 0.5
    zprime_coupling: float = 1.0
    running_width: bool = False
    mu_f: float = 91.188
    sqrt_s_hat_min: float = 15.0
    sqrt_s_hat_max: float | None = None
    lepton_pt_min: float = 0.0
    lepton_eta_max: float = math.inf
    pdf: object = "NNPDF23_lo_as_0130_qed"

    @property
    def sw2(self) -> float:
        """sin^2 theta_W used in the Z couplings."""
        return 1 - self.mw**2 / self.mz**2 if self.sin2w is None else self.sin2w


#: LHEF process id of Drell-Yan in the files hepflows writes.
DRELL_YAN_ID = 1


class DrellYan:
    """The integrand of pp -> l+ l- on [0, 1]^4 (pb) with its channels and events.

    Call it on (n, 4) unit-cube points (:class:`HadronicPhaseSpace`
    variables) to get (n,) d sigma / du in pb. Its integral is sigma.

    Args:
        params: :class:`DrellYanParameters` (default: MadNIS with the Z').
        **overrides: any field of the parameters, e.g. ``zprime=False``.

    Example:
        >>> from hepflows.physics import DrellYan
        >>> from hepflows.integrate import NeuralIntegrator
        >>> dy = DrellYan()
        >>> integ = NeuralIntegrator(dy, 4, channels=dy.channels(), seed=1)
    """

    dims = 4

    def __init__(self, params: DrellYanParameters | None = None, **overrides: object) -> None:
        params = replace(params or DrellYanParameters(), **overrides)
        bad = [f for f in params.flavours if f not in (1, 2, 3, 4, 5)]
        if bad or not params.flavours:
            raise ConfigError(f"flavours must be quark ids among 1-5, got {params.flavours}")
        if params.lepton not in (11, 13, 15):
            raise ConfigError(f"lepton must be 11, 13 or 15, got {params.lepton}")
        for name in ("mz", "wz", "mw", "mzp", "wzp", "mu_f", "zprime_coupling"):
            if not getattr(params, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(params, name)}")
        self.params = params
        self.space = HadronicPhaseSpace(params.sqrt_s, params.sqrt_s_hat_min, params.sqrt_s_hat_max)
        self.cuts = LeptonCuts(params.lepton_pt_min, params.lepton_eta_max)
        if isinstance(params.pdf, str):
            from hepflows.physics.pdf import load_pdf

            self.pdf = load_pdf(params.pdf)
        else:
            self.pdf = params.pdf
        self.exact = None  # no closed form; kept for the integrator's summary

    # ------------------------------------------------------------- couplings
    def _alpha(self, s: Tensor) -> Tensor:
        a = self.params.alpha_em
        return a(s) if callable(a) else torch.full_like(s, float(a))

    def _bosons(self) -> list[tuple[str, float, float]]:
        p = self.params
        out = [("Z", p.mz, p.wz)]
        if p.zprime:
            out.append(("Zp", p.mzp, p.wzp))
        return out

    def helicity_amplitudes(self, quark: int, s: Tensor) -> Tensor:
        """Helicity amplitudes A_ab (GeV^-2), couplings included: (n,) s -> (4, n) complex.

        Order LL, RR, LR, RL (quark helicity, lepton helicity).
        """
        p = self.params
        sw2 = p.sw2
        s2n = sw2 if p.sin2w_norm is None else p.sin2w_norm
        norm = 1 / math.sqrt(s2n * (1 - s2n))
        e2 = 4 * math.pi * self._alpha(s)
        q_q, t_q = FERMIONS[quark]
        q_l, t_l = FERMIONS[p.lepton]
        gq = {"L": norm * (t_q - q_q * sw2), "R": -norm * q_q * sw2}
        gl = {"L": norm * (t_l - q_l * sw2), "R": -norm * q_l * sw2}
        s_c = s.to(torch.complex128)
        props = []
        for name, m, w in self._bosons():
            width_term = s * w / m if p.running_width else torch.full_like(s, m * w)
            strength = p.zprime_coupling**2 if name == "Zp" else 1.0
            props.append(strength / (s_c - m**2 + 1j * width_term))
        amps = []
        for a, b in (("L", "L"), ("R", "R"), ("L", "R"), ("R", "L")):
            amp = q_q * q_l / s_c
            for prop in props:
                amp = amp + gq[a] * gl[b] * prop
            amps.append(e2 * amp)
        return torch.stack(amps)

    def partonic(self, quark: int, s: Tensor, cos_theta: Tensor) -> Tensor:
        """d sigma_hat / d cos(theta) for q qbar -> l- l+ (GeV^-2), (n,) -> (n,).

        theta is the angle between the quark and the l- in the partonic frame.
        """
        return _angular(s, *self._helicity_sums(quark, s), cos_theta)

    def _helicity_sums(self, quark: int, s: Tensor) -> tuple[Tensor, Tensor]:
        """(n,) |A_LL|^2 + |A_RR|^2 and |A_LR|^2 + |A_RL|^2 at (n,) s."""
        amp2 = self.helicity_amplitudes(quark, s).abs() ** 2
        return amp2[0] + amp2[1], amp2[2] + amp2[3]

    def partonic_total(self, quark: int, s: Tensor) -> Tensor:
        """sigma_hat(s) integrated over the angle (GeV^-2): s sum_ab |A_ab|^2 / (144 pi)."""
        return s * (self.helicity_amplitudes(quark, s).abs() ** 2).sum(0) / (144 * math.pi)

    # ------------------------------------------------------------- integrand
    def contributions(self, u: Tensor) -> tuple[Tensor, PartonicPoint]:
        """Per initial state d sigma / du (pb): (2 F, n) for q from beam 1 then qbar from beam 1.

        Args:
            u: (n, 4) unit-cube points.
        """
        pt = self.space(u)
        rows = self._rows(self._parton_products(pt.x1, pt.x2), pt.s_hat, pt.cos_theta)
        weight = pt.jac * GEV2_TO_PB
        if self.cuts.active:
            weight = weight * self.cuts.mask(pt)
        return rows * weight, pt

    def _parton_products(self, x1: Tensor, x2: Tensor) -> Tensor:
        """f_q(x1) f_qbar(x2) per flavour, then f_qbar(x1) f_q(x2): (2 F, n) at the scale mu_f."""
        flv = list(self.params.flavours)
        q2 = self.params.mu_f**2  # one scale: the PDFs interpolate in Q^2 once
        pids = flv + [-f for f in flv]
        f1 = self.pdf.xfxQ2(pids, x1, q2) / x1
        f2 = self.pdf.xfxQ2(pids, x2, q2) / x2
        n_f = len(flv)
        return torch.cat((f1[:n_f] * f2[n_f:], f1[n_f:] * f2[:n_f]))

    def _rows(self, products: Tensor, s_hat: Tensor, cos_theta: Tensor) -> Tensor:
        """(2 F, n) parton products times d sigma_hat / dcos (cos for q from beam 1, -cos for
        qbar from beam 1)."""
        flv = list(self.params.flavours)
        # The amplitudes depend on the quark's charge and isospin only: computed once per
        # kind (up-type, down-type), not per flavour and orientation (4x fewer here).
        sums: dict[tuple[float, float], tuple[Tensor, Tensor]] = {}
        for q in flv:
            sums.setdefault(FERMIONS[q], self._helicity_sums(q, s_hat))
        rows = [products[i] * _angular(s_hat, *sums[FERMIONS[q]], cos_theta)
                for i, q in enumerate(flv)]  # fmt: skip
        rows += [products[len(flv) + i] * _angular(s_hat, *sums[FERMIONS[q]], -cos_theta)
                 for i, q in enumerate(flv)]  # fmt: skip
        return torch.stack(rows)

    def differential(self, m: Tensor, y: Tensor, cos_theta: Tensor) -> Tensor:
        """d sigma / (dm dy dcos theta) in pb / GeV at leading order, (n,) x3 -> (n,).

        theta is the angle of the l- to the +z beam in the pair's rest frame
        (boosted along z only: at LO the pair has no pT); the quark comes from
        either beam:

            d sigma / dm dy dcos = (2 m / s) sum_q [f_q(x1) f_qbar(x2) dsigma_hat(cos)
                                                   + f_qbar(x1) f_q(x2) dsigma_hat(-cos)],

        with x1,2 = m e^{+-y} / sqrt(s), at the fixed scale mu_f. Zero outside
        the generation cuts on m (the lepton cuts are not applied: they are the
        detector's business). Its integral over m, y, cos is :meth:`__call__`'s.
        """
        return self.from_luminosities(self.luminosities(m, y), m, cos_theta)

    def luminosities(self, m: Tensor, y: Tensor) -> Tensor:
        """The parameter-free part of :meth:`differential`: (2 F, n) for (n,) m and y.

        Rows: (2 m / s) f_q(x1) f_qbar(x2) per flavour, then with the beams
        swapped, in pb GeV^2 / GeV (0 outside the generation cuts on m).
        Depends on the PDFs, mu_f and the cuts only, so it can be computed once
        for many values of the couplings and masses (:meth:`from_luminosities`).
        """
        p = self.params
        m, y = m.to(torch.float64), y.to(torch.float64)
        x1, x2 = m * torch.exp(y) / p.sqrt_s, m * torch.exp(-y) / p.sqrt_s
        high = p.sqrt_s if p.sqrt_s_hat_max is None else p.sqrt_s_hat_max
        inside = (m >= p.sqrt_s_hat_min) & (m <= high) & (x1 < 1) & (x2 < 1)
        x1, x2 = torch.where(inside, x1, 0.5), torch.where(inside, x2, 0.5)
        lumi = self._parton_products(x1, x2)
        return lumi * torch.where(inside, 2 * m / p.sqrt_s**2 * GEV2_TO_PB, 0.0)

    def from_luminosities(self, lumi: Tensor, m: Tensor, cos_theta: Tensor) -> Tensor:
        """:meth:`differential` from (2 F, n) :meth:`luminosities` (of any process sharing
        this one's PDFs, flavours, scale and cuts): (n,) pb / GeV."""
        m, c = m.to(torch.float64), cos_theta.to(torch.float64)
        total = self._rows(lumi, m**2, c).sum(0)
        return torch.where(c.abs() <= 1, total, torch.zeros_like(total))

    def __call__(self, u: Tensor) -> Tensor:
        """(n, 4) unit-cube points -> (n,) d sigma / du in pb."""
        return self.contributions(u)[0].sum(0)

    def folded(self, check: int = 256) -> Folded:
        """This integrand on [0, 1]^3 with its exact symmetries folded away (same sigma).

        phi (direction 3) is flat, and swapping the beams, (y, cos theta) ->
        (-y, -cos theta), i.e. u_1, u_2 -> 1 - u_1, 1 - u_2, leaves dsigma
        unchanged (the lepton cuts are symmetric too); the folded integrand
        keeps y < 0. ``folded().expand(v)`` turns its points back into
        (n, 4) points of this integrand. ``check`` points verify the symmetry.
        """
        return Folded(self, 4, flat=(3,), mirror=(1, 2), half=1, check=check)

    def channels(self) -> list[Channel]:
        """One channel per propagator: photon (1/s_hat), Z and Z' (Breit-Wigner in s_hat)."""
        chans = [s_hat_channel(self.space, "photon")]
        for name, m, w in self._bosons():
            chans.append(s_hat_channel(self.space, name, m, w))
        return chans

    # ----------------------------------------------------------------- events
    def event_header(self) -> dict[str, object]:
        """Keyword arguments of :func:`~hepflows.io.write_events` for this process: beams,
        PDF set, LHEF process id :data:`DRELL_YAN_ID`, SCALUP mu_F and AQEDUP."""
        p = self.params
        return dict(beams=(2212, 2212, p.sqrt_s / 2, p.sqrt_s / 2),
                    pdf_set=getattr(self.pdf, "lhapdf_id", None) or 0, process_id=DRELL_YAN_ID,
                    scale=p.mu_f, aqed=p.alpha_em if isinstance(p.alpha_em, float) else 0.0)

    def initial_states(self, u: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Pick the incoming partons of each event by their share of dsigma: (n, 2) PDG ids."""
        contrib, _ = self.contributions(u)
        idx = torch.multinomial(contrib.T.clamp_min(0) + 1e-300, 1, generator=generator)[:, 0]
        flv = torch.tensor(self.params.flavours, device=u.device)
        n_f = len(flv)
        q = flv[idx % n_f]
        beam1 = torch.where(idx < n_f, q, -q)
        return torch.stack((beam1, -beam1), dim=1)

    def momenta(self, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Lab four-momenta (n, 4): parton 1, parton 2, l-, l+."""
        return self.space.momenta(self.space(u))

    def particle_table(self, u: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(n, 4, 13) Les Houches particle records of events at (n, 4) points.

        Incoming q and qbar (status -1, colour line 501, flavour drawn by its
        share of the cross-section at that point) and the outgoing l- and l+
        (status 1, mothers 1 and 2), massless, momenta in GeV in the lab frame;
        columns as :data:`hepflows.io.particles.PARTICLE_COLUMNS`.
        """
        ids = self.initial_states(u, generator)
        lep = torch.full_like(ids[:, 0], self.params.lepton)
        pid = torch.stack((ids[:, 0], ids[:, 1], lep, -lep), dim=1)
        quark = (ids > 0).to(torch.float64)  # colour line 501 on the quark, anticolour else
        colours = torch.zeros(len(u), 4, 2, dtype=torch.float64, device=u.device)
        colours[:, :2, 0], colours[:, :2, 1] = 501 * quark, 501 * (1 - quark)
        momenta = torch.stack(self.momenta(u), dim=1)
        return particle_table(pid, (-1, -1, 1, 1), ((0, 0), (0, 0), (1, 2), (1, 2)), momenta,
                              (0.0,) * 4, colours)  # fmt: skip

    def lhe_particles(
        self, u: Tensor, generator: torch.Generator | None = None
    ) -> list[list[pylhe.LHEParticle]]:
        """``pylhe`` records of :meth:`particle_table`: n lists of 4 particles."""
        return records(self.particle_table(u, generator))


def _angular(s: Tensor, same: Tensor, opposite: Tensor, cos_theta: Tensor) -> Tensor:
    """d sigma_hat / d cos(theta) (GeV^-2) from the helicity sums at (n,) s and cos(theta)."""
    m2 = s**2 * (same * (1 + cos_theta) ** 2 + opposite * (1 - cos_theta) ** 2)
    return m2 / 12 / (32 * math.pi * s)


def pythia_alpha_em(coup_sm: object) -> Callable[[Tensor], Tensor]:
    """Pythia's running alpha_EM(Q^2) above 90 GeV^2 read from its CoupSM object.

    Pythia runs alpha_EM at first order: 1 / alpha is linear in ln Q^2 within
    each flavour step, the last one starting at Q^2 = 90 GeV^2. Two calls fix
    that line (the tests check it against Pythia at other scales).
    """
    q_a, q_b = 100.0, 1e6
    inv_a, inv_b = 1 / coup_sm.alphaEM(q_a), 1 / coup_sm.alphaEM(q_b)
    slope = (inv_b - inv_a) / math.log(q_b / q_a)

    def alpha(s: Tensor) -> Tensor:
        if bool((s < 90).any()):
            raise ConfigError("pythia_alpha_em is valid for Q^2 >= 90 GeV^2; raise the mass cut")
        return 1 / (inv_a + slope * torch.log(s / q_a))

    return alpha


def pythia_parameters(
    pythia: object, lepton: int = 11, flavours: Sequence[int] | None = None
) -> DrellYanParameters:
    """Drell-Yan parameters with Pythia 8's conventions, read from an initialised Pythia.

    Reads its running alpha_EM, sin^2 theta_W-bar (Z vector couplings) and
    sin^2 theta_W (Z coupling normalisation, as in its Sigma1ffbar2gmZ), the Z mass
    and width (with a running width, as in Pythia's gamma*/Z propagator), the
    energy, the mass cuts, the number of incoming quark flavours and the fixed
    factorisation scale. No Z'.

    Args:
        pythia: an initialised ``pythia8mc.Pythia`` with ``SigmaProcess:factorScale1 = 2``.
        lepton: the lepton Pythia's Z decays to (its ``23:onIfAny``).
        flavours: incoming quarks (default: 1 .. ``PDFinProcess:nQuarkIn``).
    """
    st = pythia.settings
    if st.mode("SigmaProcess:factorScale1") != 2:
        raise ConfigError("set SigmaProcess:factorScale1 = 2 (fixed mu_F) in Pythia first")
    m_max = st.parm("PhaseSpace:mHatMax")
    return DrellYanParameters(
        sqrt_s=st.parm("Beams:eCM"),
        flavours=tuple(flavours or range(1, st.mode("PDFinProcess:nQuarkIn") + 1)),
        lepton=lepton, mz=pythia.particleData.m0(23), wz=pythia.particleData.mWidth(23),
        alpha_em=pythia_alpha_em(pythia.coupSM), sin2w=pythia.coupSM.sin2thetaWbar(),
        sin2w_norm=pythia.coupSM.sin2thetaW(),
        zprime=False, running_width=True,
        mu_f=math.sqrt(st.parm("SigmaProcess:factorFixScale")),
        sqrt_s_hat_min=st.parm("PhaseSpace:mHatMin"),
        sqrt_s_hat_max=m_max if m_max > st.parm("PhaseSpace:mHatMin") else None,
    )  # fmt: skip
