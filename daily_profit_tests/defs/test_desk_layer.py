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
from daily_profit.defs.features.assets import feature_assets
from daily_profit.defs.resources import WarehouseResource
from daily_profit.desk.firm import Z95
from daily_profit.desk.report import TABLES, console_summary, read_tables, report_folder
from daily_profit.privacy import MASK_PREFIX
from daily_profit.sandbox.simulation import SimulationConfig, simulate
from daily_profit.warehouse.derived import PREDICTION_SCHEMA
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade
from daily_profit_tests.defs.landing import land_raw_layer

N_DAYS = 40
FIRST, LAST = dt.date(2025, 1, 2), dt.date(2025, 2, 8)
# A Thursday: positions are held overnight from Monday to Thursday.
DAY = dt.date(2025, 2, 6)
OUT_OF_SAMPLE_FROM = dt.date(2025, 1, 25)


def _oracle_predictions(
    features: pl.DataFrame, labels: pl.DataFrame, truth: pl.DataFrame
) -> pl.DataFrame:
    """Predictions for the sessions as the sandbox's truth makes them (its next-day mean and
    spread, close enough to the span's for the report's plumbing; a breach
    probability rising with the low end): what the desk report reads, without a training."""
    mean, sd = pl.col("expected_next_day_net_profit"), pl.col("next_day_std")
    p05 = mean - Z95 * sd
    return (
        features.select("date", "account_id", "feature_set_version")
        .join(
            labels.select("date", "account_id", "target_start", "target_end"),
            on=["date", "account_id"],
            how="inner",
        )
        .join(
            truth.select(pl.col("accountId").alias("account_id"), "date", mean, sd),
            on=["date", "account_id"],
            how="inner",
        )
        .with_columns(
            pl.lit("1").alias("model_version"),
            pl.lit(0, dtype=pl.Int64).alias("restatement"),
            pl.lit("champion").alias("model_role"),
            mean.alias("expected_net_profit"),
            p05.alias("p05"),
            mean.alias("p50"),
            (mean + Z95 * sd).alias("p95"),
            (1.0 / (1.0 + (p05 / 500.0).exp())).alias("breach_probability"),
            (100.0 / (1.0 + (p05 / 500.0).exp())).alias("risk_score"),
            pl.lit("dist_daily_loss_pct").alias("driver_1_feature"),
            (p05 / 10.0).alias("driver_1_contribution"),
            pl.lit("pnl_std_20d").alias("driver_2_feature"),
            (sd / 20.0).alias("driver_2_contribution"),
            pl.lit("regime_vol_spike_prob").alias("driver_3_feature"),
            pl.lit(1.0).alias("driver_3_contribution"),
            pl.lit("tree_shap").alias("drivers_method"),
            (pl.col("date") < OUT_OF_SAMPLE_FROM).alias("in_sample"),
            pl.lit(10, dtype=pl.Int64).alias("history_days"),
            pl.lit("oracle").alias("scored_run_id"),
            pl.lit(dt.datetime(2025, 3, 1, tzinfo=dt.UTC)).alias("scored_at"),
        )
        .select(PREDICTION_SCHEMA.names())
        .cast(dict(PREDICTION_SCHEMA))
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite warehouse with 40 sandbox days landed, features and labels built, and the
    truth's predictions written as model version 1."""
    tmp = tmp_path_factory.mktemp("desk_layer")
    url = f"sqlite:///{tmp / 'warehouse.sqlite'}"
    upgrade(url)
    warehouse = Warehouse(url)
    data = simulate(SimulationConfig(n_accounts=120, n_days=N_DAYS, seed=7))
    land_raw_layer(warehouse, data, tmp)
    built = dg.materialize(
        feature_assets[:3],
        resources={"warehouse": WarehouseResource(url=url)},
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": FIRST.isoformat(),
            "dagster/asset_partition_range_end": LAST.isoformat(),
        },
    )
    assert built.success
    features = warehouse.read_partitions("account_features_daily", FIRST, LAST)
    labels = warehouse.read_partitions("labels_next_session", FIRST, LAST)
    predictions = _oracle_predictions(features, labels, data.ground_truth)
    days = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
    warehouse.replace_partitions("daily_predictions", predictions, dates=days, run_id="oracle")
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
