"""Squared tree-level matrix elements of parton processes: QCD with up to five partons and
q qbar -> gamma*/Z -> l- l+ with up to two more partons.

:class:`TreeAmplitude` takes the process as PDG ids (quarks 1-5 and their antiquarks,
gluon 21, charged leptons 11/13 and their antileptons in the final state) and returns
sum |M|^2 over helicities and colours, averaged over the incoming ones (ESW's
convention, Ellis-Stirling-Webber tables 7.1, 7.2), for strong coupling g_s = 1: multiply
by (4 pi alpha_s)^n_strong. The symmetry factor of identical final-state particles is
*not* included (it belongs to the phase space): :attr:`TreeAmplitude.symmetry`.

Three amplitude classes, all in the all-outgoing convention of
:mod:`~hepflows.physics.amplitudes.berends_giele`:

* gluons only: colour-ordered Berends-Giele amplitudes A(0, sigma) in the trace basis,
  sum |M|^2 = A^dagger C A with the trace colour matrix;
* one quark line with gluons (and optionally the gamma*/Z, attached at every position):
  colour-ordered line amplitudes in the string basis (T...T)_{i j};
* two quark lines (four quarks, with at most one gluon or the gamma*/Z): the gluon
  exchange diagrams with standard Feynman rules (Peskin-Schroeder, D = d - i g A^a t^a,
  t = lambda / 2) and their explicit colour tensors, whose Gram matrix gives the colour
  sum; identical flavours add the exchanged pairing with a minus sign.

Helicity configurations that vanish identically (massless quark lines keep their chirality;
tree-level all-plus gluon amplitudes vanish) are found once on the first events and
skipped afterwards. Pure QCD conserves parity, so a configuration and its mirror (all
helicities flipped) give the same colour-summed |M|^2: only the configurations with the
first leg's helicity -1 are evaluated, counted twice (not with leptons: the Z's couplings
are chiral).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hepflows.errors import ConfigError, InputError
from hepflows.physics.amplitudes import colour
from hepflows.physics.amplitudes.berends_giele import CurrentBuilder, mdot
from hepflows.physics.helicity import (
    ffv_current,
    slash,
    spinor_u,
    spinor_ubar,
    vector_wavefunction,
)

__all__ = ["GLUON", "TreeAmplitude"]

GLUON = 21
QUARKS = (1, 2, 3, 4, 5)
LEPTONS = (11, 13)
_ZERO_HELICITY = 1e-10  # |A| below this fraction of the largest: a vanishing configuration


class TreeAmplitude:
    """sum |M|^2 (helicities, colours; incoming averaged) of one tree-level parton process.

    Args:
        incoming: the two incoming PDG ids (quarks, antiquarks, gluons).
        outgoing: the outgoing PDG ids; may include one lepton pair (11, -11 or 13, -13)
            made by gamma*/Z from a quark line.
        electroweak: for processes with leptons: an object with
            ``helicity_amplitudes(quark, s) -> (4, N)`` complex couplings times
            propagators for (quark, lepton) chiralities LL, RR, LR, RL, e.g.
            :class:`~hepflows.physics.processes.DrellYan`.
        chunk: events per batch inside (memory: ~ chunk x 2^n x 4 x 4 complex numbers).

    Raises:
        ConfigError: a process outside the supported classes; the message says why.
    """

    def __init__(
        self,
        incoming: Sequence[int],
        outgoing: Sequence[int],
        electroweak: Any = None,
        chunk: int = 2048,
    ) -> None:
        incoming, outgoing = tuple(incoming), tuple(outgoing)
        if len(incoming) != 2:
            raise ConfigError(f"two incoming partons expected, got {incoming}")
        for pid in incoming + outgoing:
            if abs(pid) not in QUARKS + LEPTONS and pid != GLUON:
                raise ConfigError(f"unsupported particle {pid}: quarks 1-5, gluon 21 and "
                                  f"(outgoing) leptons 11, 13, their antiparticles")  # fmt: skip
        if any(abs(p) in LEPTONS for p in incoming):
            raise ConfigError("leptons may only be outgoing (gamma*/Z -> l- l+)")
        self.incoming, self.outgoing = incoming, outgoing
        self.chunk = chunk
        # all-outgoing flavours: an incoming quark is an outgoing antiquark
        flav = [-p if p != GLUON else p for p in incoming] + list(outgoing)
        self.flavours = flav
        self.gluons = [i for i, f in enumerate(flav) if f == GLUON]
        self.bars = [i for i, f in enumerate(flav) if f in QUARKS]
        self.kets = [i for i, f in enumerate(flav) if -f in QUARKS]
        leptons = [i for i, f in enumerate(flav) if abs(f) in LEPTONS]
        self.leptons = sorted(leptons, key=lambda i: -flav[i])  # (l-, l+)
        if leptons:
            lf = sorted(flav[i] for i in leptons)
            if len(leptons) != 2 or lf[0] != -lf[1]:
                got = [flav[i] for i in leptons]
                raise ConfigError(f"one lepton pair l- l+ expected, got {got}")
            if electroweak is None:
                raise ConfigError("a process with leptons needs electroweak= (e.g. a DrellYan)")
            if not self.bars:
                raise ConfigError("the lepton pair needs a quark line to attach to")
        self.electroweak = electroweak
        if sorted(abs(flav[i]) for i in self.bars) != sorted(abs(flav[i]) for i in self.kets):
            raise ConfigError(f"quark flavours are not conserved in {incoming} -> {outgoing}")
        n_lines = len(self.bars)
        if n_lines > 2:
            raise ConfigError("at most two quark lines (four quarks) are supported")
        if n_lines == 2 and len(self.gluons) + bool(leptons) > 1:
            raise ConfigError("four-quark processes take at most one gluon or one lepton pair")
        if n_lines == 0 and not 3 <= len(self.gluons) <= 6:
            raise ConfigError("gluon amplitudes need 3 to 6 gluons")
        if n_lines == 1 and len(self.gluons) > 4:
            raise ConfigError("one quark line takes at most four gluons")
        self.n_legs = len(flav)
        n_partons = len(self.gluons) + 2 * n_lines
        self.n_strong = n_partons - 2  # powers of g_s^2 (q qbar -> l l: 0)
        colour_states = {GLUON: 8}
        self.average = 1.0 / 4 / math.prod(colour_states.get(p, 3) for p in incoming)
        counts = Counter(outgoing)
        self.symmetry = 1.0 / math.prod(math.factorial(c) for c in counts.values())
        self._active: Tensor | None = None

    # ------------------------------------------------------------------ public
    def __repr__(self) -> str:
        return f"TreeAmplitude({self.incoming} -> {self.outgoing})"

    def __call__(self, p: Tensor) -> Tensor:
        """sum |M|^2 / (spins, colours of the incoming) at g_s = 1: (N, n, 4) -> (N,) float64.

        Args:
            p: physical momenta (E, px, py, pz), float64, incoming first, in the order of
                ``incoming + outgoing``; momentum must be conserved.
        """
        if p.ndim != 3 or p.shape[1:] != (self.n_legs, 4):
            raise InputError(f"momenta must have shape (N, {self.n_legs}, 4), got "
                             f"{tuple(p.shape)}")  # fmt: skip
        if p.dtype != torch.float64:
            raise InputError(f"momenta must be float64, got {p.dtype}: use p.double()")
        if self._active is None:
            self._active = self._find_active(p[: min(len(p), 16)])
        out = [self._squared(p[i : i + self.chunk], self._active)
               for i in range(0, len(p), self.chunk)]  # fmt: skip
        return torch.cat(out) * (self.average * self.parity_factor)

    def helicity_configurations(self) -> Tensor:
        """All 2^n helicity configurations (H, n) of +-1, leg by leg."""
        return _configurations(self.n_legs)

    # ------------------------------------------------------------------ internals
    @property
    def parity_factor(self) -> float:
        """2 for pure QCD (mirror configurations counted by doubling), 1 with leptons."""
        return 1.0 if self.leptons else 2.0

    def _find_active(self, p: Tensor) -> Tensor:
        configs = self.helicity_configurations()
        if not self.leptons:
            configs = configs[configs[:, 0] == -1]
        amps = self._amplitudes(p, configs)  # (N, H, K)
        size = amps.abs().amax(dim=(0, 2))
        return configs[size > _ZERO_HELICITY * size.max()]

    def _squared(self, p: Tensor, configs: Tensor) -> Tensor:
        amps = self._amplitudes(p, configs)  # (N, H, K)
        c = torch.as_tensor(self._colour_matrix(), dtype=torch.complex128)
        return torch.einsum("nhk,kl,nhl->n", amps.conj(), c, amps).real

    def _colour_matrix(self) -> np.ndarray:
        if not self.bars:
            return colour.trace_matrix(len(self.gluons))
        if len(self.bars) == 1:
            return colour.string_matrix(len(self.gluons))
        return colour.gram(np.stack(self._four_quark_structures()))

    def _amplitudes(self, p: Tensor, configs: Tensor) -> Tensor:
        """Kinematic coefficients of the colour structures: (N, H, K) complex128."""
        signs = torch.tensor([-1.0 if i < 2 else 1.0 for i in range(self.n_legs)],
                             dtype=torch.float64)  # fmt: skip
        k = p * signs[:, None]
        waves = self._wavefunctions(p, configs)
        if not self.bars:
            builder = CurrentBuilder(k, {i: waves[i] for i in self.gluons})
            orders = [tuple(self.gluons[j] for j in o)
                      for o in colour.gluon_orderings(len(self.gluons))]  # fmt: skip
            # reflection: A(0, s_1 .. s_m) = (-1)^n A(0, s_m .. s_1), half the orderings
            amps: dict[tuple[int, ...], Tensor] = {}
            sign = (-1.0) ** len(orders[0])
            for o in orders:
                mirror = (o[0], *reversed(o[1:]))
                amps[o] = sign * amps[mirror] if mirror in amps else builder.gluon_amplitude(o)
            return torch.stack([amps[o] for o in orders], dim=-1)
        if len(self.bars) == 1:
            bar, ket = self.bars[0], self.kets[0]
            ew = self._electroweak_current(k, waves, self.flavours[bar]) if self.leptons else None
            builder = CurrentBuilder(k, {i: waves[i] for i in self.gluons}, {bar: waves[bar]},
                                     {ket: waves[ket]}, ew)  # fmt: skip
            orders = [tuple(self.gluons[j] for j in o)
                      for o in colour.quark_line_orderings(len(self.gluons))]  # fmt: skip
            return torch.stack([builder.line_amplitude(bar, o, ket, bool(self.leptons))
                                for o in orders], dim=-1)  # fmt: skip
        return self._four_quark(k, waves)

    def _wavefunctions(self, p: Tensor, configs: Tensor) -> dict[int, Tensor]:
        out = {}
        for i, f in enumerate(self.flavours):
            if f == GLUON:
                pair = [vector_wavefunction(p[:, i], 0.0, h) for h in (-1, 1)]
            elif f > 0:  # a row spinor: outgoing (anti)fermion line end
                pair = [spinor_ubar(p[:, i], 0.0, h) for h in (-1, 1)]
            else:
                pair = [spinor_u(p[:, i], 0.0, h) for h in (-1, 1)]
            both = torch.stack(pair, dim=1)  # (N, 2, 4)
            out[i] = both[:, ((configs[:, i] + 1) // 2).long()]
        return out

    def _electroweak_current(self, k: Tensor, waves: dict[int, Tensor], quark: int
                             ) -> tuple[Tensor, Tensor, Tensor]:
        """(E_L, E_R, K_V) of gamma*/Z -> l- l+ seen by a quark line of flavour ``quark``."""
        lm, lp = self.leptons
        kv = k[:, lm] + k[:, lp]
        s = kv[:, 0] ** 2 - (kv[:, 1:] ** 2).sum(-1)
        a = self.electroweak.helicity_amplitudes(abs(quark), s)  # LL, RR, LR, RL
        cur_l = ffv_current(waves[lm], waves[lp], 1.0, 0.0)
        cur_r = ffv_current(waves[lm], waves[lp], 0.0, 1.0)
        a = a[:, :, None, None]
        e_left = a[0] * cur_l + a[2] * cur_r
        e_right = a[3] * cur_l + a[1] * cur_r
        return e_left, e_right, kv

    # ------------------------------------------------------------------ four quarks
    def _pairings(self) -> list[tuple[float, list[tuple[int, int]]]]:
        """(sign, [(bar, ket), (bar, ket)]) for every flavour-conserving pairing."""
        out = []
        b1, b2 = self.bars
        for k1, k2 in itertools.permutations(self.kets):
            if (abs(self.flavours[b1]) == abs(self.flavours[k1])
                    and abs(self.flavours[b2]) == abs(self.flavours[k2])):  # fmt: skip
                sign = 1.0 if (k1, k2) == tuple(self.kets) else -1.0
                out.append((sign, [(b1, k1), (b2, k2)]))
        return out

    def _four_quark_structures(self) -> list[np.ndarray]:
        return _four_quark_colour(tuple(self.flavours), tuple(self.gluons),
                                  tuple(tuple(map(tuple, lines)) for _, lines in self._pairings()))

    def _four_quark(self, k: Tensor, waves: dict[int, Tensor]) -> Tensor:
        terms = []
        for sign, lines in self._pairings():
            for term in _four_quark_diagrams(self, k, waves, lines):
                terms.append(sign * term)
        return torch.stack(terms, dim=-1)


# ------------------------------------------------------------------ helpers
@functools.cache
def _configurations(n: int) -> Tensor:
    return torch.tensor(list(itertools.product((-1, 1), repeat=n)), dtype=torch.int64)


def _sandwich(bar: Tensor, mats: list[Tensor], ket: Tensor) -> Tensor:
    """bar M_1 M_2 ... ket: (N, H, 4) rows/columns, (N, H|1, 4, 4) matrices -> (N, H)."""
    row = bar
    for m in mats:
        row = (row[..., None, :] @ m)[..., 0, :]
    return (row * ket).sum(-1)


def _quark_propagator(p: Tensor) -> Tensor:
    """Pslash / P^2 (the i counted per diagram): (N, 4) -> (N, 1, 4, 4)."""
    p2 = p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(-1)
    return slash(p)[:, None] / p2[:, None, None, None]


def _square(p: Tensor) -> Tensor:
    return p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(-1)


def _four_quark_diagrams(amp: TreeAmplitude, k: Tensor, waves: dict[int, Tensor],
                         lines: list[tuple[int, int]]) -> list[Tensor]:
    """Kinematic parts of the diagrams of one pairing, in the order of _four_quark_colour."""
    (b1, k1), (b2, k2) = lines
    p1 = k[:, b1] + k[:, k1]
    p2 = k[:, b2] + k[:, k2]
    cur1 = ffv_current(waves[b1], waves[k1], 1.0, 1.0)
    cur2 = ffv_current(waves[b2], waves[k2], 1.0, 1.0)
    if amp.leptons:
        out = []
        for (b, kt), other, p_other in (((b1, k1), cur2, p2), ((b2, k2), cur1, p1)):
            e_l, e_r, kv = amp._electroweak_current(k, waves, amp.flavours[b])
            vertex = torch.cat((slash(e_l)[..., :2], slash(e_r)[..., 2:]), dim=-1)
            exch = slash(other) / _square(p_other)[:, None, None, None]
            out.append(_sandwich(waves[b], [vertex, _quark_propagator(k[:, b] + kv), exch],
                                 waves[kt])  # fmt: skip
                       + _sandwich(waves[b], [exch, _quark_propagator(-(k[:, kt] + kv)), vertex],
                                   waves[kt]))  # fmt: skip
        return [out[0] + out[1]]
    if not amp.gluons:
        # i (i)(-i): the same phase for every pairing, dropped
        return [mdot(cur1, cur2) / _square(p1)[:, None]]
    g = amp.gluons[0]
    eps, k5 = waves[g], k[:, g]
    e_sl = slash(eps)
    s1 = slash(cur1) / _square(p1)[:, None, None, None]
    s2 = slash(cur2) / _square(p2)[:, None, None, None]
    d1 = _sandwich(waves[b1], [e_sl, _quark_propagator(k[:, b1] + k5), s2], waves[k1])
    d2 = _sandwich(waves[b1], [s2, _quark_propagator(-(k[:, k1] + k5)), e_sl], waves[k1])
    d3 = _sandwich(waves[b2], [e_sl, _quark_propagator(k[:, b2] + k5), s1], waves[k2])
    d4 = _sandwich(waves[b2], [s1, _quark_propagator(-(k[:, k2] + k5)), e_sl], waves[k2])
    pc1, pc2, kc = p1[:, None], p2[:, None], k5[:, None]
    d5 = (mdot(cur1, cur2) * mdot(pc2 - pc1, eps) + mdot(cur2, eps) * mdot(kc - pc2, cur1)
          + mdot(eps, cur1) * mdot(pc1 - kc, cur2)) / (_square(p1) * _square(p2))[:, None]
    # phases: -i for d1..d4 (three qqg vertices, one quark and one gluon propagator),
    # +1 for d5 (two qqg vertices, two gluon propagators, the ggg vertex g f V)
    return [-1j * d1, -1j * d2, -1j * d3, -1j * d4, d5]


@functools.cache
def _four_quark_colour(flavours: tuple[int, ...], gluons: tuple[int, ...],
                       pairings: tuple[tuple[tuple[int, int], ...], ...]) -> list[np.ndarray]:
    """Colour tensors (over the external legs' colours, in leg order) of every diagram."""
    t = colour.generators() / math.sqrt(2)  # t = lambda / 2
    f = _structure_constants()
    letters = iter("ijklmnopq")
    legs = {i: next(letters) for i, fl in enumerate(flavours) if abs(fl) not in LEPTONS}
    out_idx = "".join(legs.values())
    structures = []
    for (b1, k1), (b2, k2) in pairings:
        i1, j1, i2, j2 = legs[b1], legs[k1], legs[b2], legs[k2]
        if not gluons:
            specs = [f"a{i1}{j1},a{i2}{j2}"]
            operands = [[t, t]]
        else:
            g = legs[gluons[0]]
            specs = [f"{g}{i1}x,ax{j1},a{i2}{j2}", f"a{i1}x,{g}x{j1},a{i2}{j2}",
                     f"a{i1}{j1},{g}{i2}x,ax{j2}", f"a{i1}{j1},a{i2}x,{g}x{j2}",
                     f"ac{g},a{i1}{j1},c{i2}{j2}"]  # fmt: skip
            operands = [[t, t, t]] * 4 + [[f, t, t]]
        for spec, ops in zip(specs, operands, strict=True):
            structures.append(np.einsum(f"{spec}->{out_idx}", *ops).reshape(-1))
    return structures


@functools.cache
def _structure_constants() -> np.ndarray:
    """f^{abc} from [t^a, t^b] = i f^{abc} t^c, t = lambda / 2: (8, 8, 8) real."""
    t = colour.generators() / math.sqrt(2)
    comm = np.einsum("aij,bjk->abik", t, t) - np.einsum("bij,ajk->abik", t, t)
    # Tr(t^c t^d) = delta / 2:  f^{abc} = -2 i Tr([t^a, t^b] t^c)
    return np.real_if_close(-2j * np.einsum("abik,cki->abc", comm, t)).real
