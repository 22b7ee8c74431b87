"""Integration results (hepflows.integrate.result): the figures, the summary, weight statistics.

Every figure is checked against a value computed by hand.
"""

from __future__ import annotations

import math

import pytest
import torch

from hepflows.integrate import IntegrationResult
from hepflows.integrate.result import ChannelResult, weight_statistics

F64 = torch.float64


def result(**kw) -> IntegrationResult:
    base = dict(
        value=1.02, error=0.01, calls=10_000, ess=8_000.0, unweighting_efficiency=0.25,
        unweighting_efficiency_quantile=0.5, quantile=0.999, overweight_fraction=0.001,
        total_calls=25_000,
    )  # fmt: skip
    return IntegrationResult(**{**base, **kw})


# ------------------------------------------------------------------ weight_statistics
def test_weight_statistics_by_hand():
    s = weight_statistics(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64))
    assert s["ess"] == pytest.approx(100 / 30, rel=1e-15)  # (sum w)^2 / sum w^2
    assert s["unweighting_efficiency"] == pytest.approx(2.5 / 4, rel=1e-15)  # <|w|> / max
    # the 0.999 quantile of 4 weights is the largest: the same efficiency, no overweight
    assert s["unweighting_efficiency_quantile"] == pytest.approx(2.5 / 4, rel=1e-15)
    assert s["overweight_fraction"] == 0.0 and s["quantile"] == 0.999
    # the median rule: w_q = 3, one weight of four above it
    s = weight_statistics(torch.tensor([4.0, 1.0, 3.0, 2.0], dtype=F64), quantile=0.5)
    assert s["unweighting_efficiency_quantile"] == pytest.approx(2.5 / 3, rel=1e-15)
    assert s["overweight_fraction"] == 0.25 and s["quantile"] == 0.5


def test_equal_weights_are_perfect():
    s = weight_statistics(torch.full((1000,), 0.37, dtype=F64))
    assert s["ess"] == pytest.approx(1000, rel=1e-12)
    assert s["unweighting_efficiency"] == pytest.approx(1.0, rel=1e-12)
    assert s["unweighting_efficiency_quantile"] == pytest.approx(1.0, rel=1e-12)
    assert s["overweight_fraction"] == 0.0


def test_one_outlier_spoils_the_max_rule_not_a_lower_quantile():
    w = torch.ones(1000, dtype=F64)
    w[17] = 1000.0
    mean = 1999 / 1000
    s = weight_statistics(w)  # 0.999 quantile = the outlier itself
    assert s["unweighting_efficiency"] == pytest.approx(mean / 1000, rel=1e-14)
    assert s["unweighting_efficiency_quantile"] == pytest.approx(mean / 1000, rel=1e-14)
    assert s["ess"] == pytest.approx(1999**2 / (999 + 1e6), rel=1e-14)
    s = weight_statistics(w, quantile=0.99)  # w_q = 1: efficiency capped at 1, one overweight
    assert s["unweighting_efficiency_quantile"] == 1.0
    assert s["overweight_fraction"] == pytest.approx(1e-3, rel=1e-14)


def test_signed_weights():
    """ESS uses the signed sum (cancellations cost), the efficiencies |w|."""
    s = weight_statistics(torch.tensor([1.0, -1.0, 2.0], dtype=F64), quantile=1.0)
    assert s["ess"] == pytest.approx(4 / 6, rel=1e-15)
    assert s["unweighting_efficiency"] == pytest.approx((4 / 3) / 2, rel=1e-15)
    assert s["unweighting_efficiency_quantile"] == pytest.approx((4 / 3) / 2, rel=1e-15)


@pytest.mark.parametrize("w", [torch.zeros(5, dtype=F64), torch.zeros(0, dtype=F64)])
def test_zero_and_empty_weights_give_zeros_not_nan(w):
    s = weight_statistics(w)
    for key in ("ess", "unweighting_efficiency", "unweighting_efficiency_quantile",
                "overweight_fraction"):  # fmt: skip
        assert s[key] == 0.0, key


def test_float32_weights_are_summed_in_float64():
    """(3e20)^2 overflows float32; the statistics are still exact."""
    s = weight_statistics(torch.tensor([3e20, 3e20], dtype=torch.float32))
    assert s["ess"] == pytest.approx(2.0, rel=1e-12)
    assert s["unweighting_efficiency"] == pytest.approx(1.0, rel=1e-12)


# ------------------------------------------------------------------ IntegrationResult
def test_relative_error_sigma_sqrt_n_and_pull():
    r = result(value=-2.0, error=0.01, calls=10_000, exact=-2.05)
    assert r.relative_error == pytest.approx(0.005, rel=1e-15)  # of |value|
    assert r.sigma_sqrt_n == pytest.approx(0.5, rel=1e-15)  # 0.005 * sqrt(10^4)
    assert r.pull == pytest.approx(5.0, rel=1e-12)  # (value - exact) / error
    assert result(value=1.0, exact=1.03).pull == pytest.approx(-3.0, rel=1e-12)
    assert result().pull is None  # exact unknown
    assert result(exact=1.0, error=0.0).pull is None  # no error: no pull


def test_zero_value():
    r = result(value=0.0, error=0.1)
    assert r.relative_error == math.inf and r.sigma_sqrt_n == math.inf
    text = r.summary()
    assert "integral      = 0 +- 0.1  (relative inf)" in text


def test_summary_lists_every_figure():
    r = result(exact=1.0)
    lines = r.summary().splitlines()
    assert lines == [
        "integral      = 1.02 +- 0.01  (relative 0.0098)",
        "exact         = 1  (pull +2.00 sigma)",
        "calls         = 10,000 for this estimate (25,000 in all)",
        "sigma*sqrt(N)/I = 0.9804",
        "ESS           = 8,000 (80.0% of calls)",
        "unweighting   = 0.25 (w_max = max), 0.5 (w_max = 0.999 quantile, 0.001 overweight)",
    ]
    assert str(r) == r.summary()
    # no exact line without an exact value; a dropped line only when points were dropped
    assert "exact" not in result().summary() and "dropped" not in result().summary()
    assert "dropped       = 3 points with NaN/inf integrand (as 0)" in result(dropped=3).summary()


def test_summary_channel_table_with_shares_and_names():
    channels = [ChannelResult(0, 0.765, 0.008, 6000, "ridge x0"), ChannelResult(1, 0.255, 0.006,
                                                                               4000)]  # fmt: skip
    assert channels[1].name == ""
    lines = result(channels=channels).summary().splitlines()
    header = lines.index(next(line for line in lines if line.startswith("channel")))
    assert lines[header].split() == ["channel", "integral", "error", "share", "calls"]
    assert lines[header + 1].split() == ["ridge", "x0", "0.765", "0.008", "75.0%", "6,000"]
    assert lines[header + 2].split() == ["1", "0.255", "0.006", "25.0%", "4,000"]  # index as name
    assert len(lines) == header + 3


def test_summary_of_a_zero_integral_with_channels_does_not_divide_by_zero():
    channels = [ChannelResult(0, 0.5, 0.1, 10), ChannelResult(1, -0.5, 0.1, 10)]
    text = result(value=0.0, channels=channels).summary()
    assert "relative inf" in text and text.count("nan%") == 2


def test_summary_with_exact_value_and_zero_error():
    """A constant integrand sampled exactly gives error 0; its summary must still print."""
    text = result(value=2.0, error=0.0, exact=2.0).summary()
    assert "exact         = 2" in text
