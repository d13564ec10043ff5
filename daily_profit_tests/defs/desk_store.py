"""A small landed warehouse for the desk report, without a training: sandbox days landed
through the raw code path, staging, features and labels built by their assets, and the
sandbox truth's predictions written as model version 1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl

from daily_profit.defs.features.assets import feature_assets
from daily_profit.defs.resources import WarehouseResource
from daily_profit.desk.firm import Z95
from daily_profit.sandbox.simulation import SandboxData, SimulationConfig, simulate
from daily_profit.warehouse.derived import PREDICTION_SCHEMA
from daily_profit.warehouse.io import Warehouse
from daily_profit.warehouse.migrate import upgrade
from daily_profit_tests.defs.landing import land_raw_layer

N_DAYS = 40
FIRST, LAST = dt.date(2025, 1, 2), dt.date(2025, 2, 8)
# A Thursday: positions are held overnight from Monday to Thursday.
DAY = dt.date(2025, 2, 6)
OUT_OF_SAMPLE_FROM = dt.date(2025, 1, 25)


def oracle_predictions(
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


def build_desk_warehouse(url: str, folder: Path, *, n_accounts: int = 120) -> SandboxData:
    """Migrates the warehouse at ``url`` and fills it for the desk report of ``DAY``; returns
    the simulated firm (its truth is the report's check)."""
    upgrade(url)
    warehouse = Warehouse(url)
    try:
        data = simulate(SimulationConfig(n_accounts=n_accounts, n_days=N_DAYS, seed=7))
        land_raw_layer(warehouse, data, folder)
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
        predictions = oracle_predictions(features, labels, data.ground_truth)
        days = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
        warehouse.replace_partitions("daily_predictions", predictions, dates=days, run_id="oracle")
    finally:
        warehouse.dispose()
    return data
