"""The guard every layer after the raw one runs first: skip the days whose raw inputs failed.

See ``daily_profit.ingestion.publication``. Each skipped day gets a failed blocking check
``raw_inputs_published`` on the asset, naming the raw partitions it waits for, and the asset's
metadata lists the skipped days; the other days of the range are computed as usual.
"""

import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg

from daily_profit.config import get_settings
from daily_profit.defs.asset_keys import (
    ACCOUNT_FEATURES_DAILY,
    LABELS_NEXT_SESSION,
    STG_ACCOUNTS_DAILY,
)
from daily_profit.defs.metadata import json_value
from daily_profit.defs.partitions import daily_partitions, days_in_window
from daily_profit.defs.resources import WarehouseResource
from daily_profit.ingestion import sources
from daily_profit.ingestion.publication import (
    RAW_INPUTS_PUBLISHED,
    Requirement,
    summary,
    unpublished_inputs,
)
from daily_profit.warehouse.io import Warehouse

GUARD_DESCRIPTION = (
    "Every raw partition this day is computed from passed its audit and was published "
    "(blocking): a day whose raw inputs failed is skipped, never computed from a hole."
)


def _daily(table: str, before: int = 0, after: int = 0) -> Requirement:
    return Requirement(table, before=before, after=after)


def staging_requirements() -> list[Requirement]:
    return [_daily(sources.METRICS_DAILY.table)]


def feature_requirements() -> list[Requirement]:
    from daily_profit.features.pipeline import FEATURE_HISTORY_DAYS

    lookback = [
        sources.METRICS_DAILY,
        sources.METRICS_HOURLY,
        sources.TRADES_CLOSED,
        sources.REGIMES_DAILY,
    ]
    return [
        *(_daily(s.table, before=FEATURE_HISTORY_DAYS) for s in lookback),
        _daily(sources.TRADES_OPEN.table),
    ]


def label_requirements() -> list[Requirement]:
    from daily_profit.trading_calendar import trading_calendar

    return [Requirement(sources.METRICS_DAILY.table, span=trading_calendar())]


def skipped_days(
    store: Warehouse, days: Sequence[dt.date], requirements: Sequence[Requirement]
) -> dict[dt.date, list[str]]:
    """Days of ``days`` to skip. A window reaching after D (a label's target) is required only
    up to the last day its table has published: after that the label is pending."""
    last_day = None
    reaching = [r.table for r in requirements if r.reaches_after]
    if reaching:
        last_day = store.last_published_day(reaching)
    return unpublished_inputs(
        store, days, requirements, first_day=get_settings().start_date, last_day=last_day
    )


def guard_evaluations(
    asset: dg.AssetKey, days: Sequence[dt.date], blocked: dict[dt.date, list[str]]
) -> Iterator[dg.AssetCheckEvaluation]:
    for day in days:
        waits = blocked.get(day, [])
        yield dg.AssetCheckEvaluation(
            asset_key=asset,
            check_name=RAW_INPUTS_PUBLISHED,
            passed=not waits,
            partition=day.isoformat(),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "unpublished_raw_partitions": json_value(waits[:50]),
                "count": len(waits),
            },
            description=(
                f"{day.isoformat()} skipped: {len(waits)} raw partition(s) it needs are not "
                f"published ({', '.join(waits[:3])}{', ...' if len(waits) > 3 else ''})"
                if waits
                else None
            ),
        )


def guard_metadata(blocked: dict[dt.date, list[str]]) -> dict[str, object]:
    return {
        "days_skipped": len(blocked),
        **({"skipped_days": json_value(summary(blocked, limit=5))} if blocked else {}),
    }


def guard_check(asset: dg.AssetKey, requirements_of) -> dg.AssetChecksDefinition:
    """The declared check: visible in the UI, and re-run for a day from the warehouse."""

    @dg.asset_check(
        asset=asset,
        name=RAW_INPUTS_PUBLISHED,
        blocking=True,
        partitions_def=daily_partitions,
        description=GUARD_DESCRIPTION,
    )
    def _check(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        days = days_in_window(context.partition_time_window)
        blocked = skipped_days(warehouse.get(), days, requirements_of())
        return dg.AssetCheckResult(
            passed=not blocked,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"days": len(days), **guard_metadata(blocked)},
        )

    return _check


def declared_guard_checks() -> list[dg.AssetChecksDefinition]:
    """The guard's declared check on every layer that has it."""
    return [
        guard_check(STG_ACCOUNTS_DAILY, staging_requirements),
        guard_check(ACCOUNT_FEATURES_DAILY, feature_requirements),
        guard_check(LABELS_NEXT_SESSION, label_requirements),
    ]
