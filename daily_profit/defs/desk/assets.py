"""The desk report: what the risk desk reads every morning, one partition per trading day."""

import base64
import time

import dagster as dg
import polars as pl

from daily_profit.config import get_settings
from daily_profit.defs.asset_keys import (
    DAILY_PREDICTIONS,
    LABELS_NEXT_SESSION,
    RAW_TRADES_OPEN,
    STG_ACCOUNTS_DAILY,
)
from daily_profit.defs.metadata import json_value, markdown_table
from daily_profit.defs.partitions import daily_partitions, partition_day
from daily_profit.defs.resources import WarehouseResource
from daily_profit.desk import plots
from daily_profit.desk.report import (
    DeskReport,
    DeskSettings,
    build_report,
    report_folder,
    write_report,
)
from daily_profit.features.labels import NET_PROFIT_NEXT_SESSION
from daily_profit.trading_calendar import trading_calendar

DESK_GROUP = "desk"
STAGING_COLUMNS = ("date", "account_id", "login", "platform", "broker", "trader",
                   "profit_share_pct")  # fmt: skip
RANKING_COLUMNS_SHOWN = ("rank", "account_id", "trader", "breach_probability", "p05",
                         "expected_net_profit", "risk_score", "drivers")  # fmt: skip


def _image(name: str, data: bytes) -> dg.MetadataValue:
    encoded = base64.b64encode(data).decode()
    return dg.MetadataValue.md(f"![{name}](data:image/png;base64,{encoded})")


def report_metadata(report: DeskReport, folder_path: str, figures: dict[str, bytes]) -> dict:
    """What the UI shows: the tables (identities masked), the figures and the key numbers
    (numeric, so the UI plots them over the days)."""
    firm = report.firm.filter(pl.col("model") == "dependent")
    pnl = firm.filter(pl.col("measure") == "firm_net_pnl").row(0, named=True)
    payout = firm.filter(pl.col("measure") == "payout_exposure").row(0, named=True)
    independent = report.firm.filter(
        (pl.col("model") == "independent") & (pl.col("measure") == "firm_net_pnl")
    ).row(0, named=True)
    dependence = report.simulation.dependence
    check = report.backtest_summary
    meta: dict[str, object] = {
        "model_version": report.model_version or "none",
        "accounts": report.accounts,
        "firm_pnl_p05": pnl["p05"],
        "firm_pnl_p50": pnl["p50"],
        "firm_pnl_p95": pnl["p95"],
        "firm_pnl_es95": pnl["es95"],
        "payout_p50": payout["p50"],
        "payout_p95": payout["p95"],
        "payout_es95": payout["es95"],
        "firm_pnl_p05_independent": independent["p05"],
        "firm_pnl_es95_independent": independent["es95"],
        "rho_market": dependence.market,
        "rho_trader": dependence.trader,
        "dependence": json_value(dependence.as_dict()),
        "method": "Gaussian factor copula: split-normal marginals through each account's "
        "p05/p50/p95; a market factor shared by all accounts and a trader factor shared by a "
        "trader's accounts, their correlations estimated from the scores of the realised P&L "
        f"of the last {get_settings().desk_dependence_days} days.",
        "firm": dg.MetadataValue.md(markdown_table(report.firm)),
        "firm_plot": _image("firm distribution", figures["firm_distribution"]),
        "check_days": int(check.get("days", 0)),
        "check": json_value(check),
        "firm_backtest": dg.MetadataValue.md(markdown_table(report.backtest)),
        "firm_backtest_plot": _image("firm backtest", figures["firm_backtest"]),
        "ranking": dg.MetadataValue.md(
            markdown_table(report.ranking.select(RANKING_COLUMNS_SHOWN))
        ),
        "changes": dg.MetadataValue.md(markdown_table(report.changes)),
        "changes_new": report.changes.filter(pl.col("change") == "new").height,
        "changes_left": report.changes.filter(pl.col("change") == "left").height,
        "exposure_by_class": dg.MetadataValue.md(markdown_table(report.exposure_by_class)),
        "exposure_by_symbol": dg.MetadataValue.md(markdown_table(report.exposure_by_symbol)),
        "exposure_plot": _image("exposure by symbol", figures["exposure"]),
        "exposure_by_trader": dg.MetadataValue.md(
            markdown_table(report.exposure_by_trader.head(len(report.ranking)))
        ),
        "exposure_concentrations": dg.MetadataValue.md(
            markdown_table(report.exposure_concentrations)
        ),
        "open_positions": json_value(report.positions_matched),
        "accounts_with_fallback_profit_share": report.fallback_share_accounts,
        "files": dg.MetadataValue.path(folder_path),
    }
    for key in ("coverage", "coverage_independent", "width_ratio_dependent_to_independent"):
        if key in check:
            meta[f"check_{key}"] = float(check[key])
    return meta


