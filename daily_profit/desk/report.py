"""The desk report of one day, assembled from the warehouse's frames, and its files.

``build_report`` takes what the asset read (predictions, staging, labels, open positions) and
returns a :class:`DeskReport`: the ranking and its changes since yesterday, the firm's
next-session distribution with its dependence and its check against the known days, and the
exposure tables. ``write_report`` writes every table as CSV and Parquet into the report's
folder (``<data dir>/desk_report/<day>/``) with the real account ids and trader ids: the
folder is the desk's, access-controlled by the deployment; the UI and the console show them
masked (``daily_profit.privacy``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from daily_profit.desk import exposure, firm, ranking
from daily_profit.features.labels import NET_PROFIT_NEXT_SESSION
from daily_profit.modeling.tracking import CHALLENGER, CHAMPION
from daily_profit.privacy import mask_identities
from daily_profit.warehouse.derived import latest_predictions

REPORT_FOLDER = "desk_report"
# The tables of a report, in the order the desk reads them: each is a CSV and a Parquet file.
TABLES = (
    "ranking",
    "changes",
    "firm",
    "firm_backtest",
    "exposure_by_symbol",
    "exposure_by_class",
    "exposure_by_trader",
    "exposure_concentrations",
)


@dataclass(frozen=True)
class DeskSettings:
    """What the report looks at; from the settings (``DAILY_PROFIT_DESK_*``)."""

    top_n: int = 20
    n_sims: int = 20_000
    backtest_sims: int = 4_000
    dependence_days: int = 60
    backtest_days: int = 30
    symbol_classes: Mapping[str, str] = field(default_factory=dict)
    fallback_profit_share_pct: float = 80.0
    seed: int = 0

    @classmethod
    def from_settings(cls) -> DeskSettings:
        from daily_profit.config import get_settings

        s = get_settings()
        return cls(
            top_n=s.desk_top_n,
            n_sims=s.desk_simulations,
            backtest_sims=s.desk_backtest_simulations,
            dependence_days=s.desk_dependence_days,
            backtest_days=s.desk_backtest_days,
            symbol_classes=dict(s.desk_symbol_classes),
            fallback_profit_share_pct=s.desk_fallback_profit_share_pct,
        )

    @property
    def history_days(self) -> int:
        """How many days before its own the report of a day reads predictions and labels of."""
        return self.dependence_days + self.backtest_days + 1

    def history_start(self, day: dt.date) -> dt.date:
        """The first day whose predictions and labels the report of ``day`` reads."""
        return day - dt.timedelta(days=self.history_days)


def desk_predictions(predictions: pl.DataFrame) -> pl.DataFrame:
    """One prediction per day and account, the one the desk acts on: the champion's latest
    restatement (the challenger's where a day has no champion row)."""
    current = latest_predictions(predictions)
    if current.height == 0:
        return current
    preference = pl.col("model_role").replace_strict(
        {CHAMPION: 0, CHALLENGER: 1}, default=2, return_dtype=pl.Int64
    )
    version = pl.col("model_version").cast(pl.Int64, strict=False)
    best = current.with_columns(preference.alias("_pref"), version.alias("_version"))
    chosen = best.filter(pl.col("_pref") == pl.col("_pref").min().over("date"))
    chosen = chosen.filter(pl.col("_version") == pl.col("_version").max().over("date"))
    return chosen.drop("_pref", "_version").sort("date", "account_id")


def scored_history(
    predictions: pl.DataFrame, labels: pl.DataFrame, staging: pl.DataFrame
) -> pl.DataFrame:
    """Past predictions (``desk_predictions``) with what happened: ``realised`` net P&L over
    the target span (to the next session) where the label is available, the day it was known
    (``target_end``), the account's trader and its score ``z``."""
    joined = (
        predictions.select("date", "account_id", "p05", "p50", "p95", "in_sample")
        .join(
            labels.filter(pl.col("label_available")).select(
                "date",
                "account_id",
                "target_end",
                pl.col(NET_PROFIT_NEXT_SESSION).alias("realised"),
            ),
            on=["date", "account_id"],
            how="inner",
        )
        .join(staging.select("date", "account_id", "trader"), on=["date", "account_id"], how="left")
    )
    return joined.with_columns(pl.Series("z", firm.scores(joined), dtype=pl.Float64))


@dataclass(frozen=True)
class DeskReport:
    day: dt.date
    model_version: str | None
    ranking: pl.DataFrame
    changes: pl.DataFrame
    firm: pl.DataFrame
    simulation: firm.FirmSimulation
    independent: firm.FirmSimulation
    backtest: pl.DataFrame
    backtest_summary: dict[str, float | int]
    exposure_by_symbol: pl.DataFrame
    exposure_by_class: pl.DataFrame
    exposure_by_trader: pl.DataFrame
    exposure_concentrations: pl.DataFrame
    positions_matched: dict[str, object]
    accounts: int
    fallback_share_accounts: int

    def tables(self) -> dict[str, pl.DataFrame]:
        return {
            "ranking": self.ranking,
            "changes": self.changes,
            "firm": self.firm,
            "firm_backtest": self.backtest,
            "exposure_by_symbol": self.exposure_by_symbol,
            "exposure_by_class": self.exposure_by_class,
            "exposure_by_trader": self.exposure_by_trader,
            "exposure_concentrations": self.exposure_concentrations,
        }


def _firm_accounts(
    todays: pl.DataFrame, staging: pl.DataFrame, fallback_share: float
) -> tuple[pl.DataFrame, int]:
    accounts = todays.join(
        staging.select("account_id", "trader", "profit_share_pct"), on="account_id", how="left"
    )
    missing = int(accounts["profit_share_pct"].null_count())
    return accounts.with_columns(pl.col("profit_share_pct").fill_null(fallback_share)), missing


def firm_backtest(
    history: pl.DataFrame, days: list[dt.date], settings: DeskSettings
) -> pl.DataFrame:
    """Each known day of ``days``: its realised firm sum against the intervals simulated from
    that day's predictions, with the dependence estimated from the days before it only."""
    rows = []
    for i, day in enumerate(days):
        # Known on ``day``: the outcomes whose target span had ended by then.
        window = history.filter(
            (pl.col("target_end") <= day)
            & (pl.col("date") >= day - dt.timedelta(days=settings.dependence_days))
        )
        dependence = firm.estimate_dependence(window)
        accounts = history.filter(pl.col("date") == day)
        rows.append(
            firm.backtest_day(
                day, accounts, dependence, n_sims=settings.backtest_sims, seed=settings.seed + i
            )
        )
    return pl.DataFrame(rows, schema=firm.BACKTEST_SCHEMA)


def build_report(
    day: dt.date,
    predictions: pl.DataFrame,
    staging: pl.DataFrame,
    labels: pl.DataFrame,
    trades_open: pl.DataFrame,
    settings: DeskSettings,
) -> DeskReport:
    """The report of ``day`` from the rows read for [``settings.history_start(day)``, ``day``].

    Only what was known at the end of ``day`` is used: labels whose target span ended by
    ``day`` and the open positions of ``day``.
    """
    chosen = desk_predictions(predictions)
    traders = staging.select("date", "account_id", "trader")
    todays = chosen.filter(pl.col("date") == day)
    if todays.height == 0:
        raise ValueError(
            f"desk_report {day}: no predictions for the day: materialise daily_predictions first"
        )
    # "Yesterday": the previous session with predictions.
    before = chosen.filter(pl.col("date") < day)["date"]
    yesterday = chosen.filter(pl.col("date") == before.max()) if before.len() else chosen.clear()
    staging_today = staging.filter(pl.col("date") == day)
    ranked_today = ranking.ranked(todays.join(traders, on=["date", "account_id"], how="left"))
    ranked_yesterday = ranking.ranked(
        yesterday.join(traders, on=["date", "account_id"], how="left")
    )
    changes = ranking.changes(ranked_today, ranked_yesterday, settings.top_n)

    history = scored_history(chosen.filter(pl.col("date") < day), labels, staging).filter(
        pl.col("target_end") <= day
    )
    window = history.filter(pl.col("date") >= day - dt.timedelta(days=settings.dependence_days))
    dependence = firm.estimate_dependence(window)
    accounts, fallback = _firm_accounts(todays, staging_today, settings.fallback_profit_share_pct)
    simulation = firm.simulate_firm(
        accounts, dependence, n_sims=settings.n_sims, seed=settings.seed
    )
    independent = firm.simulate_firm(
        accounts, firm.INDEPENDENT, n_sims=settings.n_sims, seed=settings.seed
    )
    summary = pl.concat(
        [
            firm.firm_summary(simulation).with_columns(pl.lit("dependent").alias("model")),
            firm.firm_summary(independent).with_columns(pl.lit("independent").alias("model")),
        ]
    ).with_columns(
        pl.lit(day).alias("date"),
        pl.lit(dependence.market).alias("rho_market"),
        pl.lit(dependence.trader).alias("rho_trader"),
    )

    # The check against the truth: the latest known out-of-sample days (the model's test days
    # and what came after), each simulated as the report of that day would have.
    known = history.filter(~pl.col("in_sample"))["date"].unique().sort().to_list()
    test_days = known[-settings.backtest_days :] if settings.backtest_days else []
    backtest = firm_backtest(history, test_days, settings)

    positions, matched = exposure.open_positions(
        trades_open.filter(pl.col("trade_date") == day), staging_today, settings.symbol_classes
    )
    model_version = todays["model_version"][0] if "model_version" in todays.columns else None
    return DeskReport(
        day=day,
        model_version=model_version,
        ranking=ranked_today.head(settings.top_n).select(ranking.RANKED_COLUMNS),
        changes=changes,
        firm=summary.select(
            "date",
            "model",
            "measure",
            "tail",
            "accounts",
            "p05",
            "p50",
            "p95",
            "mean",
            "es95",
            "rho_market",
            "rho_trader",
        ),
        simulation=simulation,
        independent=independent,
        backtest=backtest,
        backtest_summary=firm.backtest_summary(backtest),
        exposure_by_symbol=exposure.by_symbol(positions),
        exposure_by_class=exposure.by_class(positions),
        exposure_by_trader=exposure.by_trader(positions),
        exposure_concentrations=exposure.concentrations(positions, settings.top_n),
        positions_matched=matched,
        accounts=accounts.height,
        fallback_share_accounts=fallback,
    )


def report_folder(data_dir: Path, day: dt.date) -> Path:
    return data_dir / REPORT_FOLDER / day.isoformat()


def write_report(report: DeskReport, folder: Path) -> list[Path]:
    """Every table as ``<name>.csv`` and ``<name>.parquet`` in ``folder`` (real ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in report.tables().items():
        for path, write in (
            (folder / f"{name}.csv", table.write_csv),
            (folder / f"{name}.parquet", table.write_parquet),
        ):
            write(path)
            written.append(path)
    return written


def read_tables(folder: Path) -> dict[str, pl.DataFrame]:
    """The tables of a written report (real ids), by name; the ones present."""
    return {
        name: pl.read_parquet(folder / f"{name}.parquet")
        for name in TABLES
        if (folder / f"{name}.parquet").exists()
    }


def console_summary(day: dt.date, tables: Mapping[str, pl.DataFrame], top: int = 5) -> str:
    """A few lines for the end of the main job: the firm's next session, what changed at the
    top of the ranking, the largest exposures; identities masked."""
    lines = [f"desk report for the session after {day}:"]
    firm_rows = tables.get("firm")
    if firm_rows is not None and firm_rows.height:
        dep = firm_rows.filter(pl.col("model") == "dependent")
        ind = firm_rows.filter(pl.col("model") == "independent")
        for measure, title in (("firm_net_pnl", "firm net P&L"), ("payout_exposure", "payouts")):
            row = dep.filter(pl.col("measure") == measure).row(0, named=True)
            lines.append(
                f"  {title} over {row['accounts']} funded accounts: p05 {row['p05']:,.0f}, "
                f"p50 {row['p50']:,.0f}, p95 {row['p95']:,.0f}, ES95 {row['es95']:,.0f} USD"
            )
        width = dep.filter(pl.col("measure") == "firm_net_pnl").select(
            pl.col("p95") - pl.col("p05")
        )
        width_ind = ind.filter(pl.col("measure") == "firm_net_pnl").select(
            pl.col("p95") - pl.col("p05")
        )
        if width.height and width_ind.height and width_ind.item():
            first = dep.row(0, named=True)
            lines.append(
                f"  dependence: market {first['rho_market']:.2f}, same trader +"
                f"{first['rho_trader']:.2f}; 90% interval {width.item() / width_ind.item():.2f}x "
                "as wide as if accounts were independent"
            )
    backtest = tables.get("firm_backtest")
    if backtest is not None and backtest.height:
        lines.append(
            f"  checked on {backtest.height} known days: the 90% interval covered "
            f"{backtest['covered'].mean():.0%} of realised firm sums "
            f"(independent: {backtest['covered_independent'].mean():.0%})"
        )
    changes = tables.get("changes")
    if changes is not None and changes.height:
        moved = changes.filter(pl.col("change").is_in(["new", "left"]))
        counts = changes.group_by("change").len().sort("change")
        lines.append(
            "  top of the ranking since yesterday: "
            + ", ".join(f"{c} {n}" for c, n in counts.iter_rows())
        )
        for row in mask_identities(moved.head(top)).iter_rows(named=True):
            lines.append(f"    {row['change']:>4} {row['account_id']}: {row['reason']}")
    symbols = tables.get("exposure_by_symbol")
    if symbols is not None and symbols.height:
        lines.append(
            "  largest open exposure (gross / net USD): "
            + "; ".join(
                f"{r['symbol']} {r['gross_usd']:,.0f} / {r['net_usd']:+,.0f}"
                for r in symbols.head(top).iter_rows(named=True)
            )
        )
    return "\n".join(lines)
