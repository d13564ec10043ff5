"""A nightly tick at firm scale, and a year's feature backfill, with their peak memory.

    uv run python benchmarks/nightly_100k.py            # 100,000 accounts; backfill 20,000
    uv run python benchmarks/nightly_100k.py --quick    # 5,000 accounts, 60 days; backfill 2,000
    uv run python benchmarks/nightly_100k.py --only nightly --accounts 50000   # one part, a size

Setup (untimed, reported apart as ``*_setup`` figures): a scratch PostgreSQL warehouse at the
migrations' head, and a year of raw history landed by bulk COPY through the one write path
(``Warehouse.replace_partitions``). The history is generated vectorised from the sandbox's own
records: the firm is simulated for the ``SIM_DAYS`` days before the tick day (the same seed
and size the sandbox serves, so the accounts, logins and plans are the ones the tick ingests),
its rows are parsed as the ingestion parses them (``daily_profit_tests.support``), and every
earlier day of the year is a copy of one of those days with all its dates moved to that day.
``raw_metrics_daily`` (what staging's cumulative state reads) is landed for the whole year; the
other daily tables for the days the tick reads (the features' lookback) unless
``--all-history`` lands them for the year too. A champion model is trained on a small
simulation and registered in the run's MLflow store.

Timed, in a child process started for it (its wall time, imports included):

- ``nightly_100k_accounts``: one nightly tick through the project's own Dagster definitions
  (``daily_profit.definitions``: jobs ``raw_reference``, ``raw_daily``, ``features``,
  ``predictions``, ``desk_summary``, ``morning_report``, each for the tick day, on a Dagster
  instance stored in PostgreSQL): ingest the day from the sandbox (its own process, allowance
  lifted), staging and features with their lookback (and the day's labels), score with the
  champion, refresh the desk's summary, write the desk's morning report. Floor: 600 s.
- ``nightly_100k_peak_rss_gb``: the peak, sampled every 0.2 s with psutil, of the summed
  resident memory of the child and every process under it (the platform). The sandbox's and
  PostgreSQL's own peaks (every ``postgres`` process summed: shared memory counted once per
  process, so an overstatement) are in the params. Floor: 8 GB.
- ``features_backfill_20k_peak_rss_gb`` and ``features_backfill_20k``: the ``features`` job
  (staging, features, labels) over the whole year as one range run for 20,000 accounts, all
  raw tables landed for the year. Floors: 12 GB, 1,800 s.

``nightly_500k_accounts_implied``: the nightly figures scaled linearly from the measured size
to 500,000 accounts (the work of every step is per account-day): an estimate, not a run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import log, report, scratch_postgres_database

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TICK_DAY = dt.date(2026, 6, 30)
SIM_DAYS = 8  # simulated days before the tick day; the rest of the year copies them
SEED = 7
NIGHTLY_FLOOR_S, NIGHTLY_FLOOR_GB = 600.0, 8.0
BACKFILL_FLOOR_S, BACKFILL_FLOOR_GB = 1800.0, 12.0
IMPLIED_ACCOUNTS = 500_000
NIGHTLY_JOBS = (
    "raw_reference",
    "raw_daily",
    "features",
    "predictions",
    "desk_summary",
    "morning_report",
)
UNPARTITIONED_JOBS = {"raw_reference", "desk_summary"}
GB = 1024**3


# --- setup: the year of history --------------------------------------------------------------


def history_frames(accounts: int, first_sim_day: dt.date) -> dict[str, Any]:
    """The raw tables of the firm's ``SIM_DAYS`` simulated days before the tick day, as the
    warehouse holds them (the tick day itself is left to the ingestion)."""
    import polars as pl

    from daily_profit.sandbox.simulation import SimulationConfig, simulate
    from daily_profit.warehouse.records import source_spec
    from daily_profit_tests.support import raw_frames_from_sandbox

    # Simulated exactly as the sandbox simulates it (same seed, size and days).
    config = SimulationConfig(
        seed=SEED, n_accounts=accounts, n_days=SIM_DAYS + 1, start_date=first_sim_day
    )
    frames = raw_frames_from_sandbox(simulate(config))
    last = first_sim_day + dt.timedelta(days=SIM_DAYS - 1)
    out: dict[str, Any] = {}
    for source, frame in frames.items():
        column = source_spec(source).partition_column if source != "plans" else None
        out[source] = frame if column is None else frame.filter(pl.col(column) <= last)
    return out


def moved_day(frame: Any, days: int) -> Any:
    """A day's rows moved ``days`` days: every date and timestamp column, nothing else."""
    import polars as pl

    if days == 0:
        return frame
    moved = [
        (pl.col(name) + pl.duration(days=days)).alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.Date or isinstance(dtype, pl.Datetime)
    ]
    return frame.with_columns(moved)


