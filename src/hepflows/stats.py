"""Statistical comparisons of samples (used by validations and tests)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def two_sample_chi2(a: Tensor, b: Tensor, edges: np.ndarray, wa: Tensor | None = None,
                    wb: Tensor | None = None) -> tuple[float, int, float]:  # fmt: skip
    """chi^2 test that two samples share one distribution.

    Unweighted: chi^2 = sum_i (sqrt(N_b/N_a) a_i - sqrt(N_a/N_b) b_i)^2 / (a_i + b_i)
    over bins with a_i + b_i > 0. With event weights (``wa``, ``wb``; e.g. the overweights
    of partial unweighting) the normalised bin contents are compared with their variances,
    sum_i (A_i / A - B_i / B)^2 / (V^A_i / A^2 + V^B_i / B^2), A_i = sum w, V^A_i =
    sum w^2. ndf = (used bins) - 1 (the normalisations are fixed by the samples). Values
    outside the edges are not counted.

    Args:
        a, b: (n,) and (m,) samples.
        edges: (bins + 1,) bin edges.
        wa, wb: (n,) and (m,) event weights (both or neither).

    Returns:
        ``(chi2, ndf, p_value)``.
    """
    if (wa is None) != (wb is None):
        raise ValueError("give event weights for both samples or for neither")
    if wa is None or wb is None:
        ca, _ = np.histogram(a.numpy(), edges)
        cb, _ = np.histogram(b.numpy(), edges)
        used = (ca + cb) > 0
        ca, cb = ca[used].astype(float), cb[used].astype(float)
        na, nb = ca.sum(), cb.sum()
        chi2 = float((((np.sqrt(nb / na) * ca - np.sqrt(na / nb) * cb) ** 2) / (ca + cb)).sum())
    else:
        sa, _ = np.histogram(a.numpy(), edges, weights=wa.numpy())
        sb, _ = np.histogram(b.numpy(), edges, weights=wb.numpy())
        va, _ = np.histogram(a.numpy(), edges, weights=wa.numpy() ** 2)
        vb, _ = np.histogram(b.numpy(), edges, weights=wb.numpy() ** 2)
        used = (va + vb) > 0
        ta, tb = sa[used].sum(), sb[used].sum()
        chi2 = float(((sa[used] / ta - sb[used] / tb) ** 2
                      / (va[used] / ta**2 + vb[used] / tb**2)).sum())  # fmt: skip
    ndf = int(used.sum()) - 1
    # chi^2 survival function: the regularised upper incomplete gamma Q(ndf/2, chi2/2)
    # (agrees with scipy.stats.chi2.sf to ~1e-16 relative, without needing scipy).
    p = torch.special.gammaincc(torch.tensor(ndf / 2, dtype=torch.float64),
                                torch.tensor(chi2 / 2, dtype=torch.float64))  # fmt: skip
    return chi2, ndf, float(p)
