"""Command line: the main job, and small helpers the README names.

``daily-profit main`` runs the platform end to end on the configured (by default embedded)
setup: the sandbox, the warehouse migrations, then the asset graph through Dagster against the
local instance in ``.dagster_home/``, so everything it materialised shows in ``./dp ui``. It
lists no steps of its own: it runs the definitions' history backfill (``HISTORY_BACKFILL``,
daily_profit/defs/operations/automation.py) over every day but the last, then what the
automation conditions request at the nightly tick after the last day
(daily_profit/operations/nightly.py).

Where its time went (300 accounts x 120 days, 2 cores): one Dagster run per raw day cost ~5 s
of run bookkeeping on the SQLite instance (creating the run, its planned events, step events)
for ~1 s of fetching and landing. The raw layer is therefore one range run of ``raw_daily``
(the raw assets' single-run backfill policy: each day fetched, audited and published on its
own, with its own check results), like features, predictions and outcomes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from daily_profit.config import PROJECT_ROOT, get_settings

if TYPE_CHECKING:
    from daily_profit.warehouse.io import Warehouse

LOCAL_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"
# Every event still goes to the instance (and the UI); the terminal gets only what the main job
# says itself (a failed step is reported with its message and run id).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# Third-party loggers kept off the console; the instance's `python_logs` (dagster.yaml) records
# them with the run's events.
THIRD_PARTY_LOGGERS = ("mlflow", "alembic", "huey", "optuna", "dagster")

RawRuns = Literal["range", "per-day"]

console = Console(highlight=False, soft_wrap=True)


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
    console.print(message, markup=False)


def quiet_console() -> None:
    """Keep third-party chatter (MLflow's INFO lines and download bars, alembic, Dagster's own
    Python logger) off the terminal. Their log records still reach the handlers Dagster
    attaches during a run (``python_logs`` in dagster.yaml), so they are kept with the run's
    events in the instance; what they print is kept in the main job's log file."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = False


@contextmanager
def third_party_output_to(path: Path) -> Iterator[None]:
    """What libraries print on stderr while the job runs (MLflow's notices, which it writes to
    stderr whatever its logging configuration, download bars, warnings) goes to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log, contextlib.redirect_stderr(log):
        yield


def _days(n_days: int | None) -> list[dt.date]:
    from daily_profit.defs.partitions import daily_partitions

    keys = daily_partitions.get_partition_keys()
    if n_days is not None:
        keys = keys[:n_days]
    return [dt.date.fromisoformat(k) for k in keys]


@dataclass(frozen=True)
class FailedRawDay:
    """A raw daily partition of the main job's range that holds no published rows."""

    table: str
    day: dt.date
    # The last recorded attempt's outcome, or None when no attempt was recorded (the run
    # stopped before that day).
    outcome: str | None
    failed_checks: str

    def describe(self) -> str:
        if self.outcome is None:
            return f"{self.table} {self.day.isoformat()}: no attempt recorded"
        checks = f", failed checks: {self.failed_checks}" if self.failed_checks else ""
        return f"{self.table} {self.day.isoformat()}: {self.outcome}{checks}"


def failed_raw_days(store: Warehouse, days: Sequence[dt.date]) -> list[FailedRawDay]:
    """Raw daily partitions in ``days`` with no publication, with their last audit outcome.

    Read from the warehouse, not from the run's events: what downstream skips is exactly what
    the warehouse has not published."""
    from daily_profit.ingestion.sources import DAILY_API_SOURCES

    if not days:
        return []
    start, end = min(days), max(days)
    tables = [s.table for s in DAILY_API_SOURCES]
    published = store.published_days(tables, start, end)
    audit = store.read_publication_audit(start=start, end=end)
    last_attempt: dict[tuple[str, dt.date], dict[str, Any]] = {}
    for row in audit.iter_rows(named=True):  # oldest first: the last one wins
        last_attempt[(row["table_name"], row["partition_date"])] = row
    failed: list[FailedRawDay] = []
    for table in tables:
        for day in sorted(days):
            if day in published.get(table, set()):
                continue
            attempt = last_attempt.get((table, day))
            failed.append(
                FailedRawDay(
                    table=table,
                    day=day,
                    outcome=None if attempt is None else attempt["outcome"],
                    failed_checks="" if attempt is None else attempt["failed_checks"] or "",
                )
            )
    return failed


