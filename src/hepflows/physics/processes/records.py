"""Les Houches records of partonic events: subprocess, flavours and colour flow per event.

An event of a process summed over subprocesses (:class:`~hepflows.physics.processes.
MultiJet`, :class:`~hepflows.physics.processes.DrellYanJets`) is a point in phase space;
its record needs one concrete subprocess. Each is drawn by its share at that point: the
class by its d sigma, the member (the concrete flavours) by its parton luminosity, then a
leading-colour flow by its weight (:mod:`hepflows.physics.amplitudes.colour_flow`), so a
parton shower can start from the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hepflows.errors import InputError
from hepflows.io.particles import particle_table
from hepflows.physics.amplitudes.colour_flow import colour_tags, flow_weights, flows
from hepflows.physics.processes.hadronic import parton_densities


def _draw(weights: Tensor, generator: torch.Generator | None) -> Tensor:
    """One column per row of (N, K) weights >= 0, with probability proportional: (N,)."""
    return torch.multinomial(weights.clamp_min(0), 1, generator=generator)[:, 0]


def parton_records(
    classes: Sequence[object],
    contributions: Tensor,
    p: Tensor,
    pdf: object,
    pids: Sequence[int],
    mu2: Tensor,
    sqrt_s: float,
    prefix: tuple[int, ...] = (),
    generator: torch.Generator | None = None,
) -> Tensor:
    """(N, n, 13) particle records of N events (LHEF order, :func:`~hepflows.io.particles.
    particle_table`).

    Args:
        classes: the subprocess classes (``amplitude``, ``members``, ``outgoing``).
        contributions: (K, N) d sigma of each class at each event (> 0 somewhere per event).
        p: (N, n, 4) lab momenta in the amplitudes' leg order (beams first).
        pdf, pids: the parton densities and the parton ids of the luminosities.
        mu2: (N,) factorisation scales (GeV^2).
        sqrt_s: collider energy (GeV).
        prefix: outgoing non-partons before the partons of ``outgoing`` (leptons).
        generator: the draws' stream (class, member, flow, in that order per class).
    """
    n_events, n_legs = p.shape[:2]
    if contributions.shape != (len(classes), n_events):
        raise InputError(f"contributions must be ({len(classes)}, {n_events}), got "
                         f"{tuple(contributions.shape)}")  # fmt: skip
    if not bool((contributions.clamp_min(0).sum(0) > 0).all()):
        raise InputError("an event has no subprocess with d sigma > 0: records are only "
                         "defined for events inside the cuts")  # fmt: skip
    chosen = _draw(contributions.T, generator)
    pid = torch.zeros(n_events, n_legs, dtype=torch.float64, device=p.device)
    colours = torch.zeros(n_events, n_legs, 2, dtype=torch.float64, device=p.device)
    x1, x2 = 2 * p[:, 0, 0] / sqrt_s, 2 * p[:, 1, 0] / sqrt_s
    for k, cls in enumerate(classes):
        rows = (chosen == k).nonzero()[:, 0]
        if not len(rows):
            continue
        f1 = parton_densities(pdf, pids, x1[rows], mu2[rows])
        f2 = parton_densities(pdf, pids, x2[rows], mu2[rows])
        lum = torch.stack([f1[a] * f2[b] for a, b in cls.members], 1)
        member = _draw(lum, generator)
        table = torch.tensor([(*m, *prefix, *o) for m, o in zip(cls.members, cls.outgoing,
                                                                 strict=True)],
                             dtype=torch.float64, device=p.device)  # fmt: skip
        pid[rows] = table[member]
        amp = cls.amplitude
        lines = flows(amp)
        choice = _draw(flow_weights(amp, p[rows]), generator)
        colours[rows] = colour_tags(lines, choice, n_legs).to(p.device)
    status = (-1, -1) + (1,) * (n_legs - 2)
    mothers = ((0, 0), (0, 0)) + ((1, 2),) * (n_legs - 2)
    return particle_table(pid, status, mothers, p, (0.0,) * n_legs, colours)


class PartonEvents:
    """What the event files need of a process summed over parton subprocesses
    (:class:`~hepflows.physics.processes.MultiJet`, :class:`~hepflows.physics.processes.
    DrellYanJets`): records, per-event scales and the file header, written once.

    The process provides ``classes``, ``pdf``, ``pids``, ``sqrt_s``, ``params`` (``scale``,
    ``alpha_s``, ``n_jets``), ``momenta(u)``, ``scale2(p)``, ``class_contributions(u)``,
    its LHEF id base :attr:`lhe_id` and the non-partons :attr:`record_prefix`.
    """

    #: LHEF process id of the files: this + the number of jets.
    lhe_id: int = 0
    #: outgoing non-partons before the partons in the records (leptons).
    record_prefix: tuple[int, ...] = ()
    #: NeuralIntegrator options for these integrands: tree amplitudes cost 0.1-3 ms per
    #: point, so each fresh batch pays for many optimiser steps. pp -> 3 jets, 2e4 + 5e4
    #: calls: batch 1000 / 7 buffered steps (the trainer's default) gave unweighting
    #: 0.047 (max rule) / 0.116 (0.999 quantile); batch 500 / 31 steps 0.099 / 0.192
    #: at 0.35 % instead of 0.50 % (docs/multijet.md).
    training_options: dict = {"batch_size": 500, "buffered_steps": 31}  # noqa: RUF012

    def alpha_s(self, mu2: Tensor) -> Tensor:
        """alpha_s (N,): fixed, or the PDF set's at mu^2."""
        if self.params.alpha_s is not None:
            return torch.full_like(mu2, float(self.params.alpha_s))
        return self.pdf.alpha_s(mu2)

    def particle_table(self, u: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, P, 13) Les Houches records of events at (N, dims) points inside the cuts:
        subprocess, flavours and leading-colour flow drawn per event
        (:func:`parton_records`)."""
        p, _ = self.momenta(u)
        return parton_records(self.classes, self.class_contributions(u), p, self.pdf,
                              self.pids, self.scale2(p), self.sqrt_s, self.record_prefix,
                              generator)  # fmt: skip

    def event_scales(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Per-event mu (GeV) and alpha_s(mu) at (N, dims) points: two (N,) (SCALUP, AQCDUP)."""
        mu2 = self.scale2(self.momenta(u)[0])
        return mu2.sqrt(), self.alpha_s(mu2)

    def event_header(self) -> dict[str, object]:
        """Keyword arguments of :func:`~hepflows.io.write_events`: beams, PDF set, LHEF
        process id (:attr:`lhe_id` + n jets), SCALUP (the fixed scale, or 0 for H_T / 2)."""
        p = self.params
        return dict(beams=(2212, 2212, self.sqrt_s / 2, self.sqrt_s / 2),
                    pdf_set=getattr(self.pdf, "lhapdf_id", None) or 0,
                    process_id=self.lhe_id + p.n_jets,
                    scale=0.0 if isinstance(p.scale, str) else float(p.scale))  # fmt: skip