def land_history(
    url: str,
    frames: dict[str, Any],
    *,
    first_sim_day: dt.date,
    year_start: dt.date,
    lookback_start: dt.date,
    all_history: bool,
    batch_days: int = 10,
) -> dict[str, int]:
    """Every day from ``year_start`` to the day before the tick, a batch of days per COPY."""
    import polars as pl

    from daily_profit.warehouse.io import Warehouse
    from daily_profit.warehouse.records import source_spec

    store = Warehouse(url)
    rows: dict[str, int] = {}
    last = first_sim_day + dt.timedelta(days=SIM_DAYS - 1)
    for source, frame in frames.items():
        spec = source_spec(source) if source != "plans" else None
        table = "raw_plans" if spec is None else spec.table
        if spec is None or spec.partition_column is None:
            store.replace_table(table, frame, run_id="bench-setup")
            rows[table] = frame.height
            continue
        column = spec.partition_column
        by_day = {key[0]: part for key, part in frame.partition_by(column, as_dict=True).items()}
        first = year_start if (all_history or source == "metrics_daily") else lookback_start
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        rows[table] = 0
        for i in range(0, len(days), batch_days):
            batch = days[i : i + batch_days]
            parts = []
            for day in batch:
                # The last SIM_DAYS days are the simulated ones; every earlier day repeats them.
                source_day = first_sim_day + dt.timedelta(
                    days=(day - first_sim_day).days % SIM_DAYS
                )
                if source_day in by_day:
                    parts.append(moved_day(by_day[source_day], (day - source_day).days))
            if parts:
                batch_frame = pl.concat(parts)
                store.replace_partitions(table, batch_frame, dates=batch, run_id="bench-setup")
                rows[table] += batch_frame.height
        log(f"  {table}: {rows[table]:,} rows from {days[0]} to {days[-1]}")
    store.dispose()
    return rows


def train_champion() -> str:
    """A model trained on a small simulation, registered and aliased ``champion``."""
    from daily_profit.config import get_settings
    from daily_profit.modeling.evaluate import evaluate_result
    from daily_profit.modeling.tracking import CHAMPION, TrackingTarget, log_training_run
    from daily_profit.modeling.train import SearchBudget, TrainConfig, train_profit_model
    from daily_profit_tests.modeling.sandbox_frame import sandbox_frame

    data = sandbox_frame(seed=SEED, n_accounts=150, n_days=60)
    config = TrainConfig(seed=0, budget=SearchBudget(n_trials=2, n_folds=2))
    result = train_profit_model(data.frame, data.feature_columns, config, history=data.history)
    target = TrackingTarget.from_settings(get_settings())
    logged = log_training_run(target, result, evaluate_result(result, history=data.history))
    target.client().set_registered_model_alias(
        target.registered_model_name, CHAMPION, logged.version
    )
    return logged.version