class MainJobProgress:
    """The main job's steps on the terminal: one line per finished step, a live bar meanwhile
    (days landed for the raw layer, elapsed time for the others). On a terminal that is not
    interactive (CI, a pipe) only the step lines are printed."""

    def __init__(self) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            # stderr belongs to the job's log file (third_party_output_to), not the terminal.
            redirect_stderr=False,
        )

    def __enter__(self) -> MainJobProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[_Step]:
        task = self._progress.add_task(description, total=total)
        started = time.perf_counter()
        step = _Step(self._progress, task)
        try:
            yield step
        finally:
            step.stop_polling()
            self._progress.remove_task(task)
            if step.line is not None:
                _say(f"{step.line} [{time.perf_counter() - started:.0f}s]")


class _Step:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.line: str | None = None

    def advance(self, completed: int) -> None:
        self._progress.update(self._task, completed=completed)

    def poll(self, count: Callable[[], int], every_s: float = 1.0) -> None:
        """Follow a run that executes in this thread: ``count`` is read in a background thread."""

        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    self.advance(count())
                except Exception:  # a progress read must never fail the job
                    continue

        self._poller = threading.Thread(target=loop, name="main-job-progress", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)

    def done(self, line: str) -> None:
        self.line = line


def run_main(n_days: int | None, raw_runs: RawRuns = "range") -> int:
    """The history backfill of the definitions over every day but the last, then what the
    nightly tick of the last day requests (daily_profit/defs/operations/automation.py)."""
    quiet_console()
    started = time.perf_counter()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sandbox_url: str | None = None
    problems: list[str] = []

    log_path = settings.data_dir / "logs" / "main_job.log"
    with third_party_output_to(log_path), MainJobProgress() as progress:
        if settings.uses_sandbox:
            with progress.step("starting the sandbox Risk API") as step:
                from daily_profit.sandbox.launcher import ensure_sandbox

                sandbox_url = ensure_sandbox(settings)
                step.done(
                    f"sandbox: {settings.sandbox_accounts} accounts x {settings.sandbox_days} "
                    f"days from {settings.start_date} (seed {settings.sandbox_seed}), serving "
                    f"the Risk API at {sandbox_url}"
                )

        # After the sandbox started: its clock, which a new sandbox sets, ends the partitions.
        days = _days(n_days)
        if len(days) < 2:
            _say("the main job needs at least two trading days: a history and a last day")
            return 2
        history, last_day = days[:-1], days[-1]

        with progress.step("warehouse migrations") as step:
            from daily_profit.warehouse.migrate import upgrade

            upgrade(settings.resolved_warehouse_url)
            step.done(
                f"warehouse: migrations applied to {_safe_url(settings.resolved_warehouse_url)}"
            )

        with progress.step("loading the asset graph"):
            from daily_profit.definitions import defs
            from daily_profit.defs.jobs import train_job
            from daily_profit.defs.operations.automation import HISTORY_BACKFILL
        from daily_profit.warehouse.io import Warehouse

        store = Warehouse(settings.resolved_warehouse_url)
        model = None
        with local_instance() as instance:
            _say(f"history backfill, {history[0]} .. {history[-1]}:")
            for stage in HISTORY_BACKFILL:
                result = _run_history_stage(
                    defs, instance, store, stage, history, progress, raw_runs
                )
                if stage.job_name == train_job.name:
                    model = result
                elif result is not None:
                    _note_failure(result, stage.label, problems)
            _run_nightly_tick(defs, instance, last_day, progress, problems)
        model_summary = _model_summary(model)

    failed_days = failed_raw_days(store, days)
    # The latest day with predictions (the last day, unless a failed raw day or the want of a
    # champion held its predictions back) and its desk report.
    desk_day = _latest_predicted_day(store, days)
    _print_raw_summary(store, days)
    _print_feature_summary(store, days)
    _say(model_summary)
    if desk_day is None:
        _say("\nno predictions were written: no desk report")
    else:
        _print_desk_report(desk_day)
    store.dispose()
    if failed_days:
        _say(
            f"\n{len(failed_days)} raw day(s) failed and were not published; every later layer "
            "skipped the days that need them (nothing was trained or predicted on them):"
        )
        for failed in failed_days:
            _say(f"  {failed.describe()}")
    if problems:
        _say("\nfailed steps: " + "; ".join(problems))
    _say(
        f"\ndone in {time.perf_counter() - started:.0f}s. Open the UI on what landed: ./dp ui "
        f"(libraries' own output: {log_path})"
    )
    if sandbox_url is not None:
        _say(
            f"The sandbox Risk API keeps running at {sandbox_url} for the UI's runs; "
            "stop it with: ./dp sandbox --stop"
        )
    return 1 if failed_days or problems else 0


