"""The run order lives here: when each layer runs every night, declared on the assets, and the
history backfill that comes before the first night.

The raw layer requests, on the nightly tick (after the API's rollover, in the broker's zone),
the day that just closed and the trailing restatement window. Each raw day publishes its
checksum as its data version. Every later layer follows its inputs: a day is requested when one
of its inputs' data versions changed (a restated day whose data did not change is left alone),
once no input is missing or still running and every blocking check upstream passed; a recent
day still missing at the nightly tick (its run failed, for a cause that may have cleared) is
tried again then, under the same guards. The desk's account performance summary (one view
over the whole history) is refreshed once the night's staging has landed. The raw layer's guard
inside each asset (``daily_profit/defs/guards.py``) adds what Dagster's
``all_deps_blocking_checks_passed`` does not: with a lookback, *every* parent day must have
passed, not any one of them.

The history before the first night is backfilled by the jobs of ``HISTORY_BACKFILL``, in the
graph's order; from then on the nightly tick carries each new day. The main job (``./dp main``)
does exactly that: the backfill over every day but the last, then what the nightly tick of the
last day requests (``daily_profit/operations/nightly.py``).
"""

import datetime as dt
from dataclasses import dataclass

import dagster as dg

from daily_profit.config import get_settings
from daily_profit.defs import jobs
from daily_profit.defs.asset_keys import (
    ACCOUNT_FEATURES_DAILY,
    ACCOUNT_PERFORMANCE_SUMMARY,
    DAILY_PREDICTIONS,
    DESK_REPORT,
    FEATURE_DRIFT,
    LABELS_NEXT_SESSION,
    MODEL_PERFORMANCE,
    PREDICTION_OUTCOMES,
    PROFIT_MODEL,
    RAW_METRICS_ALLTIME,
    RAW_METRICS_DAILY,
    RAW_METRICS_HOURLY,
    RAW_PLANS,
    RAW_REGIMES_DAILY,
    RAW_TRADES_CLOSED,
    RAW_TRADES_OPEN,
    STG_ACCOUNTS_DAILY,
)

AUTOMATION_SENSOR = "daily_profit_automation"


def nightly_cron() -> str:
    at = get_settings().nightly_run_time
    return f"{at.minute} {at.hour} * * *"


def _tick() -> dg.AutomationCondition:
    settings = get_settings()
    return dg.AutomationCondition.cron_tick_passed(
        nightly_cron(), settings.broker_timezone
    ).since_last_handled()


def _window(extra_days: int = 0) -> dg.AutomationCondition:
    # The new day plus the restatement window (plus, downstream, the days whose lookback or
    # target span reaches into it).
    days = get_settings().restatement_days + 1 + extra_days
    return dg.AutomationCondition.in_latest_time_window(dt.timedelta(days=days))


def nightly_raw_days() -> dg.AutomationCondition:
    """The new day and the restatement window, once per nightly tick."""
    return (_window() & _tick() & ~dg.AutomationCondition.in_progress()).with_label(
        "nightly: the new day and the restatement window"
    )


def nightly_snapshot() -> dg.AutomationCondition:
    """The account master and the plans export: refreshed once per nightly tick."""
    return (_tick() & ~dg.AutomationCondition.in_progress()).with_label("nightly refresh")