# The report of D reads the labels known by the end of D: those of the days before it (a label
# of D is realised only after the next session). Declared so, the nightly automation requests
# the report of D once D's predictions are there, not a night later with D's labels.
LABELS_KNOWN_BY_THE_REPORT = dg.AssetDep(
    LABELS_NEXT_SESSION,
    partition_mapping=dg.TimeWindowPartitionMapping(
        start_offset=-DeskSettings.from_settings().history_days, end_offset=-1
    ),
)


@dg.asset(
    group_name=DESK_GROUP,
    partitions_def=daily_partitions,
    deps=[DAILY_PREDICTIONS, STG_ACCOUNTS_DAILY, LABELS_KNOWN_BY_THE_REPORT, RAW_TRADES_OPEN],
    kinds={"polars", "matplotlib"},
    tags={"layer": "desk"},
)
def desk_report(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """What the risk desk reads for the session after day D.

    **Ranking**: the accounts by risk (breach probability, then the low end p05 of the 90%
    interval), the top N with their drivers, and what changed since yesterday: new in the top,
    moved up or down, left, each with its reason. **The firm's next session**: the
    distribution of the sum of the funded accounts' net P&L and of the payouts the firm owes on
    their positive days (each plan's profit share), with p05, p50, p95 and the 95% expected
    shortfall, simulated from the per-account predictions with the dependence they share (a
    Gaussian factor copula: a market factor and a trader factor for traders with several
    accounts, estimated from the realised history), beside the same as if accounts were
    independent; checked against the realised firm sums of the latest known out-of-sample
    days. **Exposure**: open positions by symbol and asset class (net and gross), the largest
    concentrations and per trader. The same tables as CSV and Parquet, with the real account
    ids, in `<data dir>/desk_report/<day>/`; identities are masked here."""
    started = time.perf_counter()
    day = partition_day(context.partition_key)
    if not trading_calendar().is_session(day):
        # Predictions, and so reports, exist for sessions only; the nightly window (a weekend,
        # a holiday) holds the days between them too.
        return dg.MaterializeResult(metadata={"session": False})
    settings = DeskSettings.from_settings()
    store = warehouse.get()
    first = max(settings.history_start(day), get_settings().start_date)
    report = build_report(
        day,
        predictions=store.read_partitions("daily_predictions", first, day),
        staging=store.read_partitions(
            "stg_accounts_daily",
            first,
            day,
            columns=list(STAGING_COLUMNS),
        ),
        labels=store.read_partitions(
            "labels_next_session",
            first,
            day,
            columns=[
                "date",
                "account_id",
                "target_end",
                "label_available",
                NET_PROFIT_NEXT_SESSION,
            ],
        ),
        trades_open=store.read_partitions("raw_trades_open", day, day),
        settings=settings,
    )
    folder = report_folder(get_settings().data_dir, day)
    write_report(report, folder)
    figures = {
        "firm_distribution": plots.png(
            plots.firm_distribution(report.simulation, report.independent)
        ),
        "firm_backtest": plots.png(plots.backtest(report.backtest)),
        "exposure": plots.png(plots.exposure(report.exposure_by_symbol)),
    }
    for name, data in figures.items():
        (folder / f"{name}.png").write_bytes(data)
    metadata = report_metadata(report, str(folder), figures)
    metadata["duration_s"] = round(time.perf_counter() - started, 3)
    return dg.MaterializeResult(metadata=metadata)


desk_assets = [desk_report]
