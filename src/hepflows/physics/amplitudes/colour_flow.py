"""Leading-colour flows of tree amplitudes, for event records a parton shower can read.

A colour flow (all legs outgoing) is a set of colour lines, each joining the colour slot
of one leg (a quark or a gluon) to the anticolour slot of another (an antiquark or a
gluon). At leading colour the flows are the colour orderings: the trace
Tr(T^{a_1} ... T^{a_n}) joins gluon a_k's colour to a_(k+1)'s anticolour (cyclically),
the string (T^{a_1} ... T^{a_m})_{i j} joins the quark i to a_1, a_k to a_(k+1) and a_m to
the antiquark j. An event gets one flow with probability proportional to its
leading-colour weight, sum over helicities of |A_sigma|^2 (the way Les Houches event
generators fill ICOLUP).

Four-quark amplitudes (with at most one gluon) are sums over diagrams with explicit
colour tensors; those are projected exactly onto the flow basis (products of Kronecker
deltas, SU(3) with at most three colour lines, where the products are independent),
flows that join a gluon to itself (they vanish) dropped. A diagram counts towards the
flows of its largest coefficients only (its leading colour: t^a t^a = delta delta / 2 -
delta delta / (2 N) keeps the first), and the weight of a flow is |sum_k L_fk A_k|^2.
"""

from __future__ import annotations

import functools
import itertools
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from hepflows.physics.amplitudes import colour

if TYPE_CHECKING:
    from hepflows.physics.amplitudes.partons import TreeAmplitude

#: One colour flow: (colour leg, anticolour leg) of each line, legs all-outgoing.
Flow = tuple[tuple[int, int], ...]
#: The first LHE colour tag (ICOLUP) of a line; lines count up from it.
FIRST_TAG = 501


def flows(amp: TreeAmplitude) -> list[Flow]:
    """The leading-colour flows of an amplitude, in the order of :func:`flow_weights`."""
    if not amp.bars:
        return [_cycle(tuple(amp.gluons[j] for j in o))
                for o in colour.gluon_orderings(len(amp.gluons))]  # fmt: skip
    if len(amp.bars) == 1:
        bar, ket = amp.bars[0], amp.kets[0]
        return [_chain(bar, tuple(amp.gluons[j] for j in o), ket)
                for o in colour.quark_line_orderings(len(amp.gluons))]  # fmt: skip
    return list(_four_quark_basis(tuple(amp.flavours), tuple(amp.gluons))[0])


def _cycle(order: tuple[int, ...]) -> Flow:
    return tuple((order[k], order[(k + 1) % len(order)]) for k in range(len(order)))


def _chain(bar: int, gluons: tuple[int, ...], ket: int) -> Flow:
    legs = (bar, *gluons, ket)
    return tuple((legs[k], legs[k + 1]) for k in range(len(legs) - 1))


def flow_weights(amp: TreeAmplitude, p: Tensor) -> Tensor:
    """Leading-colour weights (N, F) of the flows of :func:`flows` at momenta p (N, n, 4)
    (the amplitude's leg order, float64): sum over helicities of |A_f|^2."""
    if amp._active is None:
        amp._active = amp._find_active(p[: min(len(p), 16)])
    configs = amp._active  # (the mirror half of pure QCD has the same weights)
    out = []
    for i in range(0, len(p), amp.chunk):
        a = amp._amplitudes(p[i : i + amp.chunk], configs)  # (N, H, K)
        if len(amp.bars) == 2:
            basis = torch.as_tensor(_four_quark_basis(tuple(amp.flavours),
                                                      tuple(amp.gluons))[1])  # fmt: skip
            a = torch.einsum("fk,nhk->nhf", basis, a)
        out.append((a.abs() ** 2).sum(1))
    return torch.cat(out)