def _run_history_stage(defs, instance, store: Warehouse, stage, days, progress, raw_runs):
    """One job of the history backfill over ``days``; its result (None for raw days landed
    one run per day). The raw layer shows its days landed, the model its promotion."""
    from daily_profit.defs.jobs import raw_daily_job, train_job

    if stage.job_name == raw_daily_job.name:
        return _land_raw_days(defs, instance, store, days, progress, raw_runs)
    if defs.resolve_job_def(stage.job_name).partitions_def is None:
        with progress.step(stage.label) as step:
            result = _run(defs, stage.job_name, instance)
            status = _model_status(result) if stage.job_name == train_job.name else _status(result)
            step.done(f"{stage.label}: {status}")
        return result
    with progress.step(f"{stage.label} ({len(days)} days)") as step:
        result = _range_run(defs, stage.job_name, instance, days)
        step.done(f"{stage.label} ({len(days)} days, one run): {_status(result)}")
    return result


def _run_nightly_tick(defs, instance, day: dt.date, progress, problems: list[str]) -> None:
    """What the automation conditions request at the nightly tick after ``day``, run here."""
    from daily_profit.operations.nightly import (
        NightlyTickError,
        TickRun,
        nightly_tick_time,
        run_nightly_tick,
    )

    tick = nightly_tick_time(day)
    _say(
        f"nightly tick after {day} ({tick:%Y-%m-%d %H:%M} {tick.tzname()}): "
        "what the automation conditions request"
    )

    def report(run: TickRun) -> None:
        _say(f"  {run.describe()}: {_status(run.result)} [{run.seconds:.0f}s]")
        _note_failure(run.result, f"nightly tick, {run.describe()}", problems)

    with progress.step(f"nightly tick after {day}") as step:
        try:
            runs = run_nightly_tick(defs, instance, day, run_config=QUIET_RUN_CONFIG, on_run=report)
        except NightlyTickError as exc:
            problems.append(str(exc))
            step.done(f"nightly tick after {day}: {exc}")
            return
        step.done(
            f"nightly tick after {day}: {len(runs)} runs requested by the automation conditions"
        )


def _land_raw_days(defs, instance, store: Warehouse, days: list[dt.date], progress, raw_runs):
    """The raw daily layer of ``days``: one range run (the default) or one run per day (the
    former way, kept for the benchmark that compares them). Returns the range run's result."""
    from daily_profit.defs.jobs import raw_daily_job
    from daily_profit.ingestion.sources import DAILY_API_SOURCES

    if raw_runs == "per-day":
        job = defs.resolve_job_def(raw_daily_job.name)
        failed_runs = 0
        with progress.step("raw layer, one run per day", total=len(days)) as step:
            for i, day in enumerate(days, 1):
                result = job.execute_in_process(
                    instance=instance,
                    partition_key=day.isoformat(),
                    raise_on_error=False,
                    run_config=QUIET_RUN_CONFIG,
                )
                failed_runs += not result.success
                step.advance(i)
            step.done(f"raw layer: {len(days)} runs of one day ({failed_runs} failed)")
        return None

    tables = [s.table for s in DAILY_API_SOURCES]
    audit = store.read_publication_audit(start=days[0], end=days[-1])
    seen = int(audit["id"].max() or 0) if audit.height else 0

    def attempts() -> int:
        # Each (table, day) attempt is recorded as it is audited: count this run's.
        frame = store.read_publication_audit(start=days[0], end=days[-1])
        frame = frame.filter(frame["id"] > seen)
        return frame.filter(frame["table_name"].is_in(tables)).height

    total = len(days) * len(tables)
    with progress.step(f"raw layer: {len(tables)} sources x {len(days)} days", total=total) as step:
        step.poll(attempts)
        result = _range_run(defs, raw_daily_job.name, instance, days)
        step.done(
            f"raw layer ({len(tables)} sources x {len(days)} days, one run): {_status(result)}"
        )
    return result


def _run(defs, job: str, instance):
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
    )


