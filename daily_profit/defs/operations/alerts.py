"""Someone is told: run failures, failed blocking checks, missed deadlines, drift and decay.

The alert sensor reads the instance's event log since its last tick (check results, run
failures, run successes) and sends one alert per incident through the configured webhook and
email (``daily_profit.operations.alerting``). Its cursor keeps the event-log positions and the
open incidents, so a retry, the next step or the next tick of the same failure says nothing new;
a success of the same key closes the incident. A run failure that Dagster will retry is not an
incident yet: only the last attempt's failure is.

The deadline sensor checks, once a day at the deadline in the broker's zone, that the
predictions of the session that closed overnight exist and passed their checks; it records the
verdict as the day's ``predictions_by_deadline`` check result (the UI shows it, the alert sensor
sends it). A freshness policy alone would read a restated old day as fresh.
"""

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.event_api import EventLogCursor

from daily_profit.config import get_settings
from daily_profit.defs.asset_keys import DAILY_PREDICTIONS
from daily_profit.defs.metadata import targeting_latest
from daily_profit.defs.model.assets import MODEL_NOT_DECAYED, PREDICTION_CHECKS
from daily_profit.defs.monitoring.assets import FEATURES_NOT_DRIFTED
from daily_profit.defs.operations.automation import sensor_status
from daily_profit.defs.partitions import daily_partitions, days_in_window
from daily_profit.ingestion.audit import DAY_PUBLISHED
from daily_profit.operations.alerting import (
    INCIDENT_MEMORY,
    Alert,
    AlertKind,
    IncidentLedger,
    Notifier,
    dumps_cursor,
    loads_cursor,
    merged,
    run_url,
)
from daily_profit.trading_calendar import TradingCalendar

ALERT_SENSOR = "daily_profit_alerts"
DEADLINE_SENSOR = "daily_profit_predictions_deadline"
DEADLINE_CHECK = "predictions_by_deadline"
WILL_RETRY_TAG = "dagster/will_retry"

# Warnings that still page someone: a day kept on old rows, a missed deadline, drift, decay.
ALERTING_WARNINGS = {
    DAY_PUBLISHED: AlertKind.CHECK_FAILED,
    DEADLINE_CHECK: AlertKind.DEADLINE_MISSED,
    FEATURES_NOT_DRIFTED: AlertKind.DRIFT,
    MODEL_NOT_DECAYED: AlertKind.MODEL_DECAY,
}
BATCH = 500


def _scalar_details(metadata: dict) -> dict[str, str | int | float | bool]:
    out: dict[str, str | int | float | bool] = {}
    for key, value in metadata.items():
        raw = getattr(value, "value", value)
        if isinstance(raw, bool | int | float) or (isinstance(raw, str) and len(raw) <= 200):
            out[key] = raw
        if len(out) >= 8:
            break
    return out


@dataclass(frozen=True)
class Signal:
    """An event that opens an incident (``alert``) or closes one (``alert`` None, ``key``)."""

    key: str
    alert: Alert | None


def check_signal(
    evaluation: dg.AssetCheckEvaluation, run_id: str, ui: str, run_day: str | None = None
) -> Signal | None:
    """A check result as an incident: failed ERROR checks and the alerting warnings.
    ``run_day`` is the run's partition, for a check result that names none itself."""
    name = evaluation.check_name
    asset = evaluation.asset_key.to_user_string()
    kind = ALERTING_WARNINGS.get(name, AlertKind.CHECK_FAILED)
    pages = evaluation.severity == dg.AssetCheckSeverity.ERROR or name in ALERTING_WARNINGS
    alert = Alert(
        kind=kind,
        what=evaluation.description or f"check {name} failed",
        asset=asset,
        day=evaluation.partition or run_day,
        check=name,
        run_id=run_id or None,
        run_url=run_url(ui, run_id) if run_id else None,
        details=_scalar_details(dict(evaluation.metadata)),
    )
    if evaluation.passed:
        return Signal(alert.incident_key, None)
    return Signal(alert.incident_key, alert) if pages else None


def _run_day(run: dg.DagsterRun) -> str | None:
    return run.tags.get("dagster/partition") or run.tags.get("dagster/asset_partition_range_start")


def run_signal(
    run: dg.DagsterRun, failed: bool, message: str, ui: str, *, failed_checks: bool = False
) -> Signal | None:
    """A run's end as an incident of its job (and partition): failures open, successes close.

    A run that failed because a blocking check failed is that check's incident, already
    alerted with a link to the run: not a second alert."""
    if failed and run.tags.get(WILL_RETRY_TAG) == "true":
        return None  # Dagster retries it: only the last attempt's failure is an incident
    if failed and failed_checks:
        return None
    partition = _run_day(run)
    alert = Alert(
        kind=AlertKind.RUN_FAILURE,
        what=message or "the run failed",
        asset=run.job_name,
        day=partition,
        run_id=run.run_id,
        run_url=run_url(ui, run.run_id),
    )
    return Signal(alert.incident_key, alert if failed else None)


