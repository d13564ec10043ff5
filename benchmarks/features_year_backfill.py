"""A year of staging, features and labels for 2,000 accounts through Dagster, on PostgreSQL.

    uv run python benchmarks/features_year_backfill.py            # 2,000 accounts x 365 days
    uv run python benchmarks/features_year_backfill.py --quick    # 300 accounts x 60 days

The raw layer is loaded first (untimed) into a scratch PostgreSQL database through the one
write path, from the sandbox's records parsed as the ingestion parses them. Then the timed part
is what a person launches from the UI: a backfill of the whole range of `stg_accounts_daily`,
`account_features_daily` and `labels_next_session`, which their single-run backfill policy makes
one run (`dg.materialize` with the range tags, as the backfill daemon submits it), including
every day's check results. Floor: under 10 minutes (figure `features_year_backfill`, seconds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUICK = "--quick" in sys.argv
ACCOUNTS, DAYS = (300, 60) if QUICK else (2000, 365)
# With the sandbox the daily partitions end on its last simulated day: make it the year.
os.environ["DAILY_PROFIT_SANDBOX_DAYS"] = str(DAYS)

import dagster as dg  # noqa: E402

from benchmarks._common import log, report, scratch_postgres_database  # noqa: E402
from daily_profit.defs.features.assets import feature_assets  # noqa: E402
from daily_profit.defs.resources import WarehouseResource  # noqa: E402
from daily_profit.sandbox.simulation import SimulationConfig, simulate  # noqa: E402
from daily_profit.warehouse.io import Warehouse  # noqa: E402
from daily_profit.warehouse.migrate import upgrade  # noqa: E402
from daily_profit.warehouse.records import source_spec  # noqa: E402
from daily_profit_tests.support import raw_frames_from_sandbox  # noqa: E402

FLOOR_SECONDS = 600.0


def load_raw(store: Warehouse, config: SimulationConfig) -> dict[str, int]:
    frames = raw_frames_from_sandbox(simulate(config))
    days = [config.start_date + dt.timedelta(days=i) for i in range(config.n_days)]
    rows: dict[str, int] = {}
    for source, frame in frames.items():
        spec = source_spec(source)
        if spec.partition_column is None:
            store.replace_table(spec.table, frame, run_id="bench-setup")
        else:
            store.replace_partitions(spec.table, frame, dates=days, run_id="bench-setup")
        rows[spec.table] = frame.height
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.parse_args()  # --quick is read before the imports (it sizes the partitions)
    accounts, days = ACCOUNTS, DAYS
    config = SimulationConfig(n_accounts=accounts, n_days=days, seed=7)
    first, last = config.start_date, config.start_date + dt.timedelta(days=days - 1)
    with scratch_postgres_database(prefix="dp_bench_backfill") as url:
        upgrade(url)
        store = Warehouse(url)
        log(f"loading the raw layer: {accounts} accounts x {days} days ...")
        raw_rows = load_raw(store, config)
        log(f"raw rows: {raw_rows}")
        started = time.perf_counter()
        result = dg.materialize(
            feature_assets[:3],
            resources={"warehouse": WarehouseResource(url=url)},
            instance=dg.DagsterInstance.ephemeral(),
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
        )
        seconds = time.perf_counter() - started
        features = sum(store.partition_row_counts("account_features_daily", first, last).values())
        checks = len(result.get_asset_check_evaluations())
        store.dispose()
    report(
        "features_year_backfill",
        seconds,
        "s",
        params={
            "accounts": accounts,
            "days": days,
            "feature_rows": features,
            "check_results": checks,
            "raw_rows": raw_rows,
            "warehouse": "postgresql",
            "runs": 1,
            "floor_s": FLOOR_SECONDS,
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
    )
    return 0 if result.success and seconds < FLOOR_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