def _range_run(defs, job: str, instance, days: list[dt.date]):
    """One run over the whole range of days, as a single-run backfill from the UI does."""
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    return defs.resolve_job_def(job).execute_in_process(
        instance=instance,
        raise_on_error=False,
        run_config=QUIET_RUN_CONFIG,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: days[0].isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: days[-1].isoformat(),
        },
    )


def _status(result) -> str:
    if result.success:
        return "ok"
    return f"FAILED: {_failure_message(result)} (see ./dp ui, run {result.run_id})"


def _model_status(result) -> str:
    # A model that no rule promotes fails its blocking promotion check: the step is marked
    # failed in the UI, yet the version is registered and predictions use the challenger.
    if result.success or _model_materialised(result):
        return "ok"
    return _status(result)


def _failure_message(result) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            message = error.message.strip() if error is not None else ""
            return message.splitlines()[0][:300] if message else event.step_key or "a step"
    return "the run failed"


def _note_failure(result, what: str, problems: list[str]) -> None:
    if not result.success:
        problems.append(f"{what} (run {result.run_id})")


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True)


def _print_raw_summary(store: Warehouse, days: list[dt.date]) -> None:
    from daily_profit.ingestion.sources import DAILY_API_SOURCES, METRICS_ALLTIME
    from daily_profit.warehouse.records import PLANS

    _say(f"\nwhat landed ({days[0]} .. {days[-1]}):")
    for table in [PLANS.table, METRICS_ALLTIME.table]:
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
        "labels_next_session", days[0], days[-1], columns=["label_status", "label_available"]
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


def _model_materialised(result) -> list:
    from daily_profit.defs.asset_keys import PROFIT_MODEL

    return [e for e in result.get_asset_materialization_events() if e.asset_key == PROFIT_MODEL]


_MEAN_KEPT = {
    "anchor": "expected P&L: the anchor (shrunk account mean + the P&L its open positions carry)",
    "stack": "expected P&L: the stack of the model and the baselines (it beat the anchor day by "
    "day on the calibration days)",
    "fallback": "expected P&L: exactly the {} baseline (the anchor did not beat it)",
}


def _model_summary(result) -> str:
    """Test metrics against the baselines, and the promotion decision with its reasons."""
    materialised = [] if result is None else _model_materialised(result)
    if not materialised:
        return "\nmodel: training failed, see ./dp ui"
    meta = materialised[0].materialization.metadata
    lines = [
        f"\nmodel version {meta['model_version'].value}: {meta['mlflow_run'].value}",
        f"test days {meta['test_days'].value}, rows {meta['test_rows'].value}:",
        meta["test_metrics"].value,
        "conditional coverage of the 90% interval on the test days (the accounts that traded, "
        "by weekday, regime and predicted-scale decile; cells of >= 300 rows):",
        meta["conditional_coverage"].value,
    ]
    if "mean_kept" in meta:
        lines.append(
            _MEAN_KEPT.get(meta["mean_kept"].value, "expected P&L: {}").format(
                meta["mean_fallback"].value
            )
        )
    from daily_profit.defs.model.assets import CHAMPION_PROMOTION

    for check in result.get_asset_check_evaluations():
        if check.check_name == CHAMPION_PROMOTION:
            m = check.metadata
            lines.append(
                f"promotion: {m['decision'].value} ({m['kind'].value}); champion is version "
                f"{m['champion_version'].value}"
            )
            if "challenger_reasons" in m:
                lines.append(
                    f"version {m['challenger_version'].value} could not show it matches the "
                    "best baseline:"
                )
                lines.append(m["challenger_reasons"].value)
            if "fallback_twin_version" in m:
                lines.append(
                    f"its fallback twin, version {m['fallback_twin_version'].value}: exactly the "
                    f"{m['fallback_twin_baseline'].value} baseline as the expected P&L, with "
                    f"version {m['challenger_version'].value}'s intervals and breach "
                    "probabilities"
                )
            elif "fallback_twin" in m:
                lines.append(f"its fallback twin: {m['fallback_twin'].value}")
            if "evidence" in m:
                lines.append(f"judged on {m['evidence'].value}")
            lines.append(m["reasons"].value)
            if not check.passed:
                lines.append(
                    "no version qualified as champion: the history's predictions use the "
                    "challenger, and the nightly automation predicts no new day until a version "
                    "is champion (daily_predictions waits for the blocking check "
                    "champion_registered; after promoting a version by hand in MLflow, execute "
                    "that check from profit_model's Checks tab in ./dp ui)"
                )
    return "\n".join(lines)


