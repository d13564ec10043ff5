"""The nightly run order, evaluated by Dagster's own automation engine on the real definitions.

No runs are launched: materialisations are reported to an instance as the raw layer would
record them (each day versioned by its checksum), and the engine says what it would request.
"""

import datetime as dt
import logging
import time
import uuid

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry

from daily_profit.config import get_settings
from daily_profit.defs.metadata import targeting_latest
from daily_profit.defs.operations import automation
from daily_profit.defs.raw.checks import AUDIT_CHECKS, DAY_PUBLISHED

# The raw assets by name, as the engine's requests below are keyed.
RAW_DAILY = [k.to_user_string() for k in automation.RAW_DAILY]
SNAPSHOTS = [k.to_user_string() for k in automation.SNAPSHOTS]

BLOCKING = [name for name, blocking, _ in AUDIT_CHECKS if blocking] + [DAY_PUBLISHED]

# The nightly tick (00:30 broker time, GMT+2) of 2025-01-10: the 9th has just closed.
TICK = dt.datetime(2025, 1, 9, 23, 0, tzinfo=dt.UTC)
NEW_DAY = dt.date(2025, 1, 9)


def _definitions() -> dg.Definitions:
    from daily_profit.definitions import defs

    return defs


def _evaluate(instance: dg.DagsterInstance, previous=None, at: dt.datetime = TICK):
    """The automation sensor's evaluation at ``at``, after ``previous`` (its cursor)."""
    return dg.evaluate_automation_conditions(
        defs=_definitions(),
        instance=instance,
        cursor=previous.cursor if previous is not None else None,
        evaluation_time=at,
    )


def _requested(result) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in result.results:
        if r.true_subset.size:
            key = r.key.to_user_string()
            subset = r.true_subset
            out[key] = (
                set(subset.expensively_compute_partition_keys()) if subset.is_partitioned else {"*"}
            )
    return out


def _store_check(instance: dg.DagsterInstance, evaluation: dg.AssetCheckEvaluation) -> None:
    # Runless check results all share run id "": a second one for a day would collide. Each
    # result is stored under a run id of its own, as the raw layer's runs give them.
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION.value,
        job_name="raw_daily",
        event_specific_data=evaluation,
    )
    instance.event_log_storage.store_event(
        EventLogEntry(
            error_info=None,
            level=logging.INFO,
            user_message="",
            run_id=uuid.uuid4().hex,
            timestamp=time.time(),
            dagster_event=event,
        )
    )


def _report(instance: dg.DagsterInstance, asset: str, day: dt.date | None, version: str) -> None:
    """A day landed as the raw layer records it: versioned, with its blocking checks passed."""
    partition = day.isoformat() if day else None
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=asset, partition=partition, tags={DATA_VERSION_TAG: version}
        )
    )
    if asset.startswith("raw_"):
        for name in BLOCKING:
            evaluation = dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(asset),
                check_name=name,
                passed=True,
                partition=partition,
                severity=dg.AssetCheckSeverity.ERROR,
            )
            _store_check(instance, targeting_latest(instance, evaluation))


def _land_raw_layer(instance: dg.DagsterInstance) -> list[dt.date]:
    """The window's days and the 24 before them landed (version v1), with the snapshots; the
    window's days, oldest first."""
    days = sorted(dt.date.fromisoformat(d) for d in _window_days())
    history = [days[0] - dt.timedelta(days=i) for i in range(1, 25)]
    for day in [*history, *days]:
        for table in RAW_DAILY:
            _report(instance, table, day, f"v1-{table}-{day}")
    for table in SNAPSHOTS:
        _report(instance, table, None, f"v1-{table}")
    return days


def _window_days() -> set[str]:
    n = get_settings().restatement_days
    return {(NEW_DAY - dt.timedelta(days=i)).isoformat() for i in range(n + 1)}


def test_the_nightly_tick_requests_the_new_day_and_the_restatement_window_of_the_raw_layer():
    _definitions()
    instance = dg.DagsterInstance.ephemeral()
    before = _evaluate(instance, at=TICK - dt.timedelta(hours=2))
    assert not _requested(before)  # before the tick: nothing
    result = _evaluate(instance, before)
    requested = _requested(result)
    for table in RAW_DAILY:
        assert requested[table] == _window_days(), table
    for table in SNAPSHOTS:
        assert table in requested
    # Nothing downstream yet: its inputs have not landed.
    assert "stg_accounts_daily" not in requested
    again = _evaluate(instance, result)
    assert not set(_requested(again)) & set(RAW_DAILY)  # once per tick


def test_downstream_recomputes_a_restated_day_only_when_its_data_changed():
    _definitions()
    instance = dg.DagsterInstance.ephemeral()
    # The sensor is running before the raw layer lands (it compares tick to tick).
    start = _evaluate(instance)
    days = _land_raw_layer(instance)
    first = _evaluate(instance, start)
    assert set(_requested(first).get("stg_accounts_daily", set())) == _window_days()

    # The layer runs; then the next night restates the window: one day's metrics changed.
    for day in days:
        _report(instance, "stg_accounts_daily", day, f"s-{day}")
    second = _evaluate(instance, first)
    assert "stg_accounts_daily" not in _requested(second)
    changed = days[1]
    for day in days:
        for table in RAW_DAILY:
            version = (
                f"v2-{table}-{day}"
                if (table, day) == ("raw_metrics_daily", changed)
                else (f"v1-{table}-{day}")
            )
            _report(instance, table, day, version)
    third = _evaluate(instance, second)
    assert _requested(third).get("stg_accounts_daily") == {changed.isoformat()}


