"""Observable scaling: bijective, bounded observables stay in range, the Jacobian is right."""

from __future__ import annotations

import pytest
import torch

from hepflows.errors import ConfigError, InputError
from hepflows.inference.scaling import Scaler


def values(n: int = 500) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    m = 150 + 300 * torch.rand(n, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    c = 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1
    p = 50 * torch.rand(n, generator=g, dtype=torch.float64)
    return torch.stack((m, y, c, p), -1)


NAMES = ("m_ll", "y_ll", "cos_cs", "pt_ll")


def test_round_trip_standardises_and_keeps_ranges() -> None:
    x = values()
    s = Scaler(NAMES).fit(x)
    z = s.forward(x)
    assert z.dtype == torch.float32
    torch.testing.assert_close(
        z.double().mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        z.double().std(0), torch.ones(4, dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(s.inverse(z), x, rtol=1e-5, atol=1e-5)
    far = s.inverse(torch.full((1, 4), 40.0))  # any real coordinates map inside the ranges
    assert far[0, 0] > 0 and far[0, 2].abs() <= 1 and far[0, 3] >= 0
    again = Scaler.from_state(s.state())
    torch.testing.assert_close(again.forward(x), z)


def test_log_abs_det_matches_autograd() -> None:
    x = values(20)
    s = Scaler(NAMES).fit(values())
    jac = torch.autograd.functional.jacobian(lambda v: (s._mapped(v) - s.shift) / s.scale, x[3:4])[
        0, :, 0, :
    ]
    assert s.log_abs_det(x[3:4]).item() == pytest.approx(
        torch.linalg.slogdet(jac)[1].item(), rel=1e-9
    )


def test_bad_values_and_kinds_are_refused() -> None:
    s = Scaler(NAMES).fit(values())
    bad = values(3)
    bad[0, 2] = 1.5
    with pytest.raises(InputError, match=r"cos_cs must lie in \[-1, 1\]"):
        s.forward(bad)
    neg = values(3)
    neg[0, 0] = -1
    with pytest.raises(InputError, match="m_ll must be > 0"):
        s.forward(neg)
    with pytest.raises(InputError, match=r"\(n, 4\)"):
        s.forward(values(3)[:, :2])
    with pytest.raises(ConfigError, match="kinds"):
        Scaler(("a",), ("cube",))
