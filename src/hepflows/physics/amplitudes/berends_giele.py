"""Colour-ordered tree amplitudes by Berends-Giele recursion, batched over events and helicities.

Everything is in the all-outgoing convention: leg i carries the signed momentum K_i (the
physical momentum for an outgoing particle, minus it for an incoming one; sum K_i = 0).
Wave functions are built from the physical momenta (massless spinors and polarisation
vectors of :mod:`hepflows.physics.helicity`); since the helicities are summed, using
u for both u and v (and eps* for both eps and eps*) only relabels the helicity states.

Colour-ordered Feynman rules (Dixon, hep-ph/9601359; generators normalised
Tr(T^a T^b) = delta^{ab}), all momenta outgoing, Feynman gauge:

* three-gluon vertex, legs (k, mu), (p, nu), (q, rho) in colour order:
  (i/sqrt2) [g_{nu rho} (p - q)_mu + g_{rho mu} (q - k)_nu + g_{mu nu} (k - p)_rho];
* four-gluon vertex, legs mu nu rho lam in colour order:
  i g_{mu rho} g_{nu lam} - (i/2) (g_{mu nu} g_{rho lam} + g_{mu lam} g_{nu rho});
* quark-gluon vertex (i/sqrt2) gamma^mu, for a gluon between the quark (the row spinor's
  end) and the antiquark (the column spinor's end) in the colour order;
* propagators -i g_{mu nu} / P^2 (gluon) and i Pslash / P^2 (quark, P along the fermion
  flow towards the row spinor).

The gluon current J(t) of an ordered tuple t of legs is the off-shell gluon (with its
propagator) that those legs make; the row current R(t) of a quark line is
ubar(q) [vertices and propagators of the legs t]; both are memoised by their tuple, so
the (n-1)! orderings of an amplitude share their sub-currents. A colourless vector (the
gamma*/Z of Drell-Yan + jets) can be attached to the quark line at every position; it
enters as an effective current E_L, E_R per chirality of the line (the massless line
keeps its chirality).

Tensors: momenta (N, n, 4) float64; wave functions and currents (N, H, 4) complex128,
with H the helicity configurations evaluated together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from hepflows.errors import InputError
from hepflows.physics.helicity import slash

__all__ = ["CurrentBuilder", "mdot"]

_ISQRT2 = 1 / math.sqrt(2)


def mdot(a: Tensor, b: Tensor) -> Tensor:
    """Minkowski product a.b = a^0 b^0 - a-vec.b-vec, no conjugation: (..., 4) x2 -> (...)."""
    # component by component: 1.6x faster than (a * b * metric).sum(-1) on complex batches
    return (a[..., 0] * b[..., 0] - a[..., 1] * b[..., 1]
            - a[..., 2] * b[..., 2] - a[..., 3] * b[..., 3])  # fmt: skip


class CurrentBuilder:
    """Berends-Giele currents of one batch of events (one set of helicity configurations).

    Args:
        momenta: signed outgoing momenta K (N, n, 4) float64 (sum over legs = 0).
        vectors: polarisation vectors per gluon leg, {leg: (N, H, 4) complex128}; any other
            vector-like leg too (e.g. an off-shell current treated as an external gluon).
        bars: row spinors per quark-line start (the outgoing quark's end), {leg: (N, H, 4)}.
        kets: column spinors per quark-line end, {leg: (N, H, 4)}.
        electroweak: optional effective colourless current (E_L, E_R, K_V): two (N, H, 4)
            complex128 tensors and the vector's signed momentum (N, 4), attachable to the
            quark line (:meth:`line_amplitude` with ``with_vector=True``).
    """

    def __init__(
        self,
        momenta: Tensor,
        vectors: dict[int, Tensor],
        bars: dict[int, Tensor] | None = None,
        kets: dict[int, Tensor] | None = None,
        electroweak: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> None:
        if momenta.ndim != 3 or momenta.shape[-1] != 4 or momenta.dtype != torch.float64:
            raise InputError(f"momenta must be float64 of shape (N, n, 4), got "
                             f"{tuple(momenta.shape)} {momenta.dtype}")  # fmt: skip
        self.k = momenta
        self.vectors = vectors
        self.bars = bars or {}
        self.kets = kets or {}
        self.electroweak = electroweak
        self._gluon: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}
        self._row: dict[tuple[int, tuple[int, ...], bool], Tensor] = {}

    # ------------------------------------------------------------------ gluons
    def momentum(self, legs: Sequence[int]) -> Tensor:
        """Sum of the signed momenta of ``legs``: (N, 4) float64."""
        return self.k[:, list(legs)].sum(1)

    def vertex_sum(self, t: tuple[int, ...]) -> Tensor:
        """The vertices joining the sub-currents of t, before the propagator: (N, H, 4)."""
        out = 0
        for k in range(1, len(t)):
            j1, p1 = self.gluon(t[:k])
            j2, p2 = self.gluon(t[k:])
            out = out + _three_gluon(j1, p1, j2, p2)
        for j in range(1, len(t) - 1):
            for k in range(j + 1, len(t)):
                out = out + _four_gluon(self.gluon(t[:j])[0], self.gluon(t[j:k])[0],
                                        self.gluon(t[k:])[0])  # fmt: skip
        return out

    def gluon(self, t: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Gluon current J(t) (N, H, 4) complex128 and its momentum P(t) (N, 4) float64."""
        if t in self._gluon:
            return self._gluon[t]
        p = self.momentum(t)
        if len(t) == 1:
            if t[0] not in self.vectors:
                raise InputError(f"leg {t[0]} has no polarisation vector")
            out = (self.vectors[t[0]], p)
        else:
            out = (self.vertex_sum(t) * _gluon_propagator(p), p)
        self._gluon[t] = out
        return out

    def gluon_amplitude(self, order: Sequence[int]) -> Tensor:
        """Colour-ordered all-gluon amplitude A(order) (N, H) complex128.

        The last leg closes the current of the others: A = eps_last . V(rest).
        """
        order = tuple(order)
        if len(order) < 3:
            raise InputError("a gluon amplitude needs at least three legs")
        return mdot(self.vertex_sum(order[:-1]), self.gluon(order[-1:])[0])

    # ------------------------------------------------------------------ quark lines
    def _insert(self, bar: int, t: tuple[int, ...], vector: bool) -> Tensor:
        """sum over the last vertex of R(t'), t' a prefix, times the rest: before propagator."""
        out = 0
        for k in range(len(t)):
            out = out + _row_times(self.row(bar, t[:k], vector),
                                   _ISQRT2 * 1j * slash(self.gluon(t[k:])[0]))  # fmt: skip
        if vector:
            e_l, e_r, _ = self.electroweak
            out = out + _row_times(self.row(bar, t, False), _chiral_slash(e_l, e_r))
        return out

    def row(self, bar: int, t: tuple[int, ...], vector: bool = False) -> Tensor:
        """Row current R(t) of the quark line starting at ``bar`` (N, H, 4) complex128.

        ``vector``: the colourless vector is attached somewhere on this stretch.
        """
        key = (bar, t, vector)
        if key in self._row:
            return self._row[key]
        if not t and not vector:
            out = self.bars[bar]
        else:
            p = self.momentum((bar, *t))
            if vector:
                p = p + self.electroweak[2]
            propagator = 1j * slash(p)[:, None] / _square(p)[:, None, None, None]
            out = _row_times(self._insert(bar, t, vector), propagator)
        self._row[key] = out
        return out

    def line_amplitude(self, bar: int, order: Sequence[int], ket: int,
                       with_vector: bool = False) -> Tensor:
        """Colour-ordered A(bar, order..., ket) of one quark line (N, H) complex128.

        ``order`` lists the gluon legs (or gluon-like currents) between the quark and the
        antiquark in colour order; ``with_vector`` attaches the colourless vector.
        """
        if with_vector and self.electroweak is None:
            raise InputError("with_vector needs an electroweak current")
        head = self._insert(bar, tuple(order), with_vector)
        return (head * self.kets[ket]).sum(-1)


# ------------------------------------------------------------------ vertex algebra
def _square(p: Tensor) -> Tensor:
    return p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)


