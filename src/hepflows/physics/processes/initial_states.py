"""Channels per initial-state group: every phase-space channel once per parton pair type.

MadNIS splits a multi-jet integral over channels per subprocess and diagram; here the
split is (phase-space channel j) x (initial-state group c), c one of g g, g q, q g,
q qbar, q Q, ... (:func:`initial_state_group`). Channel (j, c) keeps channel j's map and
gets the prior weight

    g_jc(x) = (1 / |dx/du|_j(x)) * L_c(x1, x2) / sum_c' L_c'(x1, x2),

channel j's own density (Kleiss-Pittau) times group c's share of the parton luminosity
at the point's x1, x2 and mu_F. Learned channel weights (``weights="learned"``) start
from these and learn the rest (the groups' |M|^2 differ); channel dropping removes the
groups that carry a negligible share of the integral. The C priors of a point are
computed together once per batch (:class:`GroupPriors`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hepflows.errors import ConfigError
from hepflows.integrate.channels import Channel, apply_inverse
from hepflows.physics.amplitudes import GLUON
from hepflows.physics.processes.hadronic import parton_densities

__all__ = ["GroupPriors", "group_channels", "initial_state_group"]


def initial_state_group(a: int, b: int) -> str:
    """The group label of an initial state (pid_a, pid_b): "g g", "g q", "q qbar",
    "q Q" (different flavours), "qbar Qbar", ... (13 groups with quarks and gluons)."""

    def kind(pid: int) -> str:
        return "g" if pid == GLUON else ("q" if pid > 0 else "qbar")

    ka, kb = kind(a), kind(b)
    if GLUON in (a, b) or abs(a) == abs(b):
        return f"{ka} {kb}"
    return f"{ka} {kb.replace('q', 'Q', 1)}"


class GroupPriors:
    """The (N, J * G) prior weights g_jc(x) of :func:`group_channels`, computed once per x.

    Args:
        process: provides ``momenta(x)`` (lab momenta, beams first), ``scale2(p)``,
            ``pdf``, ``pids`` and ``sqrt_s``.
        channels: the J phase-space channels (each invertible).
        pairs: per group, its initial states (pid_a, pid_b).
    """

    def __init__(self, process: object, channels: Sequence[Channel],
                 pairs: Sequence[Sequence[tuple[int, int]]]) -> None:  # fmt: skip
        if not all(ch.invertible for ch in channels):
            raise ConfigError("group channels need invertible phase-space channels")
        self.process, self.channels, self.pairs = process, list(channels), [list(p) for p in pairs]
        self._x: Tensor | None = None  # the last points (held: no other tensor reuses them)
        self._version = -1
        self._value: Tensor | None = None

    def luminosity_shares(self, x: Tensor) -> Tensor:
        """(N, G) each group's share of the parton luminosity at points x (N, d)."""
        proc = self.process
        p, _ = proc.momenta(x)
        x1, x2 = 2 * p[:, 0, 0] / proc.sqrt_s, 2 * p[:, 1, 0] / proc.sqrt_s
        mu2 = proc.scale2(p)
        f1 = parton_densities(proc.pdf, proc.pids, x1.clamp(1e-12, 1), mu2)
        f2 = parton_densities(proc.pdf, proc.pids, x2.clamp(1e-12, 1), mu2)
        lum = torch.stack([sum(f1[a] * f2[b] for a, b in pairs) for pairs in self.pairs], 1)
        total = lum.sum(1, keepdim=True)
        flat = torch.full_like(lum, 1 / lum.shape[1])
        return torch.where(total > 0, lum / total.clamp_min(1e-300), flat)

    def __call__(self, x: Tensor) -> Tensor:
        """(N, J * G) priors at x (N, d), channel-major (index j * G + c)."""
        if x is not self._x or x._version != self._version:
            shares = self.luminosity_shares(x)
            dens = torch.stack([1 / apply_inverse(ch, j, x)[1]
                                for j, ch in enumerate(self.channels)], 1)  # fmt: skip
            self._value = (dens[:, :, None] * shares[:, None, :]).reshape(len(x), -1)
            self._x, self._version = x, x._version
        return self._value


def group_channels(process: object, channels: Sequence[Channel]) -> list[Channel]:
    """Every phase-space channel once per initial-state group of ``process``' subprocess
    classes (``process.classes``, each with ``members`` (pid_a, pid_b)): J * G channels
    named "<channel>; <group>", with the priors of :class:`GroupPriors` (shared, computed
    once per batch of points)."""
    groups: dict[str, set[tuple[int, int]]] = {}
    for cls in process.classes:
        for a, b in cls.members:
            groups.setdefault(initial_state_group(a, b), set()).add((a, b))
    labels = sorted(groups)
    priors = GroupPriors(process, channels, [sorted(groups[k]) for k in labels])
    width = len(labels)

    def prior(index: int):  # noqa: ANN202 - a closure per channel
        return lambda x: priors(x)[:, index]

    return [Channel(mapping=ch.mapping, inverse=ch.inverse, prior=prior(j * width + c),
                    name=f"{ch.name}; {label}")
            for j, ch in enumerate(channels) for c, label in enumerate(labels)]  # fmt: skip
