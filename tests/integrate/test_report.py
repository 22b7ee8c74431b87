"""The rich tables of an IntegrationResult: the figures, the channels, and the edge cases
(zero error with an exact value, zero integral with channels)."""

from __future__ import annotations

import io

from rich.console import Console

from hepflows.integrate.report import channel_table, result_table
from hepflows.integrate.result import ChannelResult, IntegrationResult


def render(table) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    return console.file.getvalue()


def result(value=2.0, error=0.01, exact=None, channels=()) -> IntegrationResult:
    return IntegrationResult(value=value, error=error, calls=1000, ess=800.0,
                             unweighting_efficiency=0.5, unweighting_efficiency_quantile=0.7,
                             quantile=0.999, overweight_fraction=0.001, exact=exact,
                             channels=list(channels), total_calls=3000)  # fmt: skip


def test_result_table_shows_the_figures_of_the_result():
    assert "2 ± 0.01 pb" in render(result_table(result(), "t", "pb"))
    table = render(result_table(result(exact=2.02), "title"))
    assert "2.02 (pull -2.00)" in table and "title" in table
    for figure in ("relative error", "0.005", "800 of 1,000", "0.5", "0.7", "3,000"):
        assert figure in table, figure


def test_zero_error_with_an_exact_value_has_no_pull():
    table = render(result_table(result(value=1.0, error=0.0, exact=1.0)))
    assert "1 (pull -)" in table


def test_channel_table_shares_and_a_zero_integral():
    chans = [ChannelResult(0, 1.5, 0.01, 600, "ridge x0"), ChannelResult(1, 0.5, 0.01, 400)]
    text = render(channel_table(result(channels=chans)))
    assert "ridge x0" in text and "75.0%" in text and "25.0%" in text and "600" in text
    assert "1 " in text  # an unnamed channel shows its index
    zero = [ChannelResult(0, 1.0, 0.1, 500, "a"), ChannelResult(1, -1.0, 0.1, 500, "b")]
    text = render(channel_table(result(value=0.0, channels=zero)))
    assert text.count(" - ") >= 2  # no share of a zero integral, no crash
    assert channel_table(result()) is None