def platform_env(
    folder: Path, warehouse_url: str, dagster_url: str, api_url: str, year_start: dt.date
) -> dict[str, str]:
    """The settings of the platform's processes: everything in ``folder`` and the scratch
    databases, automation off (the benchmark runs the tick itself)."""
    import sqlalchemy as sa

    home = folder / "dagster_home"
    home.mkdir(exist_ok=True)
    # dagster-postgres speaks psycopg2 (its NOTIFY fails under psycopg 3).
    dagster_url = (
        sa.make_url(dagster_url).set(drivername="postgresql+psycopg2").render_as_string(False)
    )
    # Dagster's own storage on PostgreSQL, as in production (deploy/dagster.yaml).
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {json.dumps(dagster_url)}\n"
        "telemetry:\n  enabled: false\n"
    )
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAILY_PROFIT_DATA_DIR": str(folder / "data"),
        "DAILY_PROFIT_WAREHOUSE_URL": warehouse_url,
        "DAILY_PROFIT_RISK_API_BASE_URL": api_url,
        "DAILY_PROFIT_RISK_API_KEY": "sandbox-key",
        "DAILY_PROFIT_PLANS_CSV_PATH": str(folder / "sandbox" / "plans.csv"),
        "DAILY_PROFIT_START_DATE": year_start.isoformat(),
        "DAILY_PROFIT_AUTOMATION_ENABLED": "false",
    }


# --- measuring the platform's processes --------------------------------------------------------


@dataclass
class Peaks:
    platform: int = 0
    sandbox: int = 0
    postgres: int = 0
    platform_cpu_s: float = 0.0
    samples: int = 0
    by_step: dict[str, int] = field(default_factory=dict)


def _rss(process: Any) -> int:
    import psutil

    try:
        return process.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0


def _cpu(process: Any) -> float:
    import psutil

    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return times.user + times.system


def sample_peaks(pid: int, sandbox_pid: int | None, stop: threading.Event, peaks: Peaks) -> None:
    """Peak resident memory of the process tree under ``pid``, of the sandbox and of
    PostgreSQL, every 0.2 s until ``stop``."""
    import psutil

    root = psutil.Process(pid)
    sandbox = psutil.Process(sandbox_pid) if sandbox_pid else None
    while not stop.is_set():
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        peaks.platform = max(peaks.platform, sum(_rss(p) for p in tree))
        peaks.platform_cpu_s = max(peaks.platform_cpu_s, sum(_cpu(p) for p in tree))
        if sandbox is not None:
            peaks.sandbox = max(peaks.sandbox, _rss(sandbox))
        postgres = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
        peaks.postgres = max(peaks.postgres, sum(_rss(p) for p in postgres))
        peaks.samples += 1
        stop.wait(0.2)


def run_child(mode: str, env: dict[str, str], sandbox_pid: int | None) -> tuple[float, Peaks, dict]:
    """This script in ``--child`` mode, timed and sampled; returns its JSON result."""
    peaks, stop = Peaks(), threading.Event()
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", mode],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    sampler = threading.Thread(target=sample_peaks, args=(child.pid, sandbox_pid, stop, peaks))
    sampler.start()
    out, _ = child.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"the {mode} child failed (exit {child.returncode}): {out[-2000:]}")
    return seconds, peaks, json.loads(out.strip().splitlines()[-1])


# --- the child: what is timed ---------------------------------------------------------------


def child_nightly() -> dict[str, Any]:
    import dagster as dg

    from daily_profit.definitions import defs
    from daily_profit.warehouse.io import Warehouse

    steps: dict[str, float] = {}
    with dg.DagsterInstance.get() as instance:
        for job in NIGHTLY_JOBS:
            started = time.perf_counter()
            key = None if job in UNPARTITIONED_JOBS else TICK_DAY.isoformat()
            result = defs.resolve_job_def(job).execute_in_process(
                partition_key=key, instance=instance, raise_on_error=False
            )
            steps[job] = round(time.perf_counter() - started, 3)
            if not result.success:
                failures = [e.message for e in result.all_events if e.is_failure][:3]
                raise RuntimeError(f"job {job} failed: {failures}")
            print(f"{job}: {steps[job]} s", file=sys.stderr, flush=True)
    store = Warehouse.from_settings()
    rows = {
        table: sum(store.partition_row_counts(table, TICK_DAY, TICK_DAY).values())
        for table in (
            "raw_metrics_daily",
            "raw_trades_closed",
            "stg_accounts_daily",
            "account_features_daily",
            "daily_predictions",
        )
    }
    store.dispose()
    return {"steps_s": steps, "rows": rows}


