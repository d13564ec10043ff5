"""Command line: the main job, and small helpers the README names.

``daily-profit main`` runs the platform end to end on the configured (by default embedded)
setup: the sandbox, the warehouse migrations, then the asset graph through Dagster against the
local instance in ``.dagster_home/``, so everything it materialised shows in ``./dp ui``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
import warnings
from typing import TYPE_CHECKING

from daily_profit.config import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:
    from daily_profit.warehouse.io import Warehouse

LOCAL_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"
# Every event still goes to the instance (and the UI); the terminal gets warnings and errors.
# model_performance partitions the main job fills (one short run each).
PERFORMANCE_DAYS = 10
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def local_instance():
    """The project's persistent local Dagster instance (the one `dagster dev` here uses)."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    LOCAL_DAGSTER_HOME.mkdir(exist_ok=True)
    # Storage paths in dagster.yaml are relative to the project root, as for `dagster dev`.
    os.chdir(PROJECT_ROOT)
    return dg.DagsterInstance.from_ref(
        InstanceRef.from_dir(str(LOCAL_DAGSTER_HOME), config_dir=str(PROJECT_ROOT))
    )


def _say(message: str) -> None:
    print(message, flush=True)


def _days(settings: Settings, n_days: int | None) -> list[dt.date]:
    from daily_profit.defs.partitions import daily_partitions

    keys = daily_partitions.get_partition_keys()
    if n_days is not None:
        keys = keys[:n_days]
    return [dt.date.fromisoformat(k) for k in keys]


def run_main(n_days: int | None) -> int:
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    if settings.uses_sandbox:
        from daily_profit.sandbox.launcher import ensure_sandbox

        _say(
            f"sandbox: {settings.sandbox_accounts} accounts x {settings.sandbox_days} days "
            f"from {settings.start_date} (seed {settings.sandbox_seed})"
        )
        _say(f"  serving the Risk API at {ensure_sandbox(settings)}")

    from daily_profit.warehouse.migrate import upgrade

    upgrade(settings.resolved_warehouse_url)
    _say(f"warehouse: migrations applied to {_safe_url(settings.resolved_warehouse_url)}")

    from daily_profit.definitions import defs

    days = _days(settings, n_days)
    with local_instance() as instance:
        reference = defs.get_job_def("raw_reference").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
        _say(f"raw reference (plans, account master): {_status(reference)}")
        daily_job = defs.get_job_def("raw_daily")
        failed: list[str] = []
        for i, day in enumerate(days, 1):
            result = daily_job.execute_in_process(
                instance=instance,
                partition_key=day.isoformat(),
                raise_on_error=False,
                run_config=QUIET_RUN_CONFIG,
            )
            if not result.success:
                failed.append(day.isoformat())
            if i % 10 == 0 or i == len(days):
                _say(f"raw layer: {i}/{len(days)} days ({len(failed)} with failures)")
        features = _range_run(defs, "features", instance, days)
        _say(f"staging, features, labels ({len(days)} days in one run): {_status(features)}")
        if not features.success:
            failed.append("features")
        desk = defs.get_job_def("desk_summary").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
        _say(f"desk account performance summary: {_status(desk)}")
        model = defs.get_job_def("train_profit_model").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
        _say(f"profit model (train, log to MLflow, promote): {_status(model)}")
        predictions = _range_run(defs, "predictions", instance, days)
        _say(f"daily predictions ({len(days)} days in one run): {_status(predictions)}")
        if not predictions.success:
            failed.append("predictions")
        outcomes = _range_run(defs, "score_outcomes", instance, days)
        _say(f"prediction outcomes: {_status(outcomes)}")
        performance_job = defs.get_job_def("daily_model_performance")
        # The last days' performance, one partition each (the UI plots them over time).
        for day in days[-PERFORMANCE_DAYS - 1 : -1]:
            performance_job.execute_in_process(
                instance=instance,
                partition_key=day.isoformat(),
                raise_on_error=False,
                run_config=QUIET_RUN_CONFIG,
            )
        _say(f"model performance: the last {PERFORMANCE_DAYS} days with outcomes")
        model_summary = _model_summary(instance, model)
    from daily_profit.warehouse.io import Warehouse

    store = Warehouse(settings.resolved_warehouse_url)
    _print_raw_summary(store, days)
    _print_feature_summary(store, days)
    _say(model_summary)
    _print_most_at_risk(store, days)
    store.dispose()
    if failed:
        _say(f"days with a failed step or blocking check: {', '.join(failed)}")
    _say(f"done in {time.perf_counter() - started:.0f}s. Open the UI on what landed: ./dp ui")
    return 0 if not failed else 1


def _range_run(defs, job: str, instance, days: list[dt.date]):
    """One run over the whole range of days, as a single-run backfill from the UI does."""
    return defs.get_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=QUIET_RUN_CONFIG,
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
    )