def apply(ledger: IncidentLedger, signals: Iterable[Signal], now: dt.datetime) -> Iterator[Alert]:
    """The alerts to send: each opens an incident; later repeats and closed ones say nothing."""
    for signal in signals:
        if signal.alert is None:
            ledger.success(signal.key)
        elif ledger.failure(signal.key, now):
            yield signal.alert


def _status_changes(
    instance: dg.DagsterInstance, event_type: dg.DagsterEventType, after: str | int | None
) -> dg.EventRecordsResult:
    """The runs that ended with ``event_type`` since ``after``. Run status changes are the
    one cross-run query every event log answers, the run-sharded SQLite of a laptop's instance
    included (asset check evaluations are not indexed across runs there)."""
    # A cursor of the former sensor kept a storage id.
    cursor = EventLogCursor.from_storage_id(after).to_string() if isinstance(after, int) else after
    return instance.fetch_run_status_changes(event_type, limit=BATCH, cursor=cursor, ascending=True)


def _signals(
    instance: dg.DagsterInstance, positions: dict[str, str | int], ui: str
) -> Iterator[Signal]:
    """Each run that ended since the last tick: its check evaluations (a failed blocking check
    opens an incident, a passed one closes it), then the run itself."""
    for event_type in (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_SUCCESS):
        result = _status_changes(instance, event_type, positions.get(event_type.value))
        if result.records:
            positions[event_type.value] = result.cursor
        for record in result.records:
            entry = record.event_log_entry
            run = instance.get_run_by_id(entry.run_id) if entry.run_id else None
            if run is None:
                continue
            day = _run_day(run)
            # The run's check evaluations, read once: each is a signal, and a failed one of
            # severity ERROR tells the run's failure alert that a check stopped it.
            evaluations = [
                record.dagster_event.event_specific_data
                for record in instance.all_logs(
                    run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                )
                if record.dagster_event is not None
            ]
            for evaluation in evaluations:
                signal = check_signal(evaluation, run.run_id, ui, day)
                if signal is not None:
                    yield signal
            failed = event_type is dg.DagsterEventType.RUN_FAILURE
            signal = run_signal(
                run,
                failed,
                entry.message or "",
                ui,
                failed_checks=failed
                and any(
                    not e.passed and e.severity == dg.AssetCheckSeverity.ERROR for e in evaluations
                ),
            )
            if signal is not None:
                yield signal


def alert_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name=ALERT_SENSOR,
        default_status=sensor_status(),
        minimum_interval_seconds=30,
        description="Sends one alert per incident (run failure, failed blocking check, missed "
        "deadline, drift, model decay) to the webhook and email configured in the settings.",
    )
    def _alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        settings = get_settings()
        ledger, positions = loads_cursor(context.cursor)
        now = dt.datetime.now(dt.UTC)
        ledger.forget_before(now - INCIDENT_MEMORY)
        notifier = Notifier.from_settings(settings)
        signals = list(_signals(context.instance, positions, settings.dagster_ui_url))
        sent = 0
        for alert in merged(apply(ledger, signals, now)):
            if notifier.configured:
                outcome = notifier.send(alert)
                context.log.info(f"alert {alert.title}: {outcome}")
            else:
                context.log.warning(f"alert (no channel configured): {alert.title}")
            sent += 1
        context.update_cursor(dumps_cursor(ledger, **positions))
        return dg.SkipReason(
            f"{sent} new incident(s) alerted; {len(ledger.open)} open; {len(signals)} event(s) read"
        )

    return _alerts


# --- the predictions deadline ------------------------------------------------------------


def due_session(now: dt.datetime, calendar: TradingCalendar, zone: str, deadline: dt.time):
    """The session whose predictions are due by ``now`` (broker's zone), or None before the
    day's deadline or when the day after a session has no deadline of its own (a weekend)."""
    local = now.astimezone(ZoneInfo(zone))
    if local.time() < deadline:
        return None
    yesterday = local.date() - dt.timedelta(days=1)
    return yesterday if calendar.is_session(yesterday) else None


def operating_since(instance: dg.DagsterInstance) -> dt.datetime | None:
    """When the instance's first run was created: before it nothing ran here to meet a
    deadline. None when it never ran anything."""
    records = instance.get_run_records(limit=1, ascending=True)
    return records[0].create_timestamp if records else None


