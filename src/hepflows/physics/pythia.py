"""Pythia 8 (``pythia8mc``) as the independent reference for Drell-Yan and multi-jets.

:func:`pythia_drell_yan` sets Pythia up for gamma*/Z -> l+ l- at LO, hard
process only, with a fixed factorisation scale M_Z, four incoming quark
flavours and the default PDF (``PDF:pSet = 13``, NNPDF2.3 QCD+QED LO, the
grid :func:`hepflows.physics.load_pdf` reads by default), and
:func:`pythia_events` runs it: sigma with its error and the hard-process
lepton momenta. :func:`hepflows.physics.processes.pythia_parameters` then
configures hepflows with Pythia's own conventions, so that like is compared
with like (design note: physics.md).

:func:`pythia_jets` sets up pp -> 2 or 3 partons (``HardQCD``, light processes with
``nQuarkNew`` massless new flavours) with the cuts, scale and alpha_s of a
:class:`~hepflows.physics.processes.MultiJetParameters`, and
:func:`pythia_partons` runs any hard-process setup: sigma per subprocess code and the
outgoing partons' momenta. :func:`qqbar_ggg_closed_form` is Pythia's closed form of
q q-bar -> g g g, with the option to reproduce how its crossings evaluate it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.extras import require


@dataclass
class PythiaSample:
    """Pythia's hard-process events and cross-section.

    Attributes:
        sigma_pb, sigma_err_pb: Pythia's sigmaGen and its error (pb).
        tries: events tried (its own sampler) for ``accepted`` events.
        accepted: events generated.
        lepton, antilepton: (n, 4) lab momenta (E, px, py, pz) in GeV.
        settings: the settings read into Pythia.
    """

    sigma_pb: float
    sigma_err_pb: float
    tries: int
    accepted: int
    lepton: Tensor
    antilepton: Tensor
    settings: list[str]


def pythia_drell_yan(
    m_min: float = 60.0, lepton: int = 11, sqrt_s: float = 13_000.0, seed: int = 1,
    flavours: int = 4, pdf_set: int = 13,
) -> tuple[object, list[str]]:  # fmt: skip
    """An initialised ``pythia8mc.Pythia`` for gamma*/Z -> l+ l- (hard process only).

    Returns:
        ``(pythia, settings)``.
    """
    settings = [
        f"Beams:eCM = {sqrt_s}", "WeakSingleBoson:ffbar2gmZ = on",
        f"PhaseSpace:mHatMin = {m_min}", "23:onMode = off", f"23:onIfAny = {lepton}",
        f"PDF:pSet = {pdf_set}", f"PDFinProcess:nQuarkIn = {flavours}",
        "SigmaProcess:factorScale1 = 2", "SigmaProcess:factorFixScale = 8315.25",
        "PartonLevel:all = off", "HadronLevel:all = off", "Next:numberCount = 0",
        "Print:quiet = on", "Random:setSeed = on", f"Random:seed = {seed}",
    ]  # fmt: skip
    return _pythia(settings), settings


def pythia_events(pythia: object, n_events: int, lepton: int = 11) -> PythiaSample:
    """Generate ``n_events`` hard-process events; sigma (pb) and the lepton momenta."""
    leptons, antileptons = [], []
    while len(leptons) < n_events:
        if not pythia.next():
            continue
        ev = pythia.process
        lep = anti = None
        for i in range(ev.size()):
            part = ev[i]
            if part.isFinal() and part.id() == lepton:
                lep = (part.e(), part.px(), part.py(), part.pz())
            elif part.isFinal() and part.id() == -lepton:
                anti = (part.e(), part.px(), part.py(), part.pz())
        if lep is None or anti is None:
            raise ConfigError("a Pythia event without the lepton pair: check 23:onIfAny")
        leptons.append(lep)
        antileptons.append(anti)
    info = pythia.infoPython()
    mb_to_pb = 1e9
    return PythiaSample(
        sigma_pb=info.sigmaGen() * mb_to_pb, sigma_err_pb=info.sigmaErr() * mb_to_pb,
        tries=info.nTried(), accepted=info.nAccepted(),
        lepton=torch.tensor(leptons, dtype=torch.float64),
        antilepton=torch.tensor(antileptons, dtype=torch.float64), settings=[],
    )  # fmt: skip


@dataclass
class PythiaPartons:
    """Pythia's hard-process cross-sections and outgoing partons.

    Attributes:
        sigma_pb, sigma_err_pb: sigmaGen and its error (pb).
        by_process: {code: (name, sigma_pb, sigma_err_pb)} per subprocess.
        tries, accepted: Pythia's trial and accepted events.
        partons: (n, k, 4) lab momenta of the k outgoing partons, ordered by p_T (hardest
            first), GeV.
        settings: the settings read into Pythia.
        leptons: (n, 2, 4) the outgoing charged lepton and antilepton (l-, l+), or None
            for events without them.
    """

    sigma_pb: float
    sigma_err_pb: float
    by_process: dict[int, tuple[str, float, float]]
    tries: int
    accepted: int
    partons: Tensor
    settings: list[str] = field(default_factory=list)
    leptons: Tensor | None = None


def _pythia(settings: list[str]) -> object:
    pythia8mc = require("pythia8mc", "physics", "The Pythia 8 cross-check")
    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise ConfigError("Pythia failed to initialise (see its output)")
    return pythia


def pythia_jets(params: object, seed: int = 1, pdf_set: int = 13) -> tuple[object, list[str]]:
    """An initialised Pythia for pp -> n partons matching ``params`` (hard process only).

    Args:
        params: a :class:`~hepflows.physics.processes.MultiJetParameters`; its alpha_s must
            be fixed (pass the value hepflows uses: Pythia then runs with
            ``alphaSorder = 0``), its scale fixed (or ``"ht/2"`` for two jets: Pythia's
            ``renormScale2 = 2``, p_T^2, is (H_T / 2)^2 for massless partons), no eta cut.
        seed: Pythia's random seed.
        pdf_set: ``PDF:pSet`` (13: NNPDF2.3 QCD+QED LO, hepflows' default grid).

    Returns:
        ``(pythia, settings)``.

    Raises:
        ConfigError: settings Pythia cannot express.
    """
    n = params.n_jets
    if params.alpha_s is None:
        raise ConfigError("pass a fixed alpha_s (e.g. hepflows' alpha_s at the scale): "
                          "Pythia's running differs from the PDF set's")  # fmt: skip
    if math.isfinite(params.eta_max):
        raise ConfigError("Pythia's hard process has no eta cut: use eta_max = inf")
    settings = [f"Beams:eCM = {params.sqrt_s}", f"HardQCD:nQuarkNew = {params.flavours}",
                f"PDFinProcess:nQuarkIn = {params.flavours}", f"PDF:pSet = {pdf_set}",
                "SigmaProcess:alphaSorder = 0", f"SigmaProcess:alphaSvalue = {params.alpha_s}"]
    if isinstance(params.scale, str):
        if n != 2:
            raise ConfigError("Pythia has no H_T/2 scale for 2 -> 3: use a fixed scale")
        settings += ["SigmaProcess:renormScale2 = 2", "SigmaProcess:factorScale2 = 2"]
    else:
        mu2 = float(params.scale) ** 2
        option = 5 if n == 2 else 6
        settings += [f"SigmaProcess:renormScale{n} = {option}",
                     f"SigmaProcess:factorScale{n} = {option}",
                     f"SigmaProcess:renormFixScale = {mu2}", f"SigmaProcess:factorFixScale = {mu2}"]
    if n == 2:
        if params.dr_min > 0:
            raise ConfigError("Pythia's 2 -> 2 has no Delta R cut (back to back: Delta R >= pi)")
        settings += [f"HardQCD:{name} = on" for name in
                     ("gg2gg", "gg2qqbar", "qg2qg", "qq2qq", "qqbar2gg", "qqbar2qqbarNew")]
        settings += [f"PhaseSpace:pTHatMin = {params.pt_min}"]
    else:
        settings += ["HardQCD:3parton = on", f"PhaseSpace:pTHat3Min = {params.pt_min}",
                     f"PhaseSpace:pTHat5Min = {params.pt_min}",
                     f"PhaseSpace:RsepMin = {params.dr_min}"]
    settings += ["PartonLevel:all = off", "HadronLevel:all = off", "Next:numberCount = 0",
                 "Print:quiet = on", "Random:setSeed = on", f"Random:seed = {seed}"]
    return _pythia(settings), settings


def pythia_partons(pythia: object, n_events: int, settings: list[str] | None = None
                   ) -> PythiaPartons:
    """Generate ``n_events`` hard-process events: sigma (pb) per process, the partons and
    the charged leptons (if any)."""
    events, leptons = [], []
    while len(events) < n_events:
        if not pythia.next():
            continue
        ev = pythia.process
        out = [(ev[i].e(), ev[i].px(), ev[i].py(), ev[i].pz()) for i in range(ev.size())
               if ev[i].isFinal() and (ev[i].idAbs() <= 5 or ev[i].id() == 21)]
        events.append(sorted(out, key=lambda p: -(p[1] ** 2 + p[2] ** 2)))
        pair = sorted((-ev[i].id(), (ev[i].e(), ev[i].px(), ev[i].py(), ev[i].pz()))
                       for i in range(ev.size())
                       if ev[i].isFinal() and ev[i].idAbs() in (11, 13))  # fmt: skip
        leptons.append([p for _, p in pair])  # l- (positive id) first
    info = pythia.infoPython()
    mb_to_pb = 1e9
    by_process = {code: (info.nameProc(code), info.sigmaGen(code) * mb_to_pb,
                         info.sigmaErr(code) * mb_to_pb) for code in info.codesHard()}
    return PythiaPartons(
        sigma_pb=info.sigmaGen() * mb_to_pb, sigma_err_pb=info.sigmaErr() * mb_to_pb,
        by_process=by_process, tries=info.nTried(), accepted=info.nAccepted(),
        partons=torch.tensor(events, dtype=torch.float64), settings=list(settings or []),
        leptons=torch.tensor(leptons, dtype=torch.float64) if leptons and leptons[0] else None,
    )  # fmt: skip


def pythia_drell_yan_jet(params: object, seed: int = 1, pdf_set: int = 13
                         ) -> tuple[object, list[str], object]:
    """Pythia for pp -> gamma*/Z (-> l- l+) + 1 parton matching ``params``, hard process only.

    ``WeakBosonAndParton:qqbar2gmZg`` and ``qg2gmZq`` with ``23:mMin``/``mMax`` as the
    m_ll window, ``pTHatMin`` as the jet p_T cut, a fixed scale (2 -> 2 options 5) and
    alpha_s fixed (``alphaSorder = 0``).

    Args:
        params: a :class:`~hepflows.physics.processes.DrellYanJetsParameters` with one jet,
            a fixed scale and a fixed alpha_s.

    Returns:
        ``(pythia, settings, electroweak)``: ``electroweak`` is a
        :class:`~hepflows.physics.processes.DrellYanParameters` with Pythia's conventions:
        alpha_EM at mu_R^2 (Pythia's 2 -> 2 processes take it there), sin^2 theta_W-bar in
        the Z's vector couplings and sin^2 theta_W in their normalisation, the Z mass and
        its running width, no Z', its incoming flavours.
    """
    from dataclasses import replace

    if params.n_jets != 1 or isinstance(params.scale, str) or params.alpha_s is None:
        raise ConfigError("Pythia's Z + jet reference needs one jet, a fixed scale and a "
                          "fixed alpha_s")  # fmt: skip
    if math.isfinite(params.eta_max):
        raise ConfigError("Pythia's hard process has no eta cut: use eta_max = inf")
    ew = params.electroweak
    mu2 = float(params.scale) ** 2
    settings = [
        f"Beams:eCM = {ew.sqrt_s}", "WeakBosonAndParton:qqbar2gmZg = on",
        "WeakBosonAndParton:qg2gmZq = on", "23:onMode = off", f"23:onIfAny = {ew.lepton}",
        f"23:mMin = {params.m_ll_min}", f"23:mMax = {params.m_ll_max}",
        f"PhaseSpace:pTHatMin = {params.pt_min}", f"PDF:pSet = {pdf_set}",
        f"PDFinProcess:nQuarkIn = {max(ew.flavours)}", "SigmaProcess:alphaSorder = 0",
        f"SigmaProcess:alphaSvalue = {params.alpha_s}", "SigmaProcess:renormScale2 = 5",
        "SigmaProcess:factorScale2 = 5", f"SigmaProcess:renormFixScale = {mu2}",
        f"SigmaProcess:factorFixScale = {mu2}", "PartonLevel:all = off",
        "HadronLevel:all = off", "Next:numberCount = 0", "Print:quiet = on",
        "Random:setSeed = on", f"Random:seed = {seed}",
    ]  # fmt: skip
    if tuple(ew.flavours) != tuple(range(1, max(ew.flavours) + 1)):
        raise ConfigError(f"Pythia takes incoming flavours 1..n; got {ew.flavours}")
    pythia = _pythia(settings)
    electroweak = replace(
        ew, mz=pythia.particleData.m0(23), wz=pythia.particleData.mWidth(23),
        alpha_em=float(pythia.coupSM.alphaEM(mu2)), sin2w=pythia.coupSM.sin2thetaWbar(),
        sin2w_norm=pythia.coupSM.sin2thetaW(), zprime=False, running_width=True,
    )  # fmt: skip
    return pythia, settings, electroweak


def qqbar_ggg_closed_form(p: Tensor, s_half: Tensor | None = None) -> Tensor:
    """Pythia 8's closed form of q q-bar -> g g g (``Sigma3qqbar2ggg::m2Calc``) over
    (4 pi alpha_s)^3: spin- and colour-averaged, summed, times 3! for the identical gluons.

    The bracket's first terms carry s / 2 with s = (p_+ + p_-)^2. Pythia's code takes that
    ``sHhalf`` from the event's s-hat, also when ``Sigma3qg2qgg`` and ``Sigma3gg2qqbarg``
    evaluate the formula at crossed momenta, where s-hat is another invariant (while its
    last term uses the crossed s). Pass ``s_half`` = s-hat / 2 to reproduce that.

    Args:
        p: (N, 5, 4) momenta (E, px, py, pz) in the formula's slots (p_+, p_-, k_1, k_2,
            k_3); crossed legs keep their physical momenta (the form is even under the
            sign flips of a crossing).
        s_half: (N,) the value of its s / 2 term; default (p_+ + p_-)^2 / 2.

    Returns:
        (N,) the closed form (GeV^-2 powers as in Pythia: dimensionless here).
    """
    from hepflows.physics.amplitudes.berends_giele import mdot

    if p.ndim != 3 or p.shape[1:] != (5, 4):
        raise InputError(f"need momenta (N, 5, 4), got {tuple(p.shape)}")
    a = [mdot(p[:, 0], p[:, k]) for k in (2, 3, 4)]
    b = [mdot(p[:, 1], p[:, k]) for k in (2, 3, 4)]
    kk = {(0, 1): mdot(p[:, 2], p[:, 3]), (1, 2): mdot(p[:, 3], p[:, 4]),
          (2, 0): mdot(p[:, 4], p[:, 2])}  # fmt: skip
    ab = {key: a[key[0]] * b[key[1]] + a[key[1]] * b[key[0]] for key in kk}
    num1 = sum(a[i] * b[i] * (a[i] ** 2 + b[i] ** 2) for i in range(3))
    den1 = math.prod(a) * math.prod(b)
    num2 = -sum(ab[key] / kk[key] for key in kk)
    num3 = (a[2] * b[2] * ab[(0, 1)] / (kk[(1, 2)] * kk[(2, 0)])
            + a[0] * b[0] * ab[(1, 2)] / (kk[(2, 0)] * kk[(0, 1)])
            + a[1] * b[1] * ab[(2, 0)] / (kk[(0, 1)] * kk[(1, 2)]))  # fmt: skip
    s = mdot(p[:, 0] + p[:, 1], p[:, 0] + p[:, 1])
    half = s / 2 if s_half is None else s_half
    return 8 / 324 * num1 / den1 * (half + 9 * (half + num2) + 162 / s * num3)
