"""The predictions deadline: which session is due when, and the verdict recorded for it."""

import datetime as dt

import dagster as dg

from daily_profit.defs.operations.alerts import DEADLINE_CHECK, deadline_verdict, due_session
from daily_profit.trading_calendar import TradingCalendar

ZONE = "Etc/GMT-2"
SIX = dt.time(6, 0)
CALENDAR = TradingCalendar(weekdays=frozenset(range(5)), holidays=frozenset())


def _at(day: str, hour: int) -> dt.datetime:
    # Broker time (GMT+2) as UTC.
    local = dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+02:00")
    return local.astimezone(dt.UTC)


def test_the_session_that_closed_overnight_is_due_at_six_in_the_brokers_zone():
    assert due_session(_at("2025-03-05", 5), CALENDAR, ZONE, SIX) is None  # before six
    assert due_session(_at("2025-03-05", 6), CALENDAR, ZONE, SIX) == dt.date(2025, 3, 4)
    assert due_session(_at("2025-03-08", 7), CALENDAR, ZONE, SIX) == dt.date(2025, 3, 7)  # Fri
    # Sunday and Monday mornings follow no session: nothing new is due.
    assert due_session(_at("2025-03-09", 7), CALENDAR, ZONE, SIX) is None
    assert due_session(_at("2025-03-10", 7), CALENDAR, ZONE, SIX) is None


def _predictions(instance: dg.DagsterInstance, day: dt.date) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="daily_predictions", partition=day.isoformat())
    )


def test_the_verdict_fails_without_predictions_and_passes_with_them_on_time():
    instance = dg.DagsterInstance.ephemeral()
    day = dt.date(2025, 3, 4)
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    missing = deadline_verdict(instance, day, deadline)
    assert missing.check_name == DEADLINE_CHECK and missing.partition == day.isoformat()
    assert not missing.passed and "no predictions" in missing.description
    _predictions(instance, day)
    assert deadline_verdict(instance, day, deadline).passed
    late = deadline_verdict(instance, day, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    assert not late.passed and "after" in late.description


def test_the_sensors_are_running_by_default_and_a_setting_stops_them(settings_env):
    from daily_profit.defs.operations.alerts import alert_sensor, deadline_sensor
    from daily_profit.defs.operations.automation import automation_sensor

    running = [automation_sensor(), alert_sensor(), deadline_sensor()]
    assert {s.default_status for s in running} == {dg.DefaultSensorStatus.RUNNING}
    settings_env(automation_enabled="false")
    stopped = [automation_sensor(), alert_sensor(), deadline_sensor()]
    assert {s.default_status for s in stopped} == {dg.DefaultSensorStatus.STOPPED}


def test_a_day_whose_deadline_passed_before_the_instance_first_ran_was_never_due():
    # A new install backfills last year: its days were not late, nothing ran here then. A day
    # due after the first run is judged as ever.
    instance = dg.DagsterInstance.ephemeral()

    @dg.asset
    def anything() -> None:
        return None

    assert dg.materialize([anything], instance=instance).success
    [first] = instance.get_run_records(limit=1)
    day = dt.date(2025, 3, 4)
    long_ago = first.create_timestamp - dt.timedelta(days=300)
    backfilled = deadline_verdict(instance, day, long_ago)
    assert backfilled.passed and backfilled.description.startswith("backfilled: ")
    assert backfilled.metadata["backfilled"].value is True
    due_since = deadline_verdict(instance, day, first.create_timestamp + dt.timedelta(seconds=1))
    assert not due_since.passed and "no predictions" in due_since.description
