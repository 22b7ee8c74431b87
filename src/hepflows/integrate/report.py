"""Tables a person reads for an :class:`~hepflows.integrate.IntegrationResult` (rich).

:func:`result_table` holds the figures of :meth:`IntegrationResult.summary`,
:func:`channel_table` each channel's share of a multi-channel integration. Both
cope with the edge cases of a real run: no pull when the error is 0, no share
when the integral is 0.
"""

from __future__ import annotations

from rich.table import Table

from hepflows.integrate.result import IntegrationResult


def result_table(result: IntegrationResult, title: str = "", unit: str = "") -> Table:
    """The integral, its error and the sampling figures, one row each.

    Args:
        result: an integration (or generation) result.
        title: table title.
        unit: unit of the integral (``"pb"``), shown after it.
    """
    table = Table(title=title or None)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("integral", f"{result.value:.8g} ± {result.error:.3g} {unit}".rstrip())
    if result.exact is not None:
        pull = "-" if result.pull is None else f"{result.pull:+.2f}"
        table.add_row("exact", f"{result.exact:.8g} (pull {pull})")
    table.add_row("relative error", f"{result.relative_error:.3g}")
    table.add_row("σ·√N / I", f"{result.sigma_sqrt_n:.4g}")
    table.add_row("effective sample size", f"{result.ess:,.0f} of {result.calls:,}")
    table.add_row("unweighting eff. (max)", f"{result.unweighting_efficiency:.4g}")
    table.add_row(f"unweighting eff. ({result.quantile:g} quantile)",
                  f"{result.unweighting_efficiency_quantile:.4g}")  # fmt: skip
    if result.dropped:
        table.add_row("dropped (NaN/inf integrand, as 0)", f"{result.dropped:,}")
    table.add_row("calls (training + estimate)", f"{result.total_calls:,}")
    return table


def channel_table(result: IntegrationResult) -> Table | None:
    """Each channel's integral, error, share of the integral and points; ``None`` without
    channels. The share is "-" when the integral is 0."""
    if not result.channels:
        return None
    table = Table(title="channels (each channel's share of the integral and of the points)")
    for col in ("channel", "integral", "error", "share", "calls"):
        table.add_column(col, justify="left" if col == "channel" else "right")
    for ch in result.channels:
        if ch.calls == 0:  # dropped in training
            table.add_row(ch.name or str(ch.index), "dropped", "", "", "0")
            continue
        share = f"{ch.value / result.value:.1%}" if result.value else "-"
        table.add_row(ch.name or str(ch.index), f"{ch.value:.6g}", f"{ch.error:.3g}", share,
                      f"{ch.calls:,}")  # fmt: skip
    return table