def deadline_verdict(
    instance: dg.DagsterInstance, day: dt.date, deadline_at: dt.datetime
) -> dg.AssetCheckEvaluation:
    """Did the day's predictions exist, with their checks passed, by the deadline?

    A day whose deadline passed before the instance first ran anything (a history backfilled
    on a new install, every day of the sandbox's past) was never due: it passes, saying so,
    rather than paging someone for each day of a year's backfill."""
    key = DAILY_PREDICTIONS
    since = operating_since(instance)
    if since is not None and deadline_at < since:
        return dg.AssetCheckEvaluation(
            asset_key=key,
            check_name=DEADLINE_CHECK,
            passed=True,
            partition=day.isoformat(),
            severity=dg.AssetCheckSeverity.WARN,
            description=f"backfilled: the deadline of {day.isoformat()} "
            f"({deadline_at.isoformat()}) passed before this instance first ran "
            f"({since.isoformat()}); nothing was due then",
            metadata={
                "deadline": deadline_at.isoformat(),
                "operating_since": since.isoformat(),
                "backfilled": True,
            },
        )
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
    ).records
    on_time = bool(records) and records[0].timestamp <= deadline_at.timestamp()
    failed_checks = []
    if records:
        check_keys = [dg.AssetCheckKey(key, name) for name in PREDICTION_CHECKS]
        for info in instance.event_log_storage.get_asset_check_partition_info(check_keys):
            if info.partition_key == day.isoformat() and info.latest_execution_status.value == (
                "FAILED"
            ):
                failed_checks.append(info.check_key.name)
    passed = on_time and not failed_checks
    if not records:
        what = f"no predictions for {day.isoformat()} by {deadline_at.isoformat()}"
    elif not on_time:
        what = f"predictions for {day.isoformat()} landed after {deadline_at.isoformat()}"
    elif failed_checks:
        what = f"predictions for {day.isoformat()} failed {', '.join(failed_checks)}"
    else:
        what = None
    return dg.AssetCheckEvaluation(
        asset_key=key,
        check_name=DEADLINE_CHECK,
        passed=passed,
        partition=day.isoformat(),
        severity=dg.AssetCheckSeverity.WARN,
        description=what,
        metadata={
            "deadline": deadline_at.isoformat(),
            "materialized_at": dt.datetime.fromtimestamp(records[0].timestamp, dt.UTC).isoformat()
            if records
            else "never",
            "failed_checks": json.dumps(failed_checks),
        },
    )


def deadline_sensor() -> dg.SensorDefinition:
    @dg.sensor(
        name=DEADLINE_SENSOR,
        default_status=sensor_status(),
        minimum_interval_seconds=120,
        description="At the predictions deadline (broker's zone), records whether the session "
        "that closed overnight has its predictions, checks passed, as predictions_by_deadline.",
    )
    def _deadline(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        settings = get_settings()
        calendar = TradingCalendar.from_settings(settings)
        now = dt.datetime.now(dt.UTC)
        day = due_session(now, calendar, settings.broker_timezone, settings.predictions_deadline)
        if day is None or context.cursor == day.isoformat():
            return dg.SkipReason("no predictions deadline due now")
        zone = ZoneInfo(settings.broker_timezone)
        deadline_at = dt.datetime.combine(
            day + dt.timedelta(days=1), settings.predictions_deadline, tzinfo=zone
        )
        verdict = deadline_verdict(context.instance, day, deadline_at)
        context.instance.report_runless_asset_event(targeting_latest(context.instance, verdict))
        context.update_cursor(day.isoformat())
        return dg.SkipReason(
            f"{day.isoformat()}: {'on time' if verdict.passed else verdict.description}"
        )

    return _deadline


@dg.asset_check(
    asset=DAILY_PREDICTIONS,
    name=DEADLINE_CHECK,
    partitions_def=daily_partitions,
    description="The predictions of each session exist and passed their checks by the deadline "
    "in the broker's zone (DAILY_PROFIT_PREDICTIONS_DEADLINE), recorded per day by the deadline "
    "sensor. Re-run for a day here, it says whether they were there by that day's deadline.",
)
def predictions_by_deadline(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    settings = get_settings()
    zone = ZoneInfo(settings.broker_timezone)
    calendar = TradingCalendar.from_settings(settings)
    verdicts = {
        day: deadline_verdict(
            context.instance,
            day,
            dt.datetime.combine(
                day + dt.timedelta(days=1), settings.predictions_deadline, tzinfo=zone
            ),
        )
        for day in days_in_window(context.partition_time_window)
        if calendar.is_session(day)
    }
    late = [d.isoformat() for d, v in verdicts.items() if not v.passed]
    return dg.AssetCheckResult(
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"sessions": len(verdicts), "late_sessions": json.dumps(late[:50])},
    )
