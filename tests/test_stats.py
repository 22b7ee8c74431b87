"""Two-sample chi^2: unweighted and weighted samples."""

import numpy as np
import pytest
import torch

from hepflows.stats import two_sample_chi2


def test_weighted_chi2_accepts_equal_and_rejects_different_distributions():
    g = torch.Generator().manual_seed(0)
    edges = np.linspace(0, 1, 21)
    a, b = torch.rand(20_000, generator=g), torch.rand(20_000, generator=g)
    # weights 1 or 2 on a: a sample of density 1 drawn as "half the events count twice"
    wa = 1 + (torch.rand(20_000, generator=g) < 0.5).double()
    chi2, ndf, p = two_sample_chi2(a, b, edges, wa, torch.ones(20_000, dtype=torch.float64))
    assert ndf == 19 and p > 1e-3
    # unit weights agree with the unweighted formula to O(1 / N)
    ones = torch.ones(20_000, dtype=torch.float64)
    assert two_sample_chi2(a, b, edges, ones, ones)[0] == pytest.approx(
        two_sample_chi2(a, b, edges)[0], rel=0.05)
    # a sample of density 2x is seen
    c = torch.rand(20_000, generator=g).sqrt()
    assert two_sample_chi2(a, c, edges, wa, ones)[2] < 1e-10
    with pytest.raises(ValueError, match="both samples or for neither"):
        two_sample_chi2(a, b, edges, wa)