def test_the_desk_summary_is_refreshed_once_the_nights_staging_has_landed():
    _definitions()
    instance = dg.DagsterInstance.ephemeral()
    start = _evaluate(instance)
    days = _land_raw_layer(instance)
    raw_landed = _evaluate(instance, start)
    # The raw layer alone does not refresh it: staging is what it waits for.
    assert "account_performance_summary" not in _requested(raw_landed)
    for day in days:
        _report(instance, "stg_accounts_daily", day, f"s-{day}")
    staged = _evaluate(instance, raw_landed)
    assert _requested(staged).get("account_performance_summary") == {"*"}
    again = _evaluate(instance, staged)
    assert "account_performance_summary" not in _requested(again)


def test_a_raw_day_that_failed_its_audit_stops_its_downstream_and_the_others_go_on():
    _definitions()
    instance = dg.DagsterInstance.ephemeral()
    start = _evaluate(instance)
    days = _land_raw_layer(instance)
    # The new day's daily metrics: landed once, then a re-fetch's audit failed (blocking).
    failed = days[-1]
    _store_check(
        instance,
        targeting_latest(
            instance,
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("raw_metrics_daily"),
                check_name="quarantine_share_in_bounds",
                passed=False,
                partition=failed.isoformat(),
                severity=dg.AssetCheckSeverity.ERROR,
            ),
        ),
    )
    result = _evaluate(instance, start)
    staging = _requested(result).get("stg_accounts_daily", set())
    assert failed.isoformat() not in staging
    assert staging == _window_days() - {failed.isoformat()}


def test_a_day_whose_run_failed_is_tried_again_at_the_next_tick_once():
    # A step that failed on a database hiccup after the run's retries: nothing upstream
    # changes, yet the day is missing.
    _definitions()
    instance = dg.DagsterInstance.ephemeral()
    start = _evaluate(instance)
    days = _land_raw_layer(instance)
    first = _evaluate(instance, start)
    assert _requested(first)["stg_accounts_daily"] == _window_days()
    failed = days[-2]
    for day in days:
        if day != failed:  # its run failed: nothing materialised
            _report(instance, "stg_accounts_daily", day, f"s-{day}")
    later = _evaluate(instance, first)
    assert "stg_accounts_daily" not in _requested(later)  # not retried over and over

    next_tick = TICK + dt.timedelta(days=1)
    caught_up = _evaluate(instance, later, at=next_tick)
    assert _requested(caught_up).get("stg_accounts_daily") == {failed.isoformat()}
    again = _evaluate(instance, caught_up, at=next_tick)
    assert "stg_accounts_daily" not in _requested(again)


def _land_with_inputs_published(instance: dg.DagsterInstance, asset: str, day: dt.date) -> None:
    """A staging or labels day landed as the guard records it: its raw inputs published."""
    _report(instance, asset, day, f"v1-{asset}-{day}")
    evaluation = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset),
        check_name="raw_inputs_published",
        passed=True,
        partition=day.isoformat(),
        severity=dg.AssetCheckSeverity.ERROR,
    )
    _store_check(instance, targeting_latest(instance, evaluation))


def test_the_desk_report_of_a_new_day_is_requested_with_its_predictions_not_a_night_later():
    # The labels of the new day are realised only after the next session; the report reads
    # the labels known by then, those of the days before.
    _definitions()
    instance = dg.DagsterInstance.ephemeral()
    start = _evaluate(instance)
    days = _land_raw_layer(instance)
    first = days[0] - dt.timedelta(days=24)
    for i in range((NEW_DAY - first).days + 1):
        day = first + dt.timedelta(days=i)
        _land_with_inputs_published(instance, "stg_accounts_daily", day)
        if day < NEW_DAY:
            _land_with_inputs_published(instance, "labels_next_session", day)
    _report(instance, "daily_predictions", NEW_DAY, f"p-{NEW_DAY}")

    result = _evaluate(instance, start)
    assert NEW_DAY.isoformat() in _requested(result).get("desk_report", set())


def test_predictions_wait_for_a_champion_and_follow_once_one_is_registered():
    # No version qualified at training: the blocking check fails and no day is predicted. A
    # person promotes a version by hand in MLflow and executes the check from the UI.
    _definitions()
    instance = dg.DagsterInstance.ephemeral()
    start = _evaluate(instance)
    _report(instance, "profit_model", None, "m1")

    def champion_registered(passed: bool) -> None:
        _store_check(
            instance,
            targeting_latest(
                instance,
                dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey("profit_model"),
                    check_name="champion_registered",
                    passed=passed,
                    severity=dg.AssetCheckSeverity.ERROR,
                ),
            ),
        )

    champion_registered(False)
    days = sorted(dt.date.fromisoformat(d) for d in _window_days())
    for day in days:
        _land_with_inputs_published(instance, "account_features_daily", day)
    blocked = _evaluate(instance, start)
    assert "daily_predictions" not in _requested(blocked)

    champion_registered(True)
    promoted = _evaluate(instance, blocked)
    assert _requested(promoted).get("daily_predictions") == _window_days()


def test_the_history_backfill_runs_the_graph_upstream_first_up_to_the_predictions():
    defs = _definitions()
    graph = defs.resolve_asset_graph()
    selected = [
        defs.resolve_job_def(stage.job_name).asset_layer.selected_asset_keys
        for stage in automation.HISTORY_BACKFILL
    ]
    for i, assets in enumerate(selected):
        upstream = set().union(*(graph.get(k).parent_keys for k in assets)) - assets
        later = set().union(*selected[i + 1 :])
        assert not upstream & later, (automation.HISTORY_BACKFILL[i].job_name, upstream & later)
    # Everything the predictions need is backfilled: the nightly tick can predict the day after.
    needed = graph.get_ancestor_asset_keys(dg.AssetKey("daily_predictions"), include_self=True)
    assert needed <= set().union(*selected)