def colour_tags(flows_: list[Flow], choice: Tensor, n_legs: int, n_incoming: int = 2) -> Tensor:
    """LHE colour tags (ICOLUP1, ICOLUP2) of events with chosen flows: (N, n_legs, 2) float64.

    Line k of the flow gets tag ``FIRST_TAG + k`` on its colour leg's colour and its
    anticolour leg's anticolour; incoming legs (the first ``n_incoming``) swap the two, as
    an incoming quark is an outgoing antiquark. Legs without colour get 0.
    """
    table = torch.zeros(len(flows_), n_legs, 2, dtype=torch.float64, device=choice.device)
    for f, flow in enumerate(flows_):
        for k, (col, acol) in enumerate(flow):
            table[f, col, 0] = FIRST_TAG + k
            table[f, acol, 1] = FIRST_TAG + k
    table[:, :n_incoming] = table[:, :n_incoming].flip(-1)
    return table[choice]


@functools.cache
def _four_quark_basis(flavours: tuple[int, ...], gluons: tuple[int, ...]
                      ) -> tuple[tuple[Flow, ...], np.ndarray]:  # fmt: skip
    """The leading flows of a four-quark amplitude and the matrix L (F, K): the diagrams'
    colour tensors in the flow basis, c_k = sum_f B_fk delta_f, each diagram's column
    keeping only its largest coefficients (L_fk = B_fk there, else 0)."""
    from hepflows.physics.amplitudes.partons import LEPTONS, QUARKS, _four_quark_colour

    bars = [i for i, f in enumerate(flavours) if f in QUARKS]
    kets = [i for i, f in enumerate(flavours) if -f in QUARKS]
    # the amplitude's pairings (bar, ket) of equal flavour, as TreeAmplitude._pairings
    pairings = []
    for k1, k2 in itertools.permutations(kets):
        if abs(flavours[bars[0]]) == abs(flavours[k1]) and abs(flavours[bars[1]]) == abs(
                flavours[k2]):  # fmt: skip
            pairings.append(((bars[0], k1), (bars[1], k2)))
    structures = np.stack(_four_quark_colour(flavours, gluons, tuple(pairings)))  # (K, D)
    colour_legs, anti_legs = bars + list(gluons), kets + list(gluons)
    legs = [i for i, f in enumerate(flavours) if abs(f) not in LEPTONS]
    t = colour.generators() / np.sqrt(2)  # the diagrams' t = lambda / 2
    kept, tensors = [], []
    for perm in itertools.permutations(anti_legs):
        flow = tuple(zip(colour_legs, perm, strict=True))
        if any(c == a for c, a in flow):
            continue  # a gluon joined to itself: vanishes (T^a is traceless)
        tensors.append(_flow_tensor(flow, legs, gluons, t))
        kept.append(flow)
    basis = np.stack(tensors)  # (F, D)
    coeff, *_ = np.linalg.lstsq(basis.T, structures.T, rcond=None)  # (F, K)
    if not np.allclose(basis.T @ coeff, structures.T, atol=1e-10):
        raise AssertionError("four-quark colour tensors are not in the flow basis")
    size = np.abs(coeff)
    lead = np.where(size >= size.max(0, keepdims=True) * (1 - 1e-9), coeff, 0.0)
    used = np.abs(lead).sum(1) > 0
    return tuple(f for f, u in zip(kept, used, strict=True) if u), lead[used]


def _flow_tensor(flow: Flow, legs: list[int], gluons: tuple[int, ...], t: np.ndarray
                 ) -> np.ndarray:  # fmt: skip
    """The product of deltas of a flow over the legs' colour indices (3 per quark, 8 per
    gluon through (t^a)_{anticolour, colour}), flattened in leg order."""
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    col = {leg: next(letters) for leg in legs}  # a quark's index, a gluon's colour slot
    anti = {leg: (next(letters) if leg in gluons else col[leg]) for leg in legs}
    adj = {g: next(letters) for g in gluons}
    delta = np.eye(colour.N_COLOURS)
    specs, ops = [], []
    for c, a in flow:
        specs.append(col[c] + anti[a])
        ops.append(delta)
    for g in gluons:
        specs.append(adj[g] + anti[g] + col[g])
        ops.append(t)
    out = "".join(adj[g] if g in gluons else col[g] for g in legs)
    return np.einsum(",".join(specs) + "->" + out, *ops).reshape(-1)