def _gluon_propagator(p: Tensor) -> Tensor:
    """-i / P^2 as (N, 1, 1) complex."""
    return (-1j / _square(p))[:, None, None]


def _three_gluon(j1: Tensor, p1: Tensor, j2: Tensor, p2: Tensor) -> Tensor:
    """Colour-ordered three-gluon vertex with the currents (j1, P1), (j2, P2) attached."""
    p1c, p2c = p1[:, None, :], p2[:, None, :]
    return 1j * _ISQRT2 * (mdot(j1, j2)[..., None] * (p1c - p2c)
                           + mdot(p1c + 2 * p2c, j1)[..., None] * j2
                           - mdot(2 * p1c + p2c, j2)[..., None] * j1)  # fmt: skip


def _four_gluon(j1: Tensor, j2: Tensor, j3: Tensor) -> Tensor:
    """Colour-ordered four-gluon vertex with three currents attached."""
    return 1j * (mdot(j1, j3)[..., None] * j2
                 - 0.5 * (mdot(j2, j3)[..., None] * j1 + mdot(j1, j2)[..., None] * j3))  # fmt: skip


def _row_times(row: Tensor, matrix: Tensor) -> Tensor:
    """(N, H, 4) row times a (N, H or 1, 4, 4) matrix -> (N, H, 4)."""
    return (row[..., None, :] @ matrix)[..., 0, :]


def _chiral_slash(e_left: Tensor, e_right: Tensor) -> Tensor:
    """slash(E_L) P_L + slash(E_R) P_R: (N, H, 4) x2 -> (N, H, 4, 4).

    P_L keeps the upper (left-handed) components of the column it acts on.
    """
    left, right = slash(e_left), slash(e_right)
    return torch.cat((left[..., :2], right[..., 2:]), dim=-1)