def child_backfill(first: str, last: str) -> dict[str, Any]:
    import dagster as dg

    from daily_profit.definitions import defs
    from daily_profit.warehouse.io import Warehouse

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        # What the backfill daemon submits for a single-run backfill policy: one run, range tags.
        result = defs.resolve_job_def("features").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
        )
    if not result.success:
        raise RuntimeError("the features backfill failed")
    store = Warehouse.from_settings()
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    rows = sum(store.partition_row_counts("account_features_daily", start, end).values())
    store.dispose()
    return {"run_s": round(time.perf_counter() - started, 3), "feature_rows": rows}


# --- the two measurements --------------------------------------------------------------------


def _setup_database(url: str) -> None:
    from daily_profit.warehouse.migrate import upgrade

    upgrade(url)


def _gb(n: int) -> float:
    return round(n / GB, 3)


def measure_nightly(accounts: int, history_days: int, all_history: bool, tmp: Path) -> dict:
    from benchmarks.ingest_e2e import sandbox_process
    from daily_profit.config import get_settings
    from daily_profit.features.pipeline import required_history_start

    year_start = TICK_DAY - dt.timedelta(days=history_days)
    first_sim_day = TICK_DAY - dt.timedelta(days=SIM_DAYS)
    (tmp / "sandbox").mkdir()
    with (
        scratch_postgres_database(prefix="dp_bench_nightly") as url,
        scratch_postgres_database(prefix="dp_bench_dagster") as dagster_url,
    ):
        setup_started = time.perf_counter()
        log(f"sandbox: {accounts:,} accounts x {SIM_DAYS + 1} days, allowance lifted ...")
        with sandbox_process(
            accounts,
            SIM_DAYS + 1,
            SEED,
            rate_limited=False,
            log_dir=tmp,
            start_date=first_sim_day,
            write_dir=tmp / "sandbox",
        ) as sandbox:
            env = platform_env(tmp, url, dagster_url, sandbox.base_url, year_start)
            os.environ.update(env)
            get_settings.cache_clear()
            _setup_database(url)
            log(f"history: {history_days} days before {TICK_DAY} ...")
            raw_rows = land_history(
                url,
                history_frames(accounts, first_sim_day),
                first_sim_day=first_sim_day,
                year_start=year_start,
                lookback_start=required_history_start(TICK_DAY),
                all_history=all_history,
            )
            log("training the champion ...")
            champion = train_champion()
            setup_s = time.perf_counter() - setup_started
            report(
                "nightly_100k_setup",
                setup_s,
                "s",
                params={"accounts": accounts, "raw_rows": raw_rows, "untimed": True},
            )
            load_before = os.getloadavg()
            log("the nightly tick ...")
            seconds, peaks, result = run_child("nightly", env, sandbox.process.pid)
            load_after = os.getloadavg()
    params = {
        "accounts": accounts,
        "tick_day": TICK_DAY.isoformat(),
        "history_days": history_days,
        "all_raw_tables_for_the_year": all_history,
        "rows_of_the_day": result["rows"],
        "steps_s": result["steps_s"],
        "champion_version": champion,
        "platform_peak_rss_gb": _gb(peaks.platform),
        "platform_cpu_s": round(peaks.platform_cpu_s, 1),
        "sandbox_peak_rss_gb": _gb(peaks.sandbox),
        "postgres_peak_rss_gb_summed": _gb(peaks.postgres),
        "rss_samples": peaks.samples,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "floor_s": NIGHTLY_FLOOR_S,
    }
    report("nightly_100k_accounts", seconds, "s", params=params)
    report(
        "nightly_100k_peak_rss_gb",
        _gb(peaks.platform),
        "GB",
        params={**params, "floor_gb": NIGHTLY_FLOOR_GB},
    )
    scale = IMPLIED_ACCOUNTS / accounts
    report(
        "nightly_500k_accounts_implied",
        seconds * scale,
        "s",
        params={
            "measured_accounts": accounts,
            "peak_rss_gb_implied": round(_gb(peaks.platform) * scale, 3),
            "platform_cpu_s_implied": round(peaks.platform_cpu_s * scale, 1),
            # The fixed costs (start-up, imports, a Dagster run per job) are scaled too.
            "method": "linear in accounts from the measured tick, fixed costs included: an "
            "upper bound, not a run",
        },
    )
    return params