def _status(result) -> str:
    return "ok" if result.success else "FAILED (see ./dp ui, run " + result.run_id + ")"


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


def _print_raw_summary(store: Warehouse, days: list[dt.date]) -> None:
    from daily_profit.ingestion.sources import DAILY_API_SOURCES, METRICS_ALLTIME

    _say(f"\nwhat landed ({days[0]} .. {days[-1]}):")
    for table in ["raw_plans", METRICS_ALLTIME.table]:
        _say(f"  {table:<22} {store.read_table(table).height:>10,} rows")
    for source in DAILY_API_SOURCES:
        rows = sum(store.partition_row_counts(source.table, days[0], days[-1]).values())
        _say(f"  {source.table:<22} {rows:>10,} rows")
    reasons = (
        store.read_quarantine()
        .group_by("asset", "reason")
        .len("records")
        .sort(["asset", "records"], descending=[False, True])
    )
    if reasons.height == 0:
        _say("quarantine: empty, every record the API served was valid")
    else:
        _say(f"quarantine: {int(reasons['records'].sum()):,} records rejected:")
        for row in reasons.iter_rows(named=True):
            _say(f"  {row['asset']:<22} {row['records']:>6,}  {row['reason']}")


def _print_feature_summary(store: Warehouse, days: list[dt.date]) -> None:
    from daily_profit.features.catalog import catalog, feature_set_version

    staged = sum(store.partition_row_counts("stg_accounts_daily", days[0], days[-1]).values())
    featured = sum(store.partition_row_counts("account_features_daily", days[0], days[-1]).values())
    labels = store.read_partitions(
        "labels_next_day", days[0], days[-1], columns=["label_status", "label_available"]
    )
    _say(
        f"\nfeatures: {featured:,} live funded account-days x {len(catalog())} features "
        f"(feature set {feature_set_version()}); staging rows {staged:,}"
    )
    if labels.height:
        counts = labels.group_by("label_status").len().sort("len", descending=True)
        _say(
            f"labels: {int(labels['label_available'].sum()):,} usable; "
            + ", ".join(f"{s}: {n:,}" for s, n in counts.iter_rows())
        )


def _model_summary(instance, result) -> str:
    """Test metrics against the baselines, and the promotion decision with its reasons."""
    import dagster as dg

    materialised = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("profit_model")
    ]
    if not materialised:
        return "\nmodel: training failed, see ./dp ui"
    meta = materialised[0].materialization.metadata
    lines = [
        f"\nmodel version {meta['model_version'].value}: {meta['mlflow_run'].value}",
        f"test days {meta['test_days'].value}, rows {meta['test_rows'].value}:",
        meta["test_metrics"].value,
    ]
    for check in result.get_asset_check_evaluations():
        if check.check_name == "champion_promotion":
            m = check.metadata
            lines.append(
                f"promotion: {m['decision'].value} ({m['kind'].value}); champion is version "
                f"{m['champion_version'].value}"
            )
            lines.append(m["reasons"].value)
            if not check.passed:
                lines.append("no version qualified as champion: predictions use the challenger")
    return "\n".join(lines)


def _print_most_at_risk(store: Warehouse, days: list[dt.date]) -> None:
    import polars as pl

    from daily_profit.privacy import mask_identities

    last = days[-1]
    predictions = store.read_partitions("daily_predictions", last, last)
    if predictions.height == 0:
        _say("no predictions were written")
        return
    role = "champion" if (predictions["model_role"] == "champion").any() else "challenger"
    top = (
        predictions.filter(pl.col("model_role") == role)
        .sort("risk_score", descending=True)
        .head(10)
        .select(
            "account_id",
            pl.col("risk_score").round(1),
            pl.col("breach_probability").round(3),
            pl.col("expected_net_profit").round(0),
            pl.col("p05").round(0),
            pl.col("p95").round(0),
            "driver_1_feature",
        )
    )
    _say(f"\nthe ten accounts most at risk on {last + dt.timedelta(days=1)} ({role} model):")
    with pl.Config(tbl_rows=10, tbl_cols=10, tbl_width_chars=140, tbl_hide_dataframe_shape=True):
        _say(str(mask_identities(top)))


def run_mlflow_ui(port: int) -> int:
    settings = get_settings()
    settings.mlflow_artifact_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.call(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            settings.resolved_mlflow_tracking_uri,
            "--artifacts-destination",
            str(settings.mlflow_artifact_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daily-profit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    main_cmd = sub.add_parser("main", help="run the platform end to end on the configuration")
    main_cmd.add_argument("--days", type=int, default=None, help="only the first N trading days")
    ui = sub.add_parser("mlflow-ui", help="open the MLflow UI on the local tracking store")
    ui.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    if args.command == "main":
        return run_main(args.days)
    if args.command == "mlflow-ui":
        return run_mlflow_ui(args.port)
    return 2


if __name__ == "__main__":
    sys.exit(main())
