"""Retraining: weekly on a schedule, and sooner when drift or decay says so.

The retrain sensor reads the latest ``feature_drift`` and ``model_performance`` records from the
instance and requests the ``train_profit_model`` job (``daily_profit.monitoring.retrain`` holds
the decision: drift over several days or decay, a cooldown, never twice on the same evidence);
the run's tags say why. Either way ``profit_model``'s promotion check still decides whether the
new version becomes champion. Both start RUNNING on a fresh instance only when
``DAILY_PROFIT_AUTOMATION_ENABLED`` allows.
"""

import datetime as dt

import dagster as dg

from daily_profit.config import get_settings
from daily_profit.defs.jobs import train_job
from daily_profit.defs.model.assets import (
    DECAY_REASONS,
    DECAYED,
    MODEL_PERFORMANCE,
    PERFORMANCE_CHAMPION,
)
from daily_profit.defs.monitoring.assets import (
    CHAMPION_VERSION,
    FEATURE_DRIFT,
    MEASURED,
    STATUS,
    WEIGHTED_EXCESS_PSI,
)
from daily_profit.defs.operations.automation import schedule_status, sensor_status
from daily_profit.defs.partitions import partition_day
from daily_profit.monitoring.retrain import (
    TAG_REASON,
    DriftDay,
    PerformanceDay,
    RetrainCursor,
    RetrainPolicy,
    decide,
)

RETRAIN_SENSOR = "retrain_on_drift_or_decay"
WEEKLY_RETRAIN = "weekly_retrain"
# Enough records to find the latest few days even after re-runs of old days.
RECENT_EVENTS = 100
SENSOR_INTERVAL_S = 600


def _records(instance: dg.DagsterInstance, key: dg.AssetKey) -> list[tuple[int, str, dict]]:
    """(storage id, partition, metadata values) of the asset's recent partitioned records."""
    out = []
    for record in instance.fetch_materializations(key, limit=RECENT_EVENTS).records:
        event = record.asset_materialization
        if event is None or event.partition is None:
            continue
        values = {k: v.value for k, v in event.metadata.items()}
        out.append((record.storage_id, event.partition, values))
    return out


def drift_days(instance: dg.DagsterInstance) -> list[DriftDay]:
    """The measured days of feature_drift (skipped days, e.g. before a champion, left out)."""
    return [
        DriftDay(
            day=partition_day(partition),
            champion_version=str(meta[CHAMPION_VERSION]),
            weighted_excess_psi=float(meta[WEIGHTED_EXCESS_PSI]),
            event_id=storage_id,
        )
        for storage_id, partition, meta in _records(instance, FEATURE_DRIFT)
        if meta.get(STATUS) == MEASURED and WEIGHTED_EXCESS_PSI in meta
    ]


def performance_days(instance: dg.DagsterInstance) -> list[PerformanceDay]:
    """The days of model_performance that judged decay."""
    return [
        PerformanceDay(
            day=partition_day(partition),
            champion_version=str(meta.get(PERFORMANCE_CHAMPION, "")),
            decayed=bool(meta[DECAYED]),
            reasons=str(meta.get(DECAY_REASONS, "")).replace("\n", " "),
            event_id=storage_id,
        )
        for storage_id, partition, meta in _records(instance, MODEL_PERFORMANCE)
        if DECAYED in meta
    ]


@dg.sensor(
    name=RETRAIN_SENSOR,
    job=train_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=sensor_status(),
    description="Requests profit_model when the features have drifted from the champion's "
    "training data over several days (mean importance-weighted excess PSI of the latest "
    "DAILY_PROFIT_RETRAIN_DRIFT_DAYS days above DAILY_PROFIT_DRIFT_WEIGHTED_PSI_THRESHOLD) or "
    "the champion has decayed (model_performance), at most once per "
    "DAILY_PROFIT_RETRAIN_COOLDOWN_DAYS; the run's tags say why. Promotion still decides.",
)
def retrain_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    cursor = RetrainCursor.from_json(context.cursor)
    decision = decide(
        drift_days(context.instance),
        performance_days(context.instance),
        cursor,
        dt.datetime.now(dt.UTC),
        RetrainPolicy.from_settings(),
    )
    if not decision.request or decision.cursor is None:
        return dg.SkipReason(decision.why)
    context.update_cursor(decision.cursor.to_json())
    context.log.info(f"requesting a retrain: {decision.why}")
    return dg.RunRequest(tags=decision.tags)


def weekly_retrain_schedule() -> dg.ScheduleDefinition:
    settings = get_settings()
    return dg.ScheduleDefinition(
        name=WEEKLY_RETRAIN,
        job=train_job,
        cron_schedule=settings.retrain_cron,
        execution_timezone=settings.retrain_timezone or settings.broker_timezone,
        default_status=schedule_status(),
        tags={TAG_REASON: "weekly schedule"},
        description="Retrains profit_model every week on the latest data "
        "(DAILY_PROFIT_RETRAIN_CRON in DAILY_PROFIT_RETRAIN_TIMEZONE); promotion decides.",
    )


weekly_retrain = weekly_retrain_schedule()

retrain_schedules = [weekly_retrain]
retrain_sensors = [retrain_sensor]
