"""The desk report's figures as PNG bytes (the asset shows them in its metadata and writes
them beside the tables). Built like ``modeling.plots``: a Figure on the Agg canvas, no pyplot."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from daily_profit.desk.firm import FirmSimulation, lower_tail, upper_tail
from daily_profit.modeling.plots import figure

_DEPENDENT = "#1f77b4"
_INDEPENDENT = "#9a9a9a"
DPI = 72


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def firm_distribution(sim: FirmSimulation, independent: FirmSimulation) -> Figure:
    """The firm's next-session net P&L and payout exposure, with dependence and as if the
    accounts were independent; p05, p95 and ES95 marked."""
    fig = figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    for ax, values, other, summary, title in (
        (left, sim.pnl, independent.pnl, lower_tail, "Firm net P&L, next session (USD)"),
        (right, sim.payout, independent.payout, upper_tail, "Payout exposure (USD)"),
    ):
        bins = np.linspace(min(values.min(), other.min()), max(values.max(), other.max()), 80)
        ax.hist(other, bins=bins, color=_INDEPENDENT, alpha=0.5, label="independent")
        ax.hist(values, bins=bins, color=_DEPENDENT, alpha=0.6, label="with dependence")
        s = summary(values)
        for key, style in (("p05", "--"), ("p95", "--"), ("es95", ":")):
            ax.axvline(s[key], color="black", linestyle=style, linewidth=1)
            ax.annotate(key, (s[key], ax.get_ylim()[1] * 0.92), fontsize=8, ha="center")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
    return fig


def backtest(days: pl.DataFrame) -> Figure:
    """Realised firm net P&L of the known days against the 90% intervals, with dependence
    and independent."""
    fig = figure(10, 4.0)
    ax = fig.add_subplot()
    if days.height:
        x = days["date"].to_list()
        ax.fill_between(
            x, days["p05"], days["p95"], color=_DEPENDENT, alpha=0.25, label="90%, dependent"
        )
        ax.plot(
            x, days["independent_p05"], color=_INDEPENDENT, linestyle="--", label="90%, independent"
        )
        ax.plot(x, days["independent_p95"], color=_INDEPENDENT, linestyle="--")
        outside = ~days["covered"].to_numpy()
        ax.scatter(x, days["realised"], color="black", s=12, label="realised")
        if outside.any():
            ax.scatter(
                [d for d, o in zip(x, outside, strict=True) if o],
                days["realised"].to_numpy()[outside],
                color="red", s=24, label="outside",
            )  # fmt: skip
        ax.legend(fontsize=8, loc="best")
        fig.autofmt_xdate()
    ax.set_ylabel("firm net P&L (USD)")
    ax.set_title("Firm interval against realised firm sums (known out-of-sample days)")
    return fig


def exposure(by_symbol: pl.DataFrame) -> Figure:
    """Gross and net open notional per symbol."""
    fig = figure(8, 3.8)
    ax = fig.add_subplot()
    if by_symbol.height:
        symbols = by_symbol["symbol"].to_list()
        pos = np.arange(len(symbols))
        ax.bar(pos - 0.2, by_symbol["gross_usd"], width=0.4, color=_INDEPENDENT, label="gross")
        ax.bar(pos + 0.2, by_symbol["net_usd"], width=0.4, color=_DEPENDENT, label="net")
        ax.set_xticks(pos, symbols, rotation=45)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.legend(fontsize=8)
    ax.set_ylabel("open notional (USD)")
    ax.set_title("Open exposure by symbol")
    return fig
