"""pp -> gamma*/Z(/Z') -> l- l+ with one or two jets at leading order: an integrand on the
unit cube with every partonic channel, from :mod:`hepflows.physics.amplitudes`.

    sigma = sum_ab int dx1 dx2 f_a f_b / (2 s_hat) int dPhi  S sum-bar |M|^2 Theta(cuts)

with the electroweak couplings and propagators of a :class:`DrellYan` (its
``helicity_amplitudes``: photon, Z with fixed or running width, optional Z') and
(4 pi alpha_s)^n_jets at the event's scale.

Phase space, sequential two-body decays in the partonic frame (dims = 7 for one jet,
10 for two): tau and y of the partons (:func:`~hepflows.physics.phasespace.tau_y_map`,
tau_min from the m_ll and p_T cuts); m_ll^2 on a mixture of the Z's Breit-Wigner and the
photon's 1/s over the allowed range; for two jets the jet pair's mass on a log map; then
P -> (l l) + jet(s), (l l) -> l- l+ and (jet pair) -> j j, each isotropic:

    dPhi = Phi_2(P; m_ll, m_jj) dm_ll^2 / (2 pi) Phi_2(l l) [dm_jj^2 / (2 pi) Phi_2(j j)].

Subprocesses are grouped into classes by their pattern of equal flavours *within each
charge type* (up-type 2, 4; down-type 1, 3, 5): the couplings to the gamma*/Z depend on
the type, not the flavour.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.integrate.channels import Channel
from hepflows.physics.amplitudes import GLUON, TreeAmplitude
from hepflows.physics.jetspace import BosonJetPhaseSpace, space_channel
from hepflows.physics.kinematics import (
    beam_momenta,
    boost,
    boost_z,
    mass,
    mass2,
    pseudorapidity,
    pt,
    unit_angles,
)
from hepflows.physics.phasespace import (
    resonance_mixture_inverse,
    resonance_mixture_map,
    tau_y_map,
    two_body,
)
from hepflows.physics.processes.drell_yan import DrellYan, DrellYanParameters
from hepflows.physics.processes.multijet import (
    SubprocessClass,
    class_cross_sections,
    subprocess_classes,
)
from hepflows.physics.processes.records import PartonEvents

__all__ = ["DrellYanJets", "DrellYanJetsParameters", "lepton_jet_subprocesses"]

_UP, _DOWN = (2, 4), (1, 3, 5)


#: LHEF process ids of pp -> l- l+ + n jets in the files hepflows writes: this + n.
DRELL_YAN_JETS_ID = 20


@dataclass
class DrellYanJetsParameters:
    """Settings of pp -> l- l+ + n jets (GeV).

    Attributes:
        n_jets: 1 or 2.
        m_ll_min, m_ll_max: the lepton pair's mass window (Pythia ``23:mMin``, ``mMax``).
        pt_min: minimum p_T of every jet (parton).
        eta_max: maximum |eta| of every jet (inf: none).
        dr_min: minimum Delta R between the two jets.
        scale: mu_R = mu_F, fixed (GeV) or ``"ht/2"`` (half the scalar sum of the jets'
            p_T and the lepton pair's transverse mass).
        alpha_s: fixed strong coupling, or None: the PDF set's alpha_s(mu_R).
        electroweak: couplings, masses, widths, flavours (incoming quarks and new pairs),
            lepton and PDF (:class:`DrellYanParameters`; default: no Z').
    """

    n_jets: int = 1
    m_ll_min: float = 60.0
    m_ll_max: float = 120.0
    pt_min: float = 30.0
    eta_max: float = math.inf
    dr_min: float = 0.0
    scale: float | str = 91.188
    alpha_s: float | None = None
    electroweak: DrellYanParameters = field(default_factory=lambda: DrellYanParameters(
        zprime=False))  # fmt: skip

    def __post_init__(self) -> None:
        if self.n_jets not in (1, 2):
            raise ConfigError(f"n_jets must be 1 or 2 (0: use DrellYan), got {self.n_jets}")
        if not 0 < self.m_ll_min < self.m_ll_max:
            raise ConfigError(f"need 0 < m_ll_min < m_ll_max, got {self.m_ll_min}, "
                              f"{self.m_ll_max}")  # fmt: skip
        if not self.pt_min > 0:
            raise ConfigError(f"pt_min must be > 0 GeV (jets diverge without it), got "
                              f"{self.pt_min}")  # fmt: skip
        if isinstance(self.scale, str) and self.scale.lower() != "ht/2":
            raise ConfigError(f"scale must be a number (GeV) or 'ht/2', got {self.scale!r}")


def _canonical_typed(process: tuple[int, ...]) -> tuple[int, ...]:
    """Relabel quark flavours by first appearance within their charge type, signs kept."""
    labels: dict[int, int] = {}
    used = {"u": 0, "d": 0}
    out = []
    for pid in process:
        if pid == GLUON or abs(pid) > 6:
            out.append(pid)
            continue
        if abs(pid) not in labels:
            kind = "u" if abs(pid) in _UP else "d"
            labels[abs(pid)] = (_UP if kind == "u" else _DOWN)[used[kind]]
            used[kind] += 1
        out.append(labels[abs(pid)] * (1 if pid > 0 else -1))
    return tuple(out)


def lepton_jet_subprocesses(n_jets: int, flavours: tuple[int, ...], lepton: int,
                            electroweak: DrellYan) -> list[SubprocessClass]:
    """Every tree-level 2 -> l- l+ + n_jets partons subprocess, grouped into classes."""

    def admissible(pids: tuple[int, ...]) -> bool:  # a quark line for the gamma*/Z; the
        quarks = sum(p != GLUON for p in pids)  # amplitudes take 4 quarks without a gluon
        return 0 < quarks <= 4 and not (quarks == 4 and GLUON in pids)

    partons = [GLUON] + [q for f in flavours for q in (f, -f)]
    return subprocess_classes(
        partons, n_jets, _canonical_typed,
        lambda key: TreeAmplitude(key[:2], (lepton, -lepton, *key[2:]), electroweak=electroweak),
        admissible=admissible, names=("d", "u", "s", "c", "b"),
    )  # fmt: skip


class DrellYanJets(PartonEvents):
    """The integrand of pp -> l- l+ + n jets on [0, 1]^dims (pb), all partonic channels.

    Momenta order everywhere: beam 1, beam 2, l-, l+, jets.

    Args:
        params: :class:`DrellYanJetsParameters`.
        **overrides: fields of the parameters to change.
    """

    lhe_id = DRELL_YAN_JETS_ID

    def __init__(self, params: DrellYanJetsParameters | None = None, **overrides: object
                 ) -> None:
        params = replace(params or DrellYanJetsParameters(), **overrides)
        self.params = params
        ew = params.electroweak
        self.electroweak = DrellYan(ew)
        self.pdf = self.electroweak.pdf
        n = params.n_jets
        self.dims = 7 if n == 1 else 10
        self.sqrt_s = ew.sqrt_s
        self.record_prefix = (ew.lepton, -ew.lepton)  # l- l+ before the jets in the records
        # the jet pair's smallest mass under the Delta R cut: m^2 >= (8 / pi^2) pT^2 R^2
        self.m_jj_min = (2 / math.pi * params.pt_min * params.dr_min if params.dr_min > 0
                         else 1e-3 * params.pt_min)  # fmt: skip
        self.tau_min = ((params.m_ll_min + n * params.pt_min) / ew.sqrt_s) ** 2
        self.classes = lepton_jet_subprocesses(n, tuple(ew.flavours), ew.lepton,
                                               self.electroweak)  # fmt: skip
        self.pids = [GLUON] + [q for f in ew.flavours for q in (f, -f)]
        self.exact = None

    def __repr__(self) -> str:
        p = self.params
        return (f"DrellYanJets(pp -> l l + {p.n_jets} jets, m_ll in [{p.m_ll_min:g}, "
                f"{p.m_ll_max:g}], pt_min={p.pt_min:g}, scale={p.scale}, "
                f"{len(self.classes)} subprocess classes)")  # fmt: skip

    # ------------------------------------------------------------------ kinematics
    def momenta(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Lab momenta (N, 4 + n, 4) and the weight dx1 dx2 dPhi / du / (2 s_hat) (GeV^-2)."""
        if u.ndim != 2 or u.shape[1] != self.dims:
            raise InputError(f"u must have shape (N, {self.dims}), got {tuple(u.shape)}")
        u = u.double()
        p = self.params
        x1, x2, tau, jac = tau_y_map(u[:, 0], u[:, 1], self.tau_min)
        s_hat = tau * self.sqrt_s**2
        root = s_hat.sqrt()
        n = p.n_jets
        m_jj_min = torch.full_like(root, self.m_jj_min if n == 2 else 0.0)
        # m_ll^2: Breit-Wigner of the Z over [m_min^2, min(m_max, sqrt(s_hat) - m_jj_min)^2]
        ew = self.params.electroweak
        hi = torch.minimum(torch.full_like(root, p.m_ll_max), root - m_jj_min)
        ok = hi > p.m_ll_min
        hi = torch.where(ok, hi, torch.full_like(hi, p.m_ll_min * (1 + 1e-9)))
        q2, dq2 = resonance_mixture_map(u[:, 2], ew.mz, ew.wz, p.m_ll_min**2, hi**2)
        m_ll = q2.sqrt()
        zero = torch.zeros_like(root)
        parent = torch.stack((root, zero, zero, zero), dim=-1)
        weight = jac * dq2 / (2 * math.pi)
        if n == 1:
            m_jets = zero
            k = 3
        else:
            lo2 = m_jj_min**2
            hi2 = ((root - m_ll) ** 2).clamp_min(lo2 * (1 + 1e-9))
            log_ratio = torch.log(hi2 / lo2)
            m2_jets = lo2 * torch.exp(log_ratio * u[:, 3])
            weight = weight * m2_jets * log_ratio / (2 * math.pi)
            m_jets = m2_jets.sqrt()
            k = 4
        z, jets, phi = two_body(parent, m_ll, m_jets, u[:, k], u[:, k + 1])
        weight = weight * phi
        lm, lp, phi = two_body(z, zero, zero, u[:, k + 2], u[:, k + 3])
        weight = weight * phi
        if n == 1:
            final = [lm, lp, jets]
        else:
            j1, j2, phi = two_body(jets, zero, zero, u[:, k + 4], u[:, k + 5])
            weight = weight * phi
            final = [lm, lp, j1, j2]
        y = 0.5 * torch.log(x1 / x2)
        final = boost_z(torch.stack(final, dim=1), y[:, None].expand(-1, len(final)))
        beams = beam_momenta(x1, x2, self.sqrt_s)
        weight = torch.where(ok, weight / (2 * s_hat), zero)
        return torch.cat((beams, final), dim=1), weight

    def inverse(self, p: Tensor) -> Tensor:
        """Unit-cube point (N, dims) of lab momenta (N, 4 + n, 4): the inverse of
        :meth:`momenta` (for momenta it can make)."""
        if p.ndim != 3 or p.shape[1:] != (4 + self.params.n_jets, 4):
            raise InputError(f"momenta must have shape (N, {4 + self.params.n_jets}, 4), got "
                             f"{tuple(p.shape)}")  # fmt: skip
        prm, ew = self.params, self.params.electroweak
        x1, x2 = 2 * p[:, 0, 0] / self.sqrt_s, 2 * p[:, 1, 0] / self.sqrt_s
        tau = x1 * x2
        y = 0.5 * torch.log(x1 / x2)
        cols = [1 - torch.log(tau) / math.log(self.tau_min),
                0.5 * (y / (-0.5 * torch.log(tau)) + 1)]  # fmt: skip
        final = boost_z(p[:, 2:], -y[:, None].expand(-1, p.shape[1] - 2))
        root = (tau * self.sqrt_s**2).sqrt()
        pair = final[:, 0] + final[:, 1]
        jets = final[:, 2:].sum(1)
        m_ll = mass(pair)
        m_jj_min = torch.full_like(root, self.m_jj_min if prm.n_jets == 2 else 0.0)
        hi = torch.minimum(torch.full_like(root, prm.m_ll_max), root - m_jj_min)
        r, _ = resonance_mixture_inverse(m_ll**2, ew.mz, ew.wz, prm.m_ll_min**2, hi**2)
        cols.append(r)
        if prm.n_jets == 2:
            lo2 = m_jj_min**2
            hi2 = ((root - m_ll) ** 2).clamp_min(lo2 * (1 + 1e-9))
            cols.append(torch.log(mass2(jets) / lo2) / torch.log(hi2 / lo2))
        cols += unit_angles(pair)  # the pair's direction in the partonic frame
        cols += unit_angles(boost(final[:, 0], -pair[:, 1:] / pair[:, :1]))  # l- in the pair's
        if prm.n_jets == 2:
            cols += unit_angles(boost(final[:, 2], -jets[:, 1:] / jets[:, :1]))  # j1, jets'
        return torch.stack(cols, dim=-1)

    def weight_of(self, p: Tensor) -> Tensor:
        """:meth:`momenta`'s weight (N,) at lab momenta p (N, 4 + n, 4) it can make."""
        return self.momenta(self.inverse(p).clamp(0, 1))[1]

    def jet_channels(self, power: float = 3.0, collinear: bool = False) -> list[Channel]:
        """Channels on this integrand's variables: the identity (the sequential map, which
        follows the jets' collinear and soft poles) and jet variables with the lepton pair
        balancing (:class:`~hepflows.physics.jetspace.BosonJetPhaseSpace`: the jets' p_T
        spectra and the Z line shape flat); with ``collinear`` (two or more jets and a
        Delta R cut) also one per jet pair with the pair's Delta R on a log map from the
        cut (the jets' collinear region). Off by default: for e+ e- + 2 jets (p_T > 30
        GeV, Delta R > 0.4) the third channel took 4 % of sigma and lowered the
        unweighting efficiency at 2e4 + 5e4 calls, 0.110 -> 0.100 (0.999 quantile; docs/
        multijet.md), unlike three jets, where the collinear channels pay."""
        prm, ew = self.params, self.params.electroweak
        y_max = None if not math.isfinite(prm.eta_max) else prm.eta_max

        def space(pair: tuple[int, int] | None = None) -> BosonJetPhaseSpace:
            return BosonJetPhaseSpace(self.sqrt_s, prm.n_jets, prm.pt_min, prm.m_ll_min,
                                      prm.m_ll_max, ew.mz, ew.wz, y_max=y_max, power=power,
                                      pair=pair, dr_min=prm.dr_min)  # fmt: skip

        channels = [Channel(name="sequential decays"),
                    space_channel(self, space(), "jet variables, lepton pair balancing")]
        if collinear and prm.n_jets >= 2 and prm.dr_min > 0:
            channels += [space_channel(self, space(pair), f"jet variables, jets {i}{j} collinear")
                         for pair in itertools.combinations(range(prm.n_jets), 2)
                         for i, j in [pair]]  # fmt: skip
        return channels

    def channels(self) -> list[Channel]:
        """The integrator's channels: :meth:`jet_channels`."""
        return self.jet_channels()

    def cuts(self, p: Tensor) -> Tensor:
        """(N,) bool: m_ll in the window, every jet's p_T and |eta|, Delta R between jets."""
        prm = self.params
        ll = p[:, 2] + p[:, 3]
        m_ll = (ll[:, 0] ** 2 - (ll[:, 1:] ** 2).sum(-1)).clamp_min(0).sqrt()
        keep = (m_ll >= prm.m_ll_min) & (m_ll <= prm.m_ll_max)
        jets = p[:, 4:]
        keep &= (pt(jets) >= prm.pt_min).all(1)
        eta = pseudorapidity(jets)
        if math.isfinite(prm.eta_max):
            keep &= (eta.abs() <= prm.eta_max).all(1)
        if prm.dr_min > 0 and jets.shape[1] == 2:
            phi = torch.atan2(jets[..., 2], jets[..., 1])
            dphi = torch.remainder(phi[:, 0] - phi[:, 1] + math.pi, 2 * math.pi) - math.pi
            keep &= (eta[:, 0] - eta[:, 1]) ** 2 + dphi**2 >= prm.dr_min**2
        return keep

    def scale2(self, p: Tensor) -> Tensor:
        """mu^2 (N,): fixed, or (H_T / 2)^2 with H_T = sum p_T(jets) + m_T(l l)."""
        if isinstance(self.params.scale, str):
            ll = p[:, 2] + p[:, 3]
            mt = (ll[:, 0] ** 2 - ll[:, 3] ** 2).clamp_min(0).sqrt()
            return (0.5 * (pt(p[:, 4:]).sum(1) + mt)) ** 2
        return torch.full((len(p),), float(self.params.scale) ** 2, dtype=torch.float64)

    # ------------------------------------------------------------------ integrand
    def class_contributions(self, u: Tensor) -> Tensor:
        """d sigma / du per subprocess class (K, N) in pb (cuts applied)."""
        p, weight = self.momenta(u)
        keep = self.cuts(p) & (weight > 0)
        out = torch.zeros(len(self.classes), len(u), dtype=torch.float64)
        if not keep.any():
            return out
        pk = p[keep]
        mu2 = self.scale2(pk)
        coupling = (4 * math.pi * self.alpha_s(mu2)) ** self.params.n_jets
        out[:, keep] = class_cross_sections(self.classes, pk, weight[keep], self.pdf,
                                            self.pids, mu2, coupling, self.sqrt_s)  # fmt: skip
        return out

    def __call__(self, u: Tensor) -> Tensor:
        """d sigma / du (N,) in pb."""
        return self.class_contributions(u).sum(0)