def measure_backfill(accounts: int, days: int, tmp: Path) -> None:
    from daily_profit.config import get_settings

    year_start = TICK_DAY - dt.timedelta(days=days)
    last = TICK_DAY - dt.timedelta(days=1)
    first_sim_day = TICK_DAY - dt.timedelta(days=SIM_DAYS)
    folder = tmp / "backfill"
    (folder / "sandbox").mkdir(parents=True)
    with (
        scratch_postgres_database(prefix="dp_bench_backfill") as url,
        scratch_postgres_database(prefix="dp_bench_dagster") as dagster_url,
    ):
        setup_started = time.perf_counter()
        # No ingestion here: the API is never called (an address nothing listens on), and
        # the daily partitions run up to yesterday as against the real API.
        env = platform_env(folder, url, dagster_url, "http://127.0.0.1:9/", year_start)
        os.environ.update(env)
        get_settings.cache_clear()
        _setup_database(url)
        log(f"backfill history: {accounts:,} accounts x {days} days, every raw table ...")
        raw_rows = land_history(
            url,
            history_frames(accounts, first_sim_day),
            first_sim_day=first_sim_day,
            year_start=year_start,
            lookback_start=year_start,
            all_history=True,
        )
        report(
            "features_backfill_20k_setup",
            time.perf_counter() - setup_started,
            "s",
            params={"accounts": accounts, "raw_rows": raw_rows, "untimed": True},
        )
        load_before = os.getloadavg()
        log(f"the features backfill {year_start} .. {last} ...")
        seconds, peaks, result = run_child(
            f"backfill:{year_start.isoformat()}:{last.isoformat()}", env, None
        )
        load_after = os.getloadavg()
    params = {
        "accounts": accounts,
        "days": days,
        "feature_rows": result["feature_rows"],
        "run_s": result["run_s"],
        "chunk_account_days": get_settings().features_chunk_account_days,
        "postgres_peak_rss_gb_summed": _gb(peaks.postgres),
        "platform_cpu_s": round(peaks.platform_cpu_s, 1),
        "rss_samples": peaks.samples,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }
    report("features_backfill_20k", seconds, "s", params={**params, "floor_s": BACKFILL_FLOOR_S})
    report(
        "features_backfill_20k_peak_rss_gb",
        _gb(peaks.platform),
        "GB",
        params={**params, "floor_gb": BACKFILL_FLOOR_GB},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 accounts, 60 days")
    parser.add_argument("--accounts", type=int, help="accounts of the nightly tick")
    parser.add_argument("--history-days", type=int, help="days of history before the tick")
    parser.add_argument("--backfill-accounts", type=int, help="accounts of the backfill")
    parser.add_argument("--only", choices=["nightly", "backfill"])
    parser.add_argument(
        "--all-history", action="store_true", help="land every raw table for the whole year"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, *dates = args.child.split(":")
        result = child_nightly() if mode == "nightly" else child_backfill(*dates)
        print(json.dumps(result), flush=True)
        return 0
    accounts = args.accounts or (5_000 if args.quick else 100_000)
    days = args.history_days or (60 if args.quick else 365)
    backfill_accounts = args.backfill_accounts or (2_000 if args.quick else 20_000)
    with tempfile.TemporaryDirectory(prefix="dp_nightly_") as tmp:
        if args.only in (None, "nightly"):
            measure_nightly(accounts, days, args.all_history, Path(tmp))
        if args.only in (None, "backfill"):
            measure_backfill(backfill_accounts, days, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
