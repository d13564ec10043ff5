"""What one nightly tick does, run in this process: the automation conditions decide what runs.

Every night the daemon's automation sensor (``daily_profit_automation``) evaluates the assets'
automation conditions (``daily_profit/defs/operations/automation.py``) every 30 s, and the
backfill daemon runs what they request, grouped by the assets' backfill policies (a range of
days in one run for the single-run layers). ``run_nightly_tick`` does the same against an
instance without a daemon: Dagster's own evaluator, given the sensor's selection, evaluates the
conditions once just before the nightly tick of a day (what has landed by then is its baseline),
then at the tick and every sensor interval after it; each evaluation's requests are grouped into
runs as the backfill daemon groups them and executed here, upstream first, until an evaluation
requests nothing. The main job carries its last day this way, so the conditions the daemon uses
decide what runs for it; nothing here names an asset.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,
)
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    AUTOMATION_CONDITION_TAG,
)

from daily_profit.config import Settings, get_settings
from daily_profit.defs.operations.automation import AUTOMATION_SENSOR

# The nightly tick a run was requested by (its time, ISO, in the broker's zone).
NIGHTLY_TICK_TAG = "daily_profit/nightly_tick"
# A tick's cascade is one evaluation per layer (raw, staging, features and labels, predictions,
# outcomes, monitoring, the desk report) and one that requests nothing; more means the
# conditions keep requesting each other's work.
MAX_EVALUATIONS = 20


class NightlyTickError(RuntimeError):
    """The automation conditions did not settle: they kept requesting runs."""


@dataclass(frozen=True)
class TickRun:
    """One run the automation conditions requested, executed in this process."""

    assets: tuple[dg.AssetKey, ...]
    # The run's days: one, the first and last of a range, or none (unpartitioned assets).
    days: tuple[str, ...]
    result: dg.ExecuteInProcessResult
    seconds: float

    def describe(self) -> str:
        names = [key.to_user_string() for key in self.assets]
        what = ", ".join(names) if len(names) <= 3 else f"{names[0]} and {len(names) - 1} more"
        return f"{what} {' .. '.join(self.days)}".rstrip()


def nightly_tick_time(day: dt.date, settings: Settings | None = None) -> dt.datetime:
    """The nightly tick that follows the close of ``day``: the nightly run time on the next
    calendar day in the broker's zone (the day closes at the broker's midnight rollover)."""
    settings = settings or get_settings()
    zone = ZoneInfo(settings.broker_timezone)
    return dt.datetime.combine(day + dt.timedelta(days=1), settings.nightly_run_time, tzinfo=zone)


def run_nightly_tick(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    day: dt.date,
    *,
    run_config: Mapping[str, Any] | None = None,
    on_run: Callable[[TickRun], None] | None = None,
) -> list[TickRun]:
    """Everything the automation conditions request at the nightly tick after ``day`` closed,
    and after each of those runs, executed on ``instance``; the runs in the order they ran.

    A failed run does not stop the tick: what depends on it is not requested (its inputs are
    missing or failed their blocking checks), as under the daemon."""
    sensor = defs.get_sensor_def(AUTOMATION_SENSOR)
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    # Dagster evaluates a sensor that declares no interval every 30 s.
    interval = dt.timedelta(seconds=sensor.minimum_interval_seconds or 30)
    asset_graph = defs.resolve_asset_graph()
    order = {key: i for i, key in enumerate(asset_graph.toposorted_asset_keys)}
    job = defs.resolve_implicit_global_asset_job_def()
    tick = nightly_tick_time(day)
    tags = {AUTOMATION_CONDITION_TAG: "true", NIGHTLY_TICK_TAG: tick.isoformat()}

    def evaluate(at: dt.datetime, cursor=None):
        return dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=sensor.asset_selection,
            evaluation_time=at,
            cursor=cursor,
        )

    # The sensor's evaluation before the tick: the days already landed are its baseline, so
    # only what changes from the tick on counts as changed.
    cursor = evaluate(tick - interval).cursor
    runs: list[TickRun] = []
    at = tick
    for _ in range(MAX_EVALUATIONS):
        result = evaluate(at, cursor)
        cursor = result.cursor
        requested = {
            AssetKeyPartitionKey(key, partition)
            for key in asset_graph.materializable_asset_keys
            for partition in result.get_requested_partitions(key)
        }
        if not requested:
            return runs
        requests = build_run_requests_with_backfill_policies(
            asset_partitions=requested, asset_graph=asset_graph, dynamic_partitions_store=instance
        )
        # Upstream first: the backfill daemon launches a run only once what it reads is done.
        for request in sorted(requests, key=lambda r: min(order[k] for k in r.asset_selection)):
            assets = tuple(sorted(request.asset_selection, key=order.__getitem__))
            started = time.perf_counter()
            outcome = job.execute_in_process(
                instance=instance,
                asset_selection=list(assets),
                partition_key=request.partition_key,
                tags={**request.tags, **tags},
                run_config=run_config,
                raise_on_error=False,
            )
            run = TickRun(
                assets=assets,
                days=_days_of(request),
                result=outcome,
                seconds=time.perf_counter() - started,
            )
            runs.append(run)
            if on_run is not None:
                on_run(run)
        at += interval
    raise NightlyTickError(
        f"the automation conditions still requested runs after {MAX_EVALUATIONS} evaluations "
        f"of the nightly tick after {day}: "
        + ", ".join(sorted({k.asset_key.to_user_string() for k in requested}))
    )


def _days_of(request: dg.RunRequest) -> tuple[str, ...]:
    if request.partition_key is not None:
        return (request.partition_key,)
    start = request.tags.get(ASSET_PARTITION_RANGE_START_TAG)
    end = request.tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start is None or end is None:
        return ()
    return (start,) if start == end else (start, end)
