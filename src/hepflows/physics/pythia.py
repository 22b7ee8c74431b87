"""Pythia 8 (``pythia8mc``) as the independent reference for Drell-Yan.

:func:`pythia_drell_yan` sets Pythia up for gamma*/Z -> l+ l- at LO, hard
process only, with a fixed factorisation scale M_Z, four incoming quark
flavours and the default PDF (``PDF:pSet = 13``, NNPDF2.3 QCD+QED LO, the
grid :func:`hepflows.physics.load_pdf` reads by default), and
:func:`pythia_events` runs it: sigma with its error and the hard-process
lepton momenta. :func:`hepflows.physics.processes.pythia_parameters` then
configures hepflows with Pythia's own conventions, so that like is compared
with like (design note: physics.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hepflows.errors import ConfigError
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
    pythia8mc = require("pythia8mc", "physics", "The Pythia 8 cross-check")
    settings = [
        f"Beams:eCM = {sqrt_s}", "WeakSingleBoson:ffbar2gmZ = on",
        f"PhaseSpace:mHatMin = {m_min}", "23:onMode = off", f"23:onIfAny = {lepton}",
        f"PDF:pSet = {pdf_set}", f"PDFinProcess:nQuarkIn = {flavours}",
        "SigmaProcess:factorScale1 = 2", "SigmaProcess:factorFixScale = 8315.25",
        "PartonLevel:all = off", "HadronLevel:all = off", "Next:numberCount = 0",
        "Print:quiet = on", "Random:setSeed = on", f"Random:seed = {seed}",
    ]  # fmt: skip
    pythia = pythia8mc.Pythia("", False)
    for line in settings:
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise ConfigError("Pythia failed to initialise (see its output)")
    return pythia, settings


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