def _latest_predicted_day(store: Warehouse, days: list[dt.date]) -> dt.date | None:
    counts = store.partition_row_counts("daily_predictions", days[0], days[-1])
    return max((day for day, rows in counts.items() if rows), default=None)


def _print_desk_report(day: dt.date) -> None:
    """The desk report's top of the ranking and its firm-level summary, identities masked."""
    import polars as pl

    from daily_profit.desk.report import console_summary, read_tables, report_folder
    from daily_profit.privacy import mask_identities

    tables = read_tables(report_folder(get_settings().data_dir, day))
    if "ranking" not in tables:
        _say(f"\nno desk report for {day} (see the failed steps)")
        return
    top = (
        tables["ranking"]
        .head(10)
        .select(
            "rank",
            "account_id",
            pl.col("breach_probability").round(3),
            pl.col("p05").round(0),
            pl.col("expected_net_profit").round(0),
            pl.col("drivers").str.split("; ").list.first().alias("main_driver"),
        )
    )
    _say(f"\nthe ten accounts most at risk in the session after {day} (breach, then p05):")
    with pl.Config(tbl_rows=10, tbl_cols=10, tbl_width_chars=140, tbl_hide_dataframe_shape=True):
        _say(str(mask_identities(top)))
    _say("\n" + console_summary(day, tables))
    _say(f"(the tables with real account ids: {report_folder(get_settings().data_dir, day)})")


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
            # One local user needs one worker; MLflow's default four are restarted in a loop by
            # uvicorn's supervisor when a loaded 2-core machine delays their 5 s health pings.
            "--workers",
            "1",
        ],
        # MLflow's job runner (seven huey processes, for GenAI judges and scorers) serves
        # nothing the platform logs; it stays off unless asked for.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ},
    )


def run_health_command() -> int:
    from daily_profit.operations.health import exit_status, run_health

    quiet_console()
    results = run_health()
    for result in results:
        print(result.line(), flush=True)
    return exit_status(results)


def run_worker(queues: list[str] | None, concurrency: int, name: str | None) -> int:
    """A Celery worker for dagster-celery's steps, built from the settings. It needs the
    project (the code location is imported per step), the same DAILY_PROFIT_* settings as the
    daemon and, for the instance the steps report to, DAGSTER_HOME and DAGSTER_PG_*."""
    from daily_profit.defs.executor import (
        DEFAULT_QUEUE,
        RISK_API_QUEUE,
        celery_app,
        worker_argv,
    )

    app = celery_app()
    app.worker_main(worker_argv(queues or [DEFAULT_QUEUE, RISK_API_QUEUE], concurrency, name))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daily-profit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    main_cmd = sub.add_parser("main", help="run the platform end to end on the configuration")
    main_cmd.add_argument("--days", type=int, default=None, help="only the first N trading days")
    main_cmd.add_argument(
        "--raw-runs",
        choices=["range", "per-day"],
        default="range",
        help="the history's raw layer as one range run (default) or one run per day (the "
        "former way, for benchmarks/main_job.py)",
    )
    ui = sub.add_parser("mlflow-ui", help="open the MLflow UI on the local tracking store")
    ui.add_argument("--port", type=int, default=5000)
    sub.add_parser(
        "health", help="one line per part of the platform; exit status 1 when any part fails"
    )
    worker = sub.add_parser(
        "worker",
        help="serve the steps of runs on this host as a Celery worker (broker: "
        "DAILY_PROFIT_CELERY_BROKER_URL)",
    )
    worker.add_argument(
        "--queue",
        action="append",
        default=None,
        help="a queue to take steps from, repeatable (default: dagster and risk_api)",
    )
    worker.add_argument("--concurrency", type=int, default=1, help="steps at once (processes)")
    worker.add_argument("--name", default=None, help="worker name (default celery@<host>)")
    args = parser.parse_args(argv)
    if args.command == "worker":
        return run_worker(args.queue, args.concurrency, args.name)
    if args.command == "main":
        return run_main(args.days, raw_runs=args.raw_runs)
    if args.command == "mlflow-ui":
        return run_mlflow_ui(args.port)
    if args.command == "health":
        return run_health_command()
    return 2


if __name__ == "__main__":
    sys.exit(main())
