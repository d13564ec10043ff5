"""The retrain sensor against materialisations in a real instance: it asks once, with tags that
say why, respects its cooldown, never acts twice on the same evidence, and the schedule and
sensor stay off when the settings say so."""

import datetime as dt

import dagster as dg
import pytest

from daily_profit.defs.model.assets import DECAY_REASONS, DECAYED, MODEL_PERFORMANCE
from daily_profit.defs.monitoring.assets import (
    CHAMPION_VERSION,
    FEATURE_DRIFT,
    MEASURED,
    NO_CHAMPION,
    STATUS,
    WEIGHTED_EXCESS_PSI,
)
from daily_profit.defs.monitoring.retrain import (
    retrain_sensor,
    schedule_status,
    sensor_status,
    weekly_retrain,
    weekly_retrain_schedule,
)
from daily_profit.monitoring.retrain import (
    TAG_CHAMPION,
    TAG_DECAY_DAY,
    TAG_DETAIL,
    TAG_DRIFT_DAYS,
    TAG_DRIFT_PSI,
    TAG_REASON,
    RetrainCursor,
)

DAY = dt.date(2025, 2, 10)


def _drift(instance, day: dt.date, psi: float, champion: str = "1") -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=FEATURE_DRIFT,
            partition=day.isoformat(),
            metadata={STATUS: MEASURED, CHAMPION_VERSION: champion, WEIGHTED_EXCESS_PSI: psi},
        )
    )


def _performance(instance, day: dt.date, decayed: bool) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=MODEL_PERFORMANCE,
            partition=day.isoformat(),
            metadata={
                CHAMPION_VERSION: "1",
                DECAYED: int(decayed),
                DECAY_REASONS: dg.MetadataValue.md("- coverage of the 90% interval 70.0% outside"),
            },
        )
    )


def _tick(instance, cursor: str | None = None) -> tuple[object, str | None]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return retrain_sensor(context), context.cursor


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_drift_over_several_days_requests_once_then_cools_down(instance):
    # Two drifting days are not enough (3 are configured), one calm day among them neither.
    _drift(instance, DAY, 0.6)
    _drift(instance, DAY + dt.timedelta(days=1), 0.7)
    result, cursor = _tick(instance)
    assert isinstance(result, dg.SkipReason) and "fewer than 3 days" in result.skip_message
    _drift(instance, DAY + dt.timedelta(days=2), 0.5)

    request, cursor = _tick(instance)
    assert isinstance(request, dg.RunRequest) and request.job_name in (None, "train_profit_model")
    assert request.tags[TAG_REASON] == "drift"
    assert request.tags[TAG_DRIFT_DAYS] == "2025-02-10..2025-02-12"
    assert float(request.tags[TAG_DRIFT_PSI]) == pytest.approx(0.6)
    assert request.tags[TAG_CHAMPION] == "1" and "0.600 > 0.2" in request.tags[TAG_DETAIL]
    assert RetrainCursor.from_json(cursor).last_reason == "drift"

    # Within the cooldown it never asks again, whatever new evidence arrives.
    _drift(instance, DAY + dt.timedelta(days=3), 0.9)
    _performance(instance, DAY + dt.timedelta(days=3), decayed=True)
    again, same_cursor = _tick(instance, cursor)
    assert isinstance(again, dg.SkipReason) and "cooldown" in again.skip_message
    assert same_cursor == cursor


def test_after_the_cooldown_only_new_evidence_asks_again(instance):
    for i in range(3):
        _drift(instance, DAY + dt.timedelta(days=i), 0.5)
    _, cursor = _tick(instance)
    asked = RetrainCursor.from_json(cursor)
    four_days_ago = RetrainCursor(
        last_requested_at=asked.last_requested_at - dt.timedelta(days=4),
        evidence_event_id=asked.evidence_event_id,
        last_reason=asked.last_reason,
    ).to_json()
    stale, _ = _tick(instance, four_days_ago)
    assert isinstance(stale, dg.SkipReason) and "already acted on" in stale.skip_message
    _drift(instance, DAY + dt.timedelta(days=3), 0.4)
    fresh, _ = _tick(instance, four_days_ago)
    assert isinstance(fresh, dg.RunRequest) and fresh.tags[TAG_REASON] == "drift"


def test_a_new_champion_starts_its_drift_days_afresh(instance):
    _drift(instance, DAY, 0.9, champion="1")
    _drift(instance, DAY + dt.timedelta(days=1), 0.9, champion="1")
    _drift(instance, DAY + dt.timedelta(days=2), 0.9, champion="2")
    # A skipped day (no champion yet) is not a measurement.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=FEATURE_DRIFT,
            partition=(DAY + dt.timedelta(days=3)).isoformat(),
            metadata={STATUS: NO_CHAMPION},
        )
    )
    result, _ = _tick(instance)
    assert isinstance(result, dg.SkipReason) and "fewer than 3 days" in result.skip_message


def test_decay_requests_with_its_reason(instance):
    _performance(instance, DAY, decayed=False)
    quiet, _ = _tick(instance)
    assert isinstance(quiet, dg.SkipReason) and "not decayed" in quiet.skip_message
    _performance(instance, DAY + dt.timedelta(days=1), decayed=True)
    request, _ = _tick(instance)
    assert isinstance(request, dg.RunRequest)
    assert request.tags[TAG_REASON] == "decay"
    assert request.tags[TAG_DECAY_DAY] == "2025-02-11"
    assert "coverage of the 90% interval" in request.tags[TAG_DETAIL]


def test_schedule_and_sensor_follow_the_automation_switch(settings_env):
    assert weekly_retrain.job_name == "train_profit_model"
    assert weekly_retrain.tags[TAG_REASON] == "weekly schedule"
    settings_env(automation_enabled="true")
    assert sensor_status() == dg.DefaultSensorStatus.RUNNING
    assert schedule_status() == dg.DefaultScheduleStatus.RUNNING
    settings_env(automation_enabled="false")
    assert sensor_status() == dg.DefaultSensorStatus.STOPPED
    assert schedule_status() == dg.DefaultScheduleStatus.STOPPED
    settings_env(retrain_cron="30 5 * * 0", retrain_timezone="Europe/London")
    schedule = weekly_retrain_schedule()
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 5 * * 0", "Europe/London")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
