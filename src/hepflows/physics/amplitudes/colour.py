"""SU(3) colour algebra for tree amplitudes, computed numerically and cached.

Conventions: the generators of the fundamental representation are T^a = lambda^a / sqrt(2)
(Gell-Mann matrices lambda^a), normalised Tr(T^a T^b) = delta^{ab}, so that the
colour-ordered Feynman rules carry the 1/sqrt(2) of Dixon's conventions (hep-ph/9601359)
and [T^a, T^b] = i sqrt(2) f^{abc} T^c.

A full amplitude is a sum over colour structures c_k (tensors over the external colour
indices: 8 per gluon, 3 per quark or antiquark) times kinematic coefficients A_k; the sum of
|M|^2 over all external colours is A^dagger C A with the colour matrix
C_kl = sum_colours c_k c_l^*. The matrices here are computed by brute force over every
colour assignment (at most 8^5 for five gluons), once per structure set, and cached.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

__all__ = [
    "N_COLOURS",
    "generators",
    "gluon_orderings",
    "gram",
    "quark_line_orderings",
    "string_matrix",
    "trace_matrix",
]

N_COLOURS = 3


@functools.cache
def generators() -> np.ndarray:
    """T^a = lambda^a / sqrt(2): (8, 3, 3) complex128, Tr(T^a T^b) = delta^{ab}."""
    lam = np.zeros((8, 3, 3), dtype=np.complex128)
    lam[0][0, 1] = lam[0][1, 0] = 1
    lam[1][0, 1], lam[1][1, 0] = -1j, 1j
    lam[2][0, 0], lam[2][1, 1] = 1, -1
    lam[3][0, 2] = lam[3][2, 0] = 1
    lam[4][0, 2], lam[4][2, 0] = -1j, 1j
    lam[5][1, 2] = lam[5][2, 1] = 1
    lam[6][1, 2], lam[6][2, 1] = -1j, 1j
    lam[7] = np.diag([1, 1, -2]) / np.sqrt(3)
    return lam / np.sqrt(2)


def gluon_orderings(n: int) -> list[tuple[int, ...]]:
    """The (n-1)! colour orderings (0, sigma) of n gluons with leg 0 first."""
    return [(0, *rest) for rest in itertools.permutations(range(1, n))]


def quark_line_orderings(n_gluons: int) -> list[tuple[int, ...]]:
    """The n_gluons! orders of the gluons (labelled 0..n_gluons-1) along a quark line."""
    return list(itertools.permutations(range(n_gluons)))


def _chain(order: tuple[int, ...], n_gluons: int) -> np.ndarray:
    """(T^{a_order[0]} ... T^{a_order[-1]})_{i j} as a tensor (8,)*n_gluons + (3, 3)."""
    t = generators()
    letters = "abcdefgh"[:n_gluons]
    if not order:
        return np.eye(N_COLOURS, dtype=np.complex128)
    idx = "ijklmnop"
    terms = [f"{letters[g]}{idx[k]}{idx[k + 1]}" for k, g in enumerate(order)]
    out = letters + idx[0] + idx[len(order)]
    return np.einsum(",".join(terms) + "->" + out, *([t] * len(order)), optimize=True)


@functools.cache
def trace_matrix(n: int) -> np.ndarray:
    """Colour matrix of n gluons in the trace basis: ((n-1)!, (n-1)!) complex128.

    C_{sigma tau} = sum_a Tr(T^{a_sigma})^* Tr(T^{a_tau}), with the structures
    Tr(T^{a_0} T^{a_sigma(1)} ... ) in the order of :func:`gluon_orderings`.
    """
    if not 2 <= n <= 6:
        raise ValueError(f"trace_matrix supports 2..6 gluons, got {n}")
    structures = []
    for order in gluon_orderings(n):
        chain = _chain(order, n)  # (8,)*n + (3, 3)
        structures.append(np.trace(chain, axis1=-2, axis2=-1).reshape(-1))
    return gram(np.stack(structures))


@functools.cache
def string_matrix(n_gluons: int) -> np.ndarray:
    """Colour matrix of one quark line with n gluons: (n!, n!) complex128.

    C_{sigma tau} = sum (T^{a_sigma(0)} ... )_{i j}^* (T^{a_tau(0)} ... )_{i j} over
    gluon colours and the quark's and antiquark's, in the order of
    :func:`quark_line_orderings`.
    """
    if not 0 <= n_gluons <= 4:
        raise ValueError(f"string_matrix supports 0..4 gluons, got {n_gluons}")
    return gram(np.stack([_chain(o, n_gluons).reshape(-1)
                          for o in quark_line_orderings(n_gluons)]))  # fmt: skip


def gram(structures: np.ndarray) -> np.ndarray:
    """Colour matrix C_kl = sum_colours c_k^* c_l of flattened structures (K, D): (K, K).

    Hermitian, complex128 (structures with f^{abc} and with T's are relatively imaginary);
    sum |M|^2 = A^dagger C A for M = sum_k A_k c_k.
    """
    return structures.conj() @ structures.T
