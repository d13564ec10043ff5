"""The desk report through Dagster on a small landed warehouse: the tables and figures in the
metadata with identities masked, the same tables as CSV and Parquet with the real ids."""

import datetime as dt
import math

import dagster as dg
import polars as pl
import pytest

from daily_profit.cli import _print_desk_report
from daily_profit.config import get_settings
from daily_profit.defs.desk.assets import desk_assets
from daily_profit.defs.resources import WarehouseResource
from daily_profit.desk.report import TABLES, console_summary, read_tables, report_folder
from daily_profit.privacy import MASK_PREFIX
from daily_profit.trading_calendar import trading_calendar
from daily_profit.warehouse.io import Warehouse
from daily_profit_tests.defs.desk_store import DAY, build_desk_warehouse


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite warehouse with 40 sandbox days landed, features and labels built, and the
    truth's predictions written as model version 1."""
    tmp = tmp_path_factory.mktemp("desk_layer")
    url = f"sqlite:///{tmp / 'warehouse.sqlite'}"
    build_desk_warehouse(url, tmp)
    warehouse = Warehouse(url)
    yield warehouse
    warehouse.dispose()


def test_desk_report_tables_figures_and_files(store, settings_env, capsys):
    settings_env(desk_simulations=2_000, desk_backtest_simulations=500, desk_backtest_days=8)
    result = dg.materialize(
        desk_assets,
        resources={"warehouse": WarehouseResource(url=store.url)},
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=DAY.isoformat(),
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}

    # The files: every table as CSV and Parquet, with the real account ids the desk acts on.
    folder = report_folder(get_settings().data_dir, DAY)
    for name in TABLES:
        assert (folder / f"{name}.csv").exists() and (folder / f"{name}.parquet").exists()
    tables = read_tables(folder)
    predicted = store.read_partitions("daily_predictions", DAY, DAY)
    real_ids = set(predicted["account_id"].to_list())
    assert set(tables["ranking"]["account_id"].to_list()) <= real_ids
    assert tables["ranking"].height == get_settings().desk_top_n
    assert (
        pl.read_csv(folder / "ranking.csv")["account_id"].cast(pl.String).to_list()[0] in real_ids
    )
    traders = set(
        store.read_partitions("stg_accounts_daily", DAY, DAY, columns=["trader"])[
            "trader"
        ].to_list()
    )
    assert set(tables["exposure_by_trader"]["trader"].to_list()) <= traders
    assert (folder / "firm_distribution.png").stat().st_size > 1_000

    # The UI: tables and figures, and no identity in the clear anywhere in the metadata.
    text = " ".join(str(v) for v in meta.values())
    assert not [i for i in real_ids if i in text]
    assert not [t for t in traders if t in text]
    assert MASK_PREFIX in str(meta["ranking"]) and MASK_PREFIX in str(meta["exposure_by_trader"])
    for plot in ("firm_plot", "firm_backtest_plot", "exposure_plot"):
        assert str(meta[plot]).startswith("![")
    assert meta["accounts"] == predicted.height
    assert (
        meta["firm_pnl_es95"] < meta["firm_pnl_p05"] < meta["firm_pnl_p50"] < meta["firm_pnl_p95"]
    )
    assert 0 <= meta["payout_p50"] <= meta["payout_p95"] <= meta["payout_es95"]
    assert meta["check_days"] == 8
    assert 0.0 <= meta["check_coverage"] <= 1.0
    assert meta["check_width_ratio_dependent_to_independent"] >= 1.0
    assert meta["dependence"]["days"] > 0 and math.isfinite(meta["rho_trader"])
    assert meta["open_positions"]["positions"] > 0
    assert set(tables["exposure_by_class"]["asset_class"].to_list()) <= {
        "fx", "metals", "indices", "crypto"
    }  # fmt: skip

    # The console: the same summary, masked.
    summary = console_summary(DAY, tables)
    assert "firm net P&L" in summary and "ES95" in summary and "checked on 8 known days" in summary
    assert not [i for i in real_ids | traders if i in summary]

    # The end of the main job: the top of the ranking and the firm summary, masked.
    _print_desk_report(DAY)
    printed = capsys.readouterr().out
    assert "ten accounts most at risk" in printed and "firm net P&L" in printed
    assert MASK_PREFIX in printed
    assert not [i for i in real_ids | traders if i in printed]


def test_a_day_between_sessions_has_no_report(store):
    # The nightly window holds weekend days; their partitions are done with nothing to report.
    day = next(
        DAY - dt.timedelta(days=i)
        for i in range(1, 8)
        if not trading_calendar().is_session(DAY - dt.timedelta(days=i))
    )
    result = dg.materialize(
        desk_assets,
        resources={"warehouse": WarehouseResource(url=store.url)},
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=day.isoformat(),
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["session"].value is False
    assert not report_folder(get_settings().data_dir, day).exists()