def follows_inputs(extra_days: int = 0) -> dg.AutomationCondition:
    """Recompute a recent day when an input's data changed, or catch up a recent day that is
    still missing once per nightly tick, once its inputs are all there, settled and passed
    their blocking checks.

    A day held back by a failed check upstream waits on its own (the change stays pending
    until the day is requested). The catch-up is for a day that was requested and whose run
    failed for a cause that clears without new data: a database or network hiccup that
    outlasted the run's retries, a worker lost mid-step. Once per tick, so a day that keeps
    failing is tried once a night while it stays in the window, not on every evaluation."""
    changed = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.data_version_changed()
    ).since_last_handled()
    # Requested before and not materialised since: its run failed (or never started). A day
    # never requested (the history's monitoring days) is left to its inputs' changes.
    failed = dg.AutomationCondition.newly_requested().since(dg.AutomationCondition.newly_updated())
    catch_up = dg.AutomationCondition.missing() & failed & _tick()
    return (
        _window(extra_days)
        & (
            changed.with_label("an input's data changed")
            | catch_up.with_label("still missing at the nightly tick")
        )
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("follows its inputs")


def refreshed_after_staging() -> dg.AutomationCondition:
    """An unpartitioned view over the daily layers (the desk's account performance summary):
    refreshed once a night's staging has landed and nothing it reads is still running."""
    staged = dg.AutomationCondition.any_deps_updated().allow(
        dg.AssetSelection.assets(STG_ACCOUNTS_DAILY)
    )
    return (
        staged.since_last_handled().with_label("a day was staged")
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("refreshed after staging")


def sensor_status() -> dg.DefaultSensorStatus:
    """Every sensor of the project starts RUNNING on a fresh instance unless the settings turn
    automation off (DAILY_PROFIT_AUTOMATION_ENABLED=false)."""
    running = get_settings().automation_enabled
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


def schedule_status() -> dg.DefaultScheduleStatus:
    """The same switch for the schedules."""
    running = get_settings().automation_enabled
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """The project's own automation sensor: RUNNING on a fresh instance unless switched off
    (DAILY_PROFIT_AUTOMATION_ENABLED=false)."""
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=sensor_status(),
        minimum_interval_seconds=30,
        description="Runs the graph every night: the raw layer on the nightly tick, every later "
        "layer when its inputs' data changed and passed their blocking checks.",
    )


# The nightly run order: each asset and when it runs. Extra days widen the window for layers
# whose day D changes when a later day lands (labels and outcomes read D's target span).
RAW_DAILY: tuple[dg.AssetKey, ...] = (
    RAW_METRICS_DAILY,
    RAW_METRICS_HOURLY,
    RAW_TRADES_CLOSED,
    RAW_TRADES_OPEN,
    RAW_REGIMES_DAILY,
)
SNAPSHOTS: tuple[dg.AssetKey, ...] = (RAW_PLANS, RAW_METRICS_ALLTIME)


def _label_settle_days() -> int:
    """How many days after D a label of D may still change: its longest target span on the
    trading calendar and the grace days that tell an idle day from a gone account."""
    from daily_profit.features.labels import LABEL_GRACE_DAYS
    from daily_profit.trading_calendar import trading_calendar

    return trading_calendar().longest_span_days() + LABEL_GRACE_DAYS


FOLLOWERS: dict[dg.AssetKey, int] = {
    STG_ACCOUNTS_DAILY: 0,
    ACCOUNT_FEATURES_DAILY: 0,
    LABELS_NEXT_SESSION: _label_settle_days(),
    DAILY_PREDICTIONS: 0,
    PREDICTION_OUTCOMES: _label_settle_days(),
    FEATURE_DRIFT: 0,
    MODEL_PERFORMANCE: _label_settle_days(),
    DESK_REPORT: 0,
}


def condition_for(key: dg.AssetKey) -> dg.AutomationCondition | None:
    if key == ACCOUNT_PERFORMANCE_SUMMARY:
        return refreshed_after_staging()
    if key in RAW_DAILY:
        return nightly_raw_days()
    if key in SNAPSHOTS:
        return nightly_snapshot()
    if key in FOLLOWERS:
        return follows_inputs(FOLLOWERS[key])
    return None


# How stale each layer may get before the UI flags it: a nightly layer warns after a missed
# night and fails after two. (A per-day deadline, not this, guards the predictions of a day:
# a freshness policy reads a restated old day as fresh.)
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=dt.timedelta(hours=26), fail_window=dt.timedelta(hours=50)
)
WEEKLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=dt.timedelta(days=8), fail_window=dt.timedelta(days=15)
)


def freshness_for(key: dg.AssetKey) -> dg.FreshnessPolicy | None:
    if (
        key in RAW_DAILY
        or key in SNAPSHOTS
        or key in FOLLOWERS
        or key == ACCOUNT_PERFORMANCE_SUMMARY
    ):
        return NIGHTLY_FRESHNESS
    if key == PROFIT_MODEL:
        return WEEKLY_FRESHNESS
    return None


def with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The asset with its automation condition and freshness from the run order above."""
    condition, freshness = condition_for(spec.key), freshness_for(spec.key)
    if condition is not None:
        spec = spec.replace_attributes(automation_condition=condition)
    if freshness is not None:
        spec = spec.replace_attributes(freshness_policy=freshness)
    return spec


@dataclass(frozen=True)
class HistoryStage:
    """One job of the history backfill: a partitioned job runs over the whole history in one
    run (its assets' single-run backfill policy), an unpartitioned one once."""

    job_name: str
    # How the main job names the stage on the console.
    label: str


# The history backfill, upstream first (a test checks the order against the asset graph). The
# profit model is trained here on the history; afterwards the weekly schedule and the retrain
# sensor retrain it. Drift, model performance and the desk report need only the latest days:
# the nightly tick requests them for the days in its window.
HISTORY_BACKFILL: tuple[HistoryStage, ...] = (
    HistoryStage(jobs.raw_reference_job.name, "raw reference (plans, account master)"),
    HistoryStage(jobs.raw_daily_job.name, "raw layer"),
    HistoryStage(jobs.features_job.name, "staging, features, labels"),
    HistoryStage(jobs.desk_summary_job.name, "desk account performance summary"),
    HistoryStage(jobs.train_job.name, "profit model (train, log to MLflow, promote)"),
    HistoryStage(jobs.predictions_job.name, "daily predictions"),
    HistoryStage(jobs.outcomes_job.name, "prediction outcomes"),
)
