"""Metadata every asset attaches: previews with identities masked, counts, JSON summaries."""

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
import polars as pl

from daily_profit.privacy import mask_identities

PREVIEW_ROWS = 10
PREVIEW_COLUMNS = 14


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def preview(frame: pl.DataFrame, *, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A few rows as a UI table; logins, trader and account ids shown only as hashes."""
    head = mask_identities(frame.head(rows).select(frame.columns[:PREVIEW_COLUMNS]))
    records = [
        dg.TableRecord({k: _cell(v) for k, v in row.items()}) for row in head.iter_rows(named=True)
    ]
    return dg.MetadataValue.table(
        records=records,
        schema=dg.TableSchema(
            columns=[dg.TableColumn(name=c, type=str(t)) for c, t in head.schema.items()]
        ),
    )


def frame_table(frame: pl.DataFrame, *, rows: int = 50) -> dg.MetadataValue:
    """A small result frame (check failures, mismatches) as a UI table, identities masked."""
    return preview(frame, rows=rows)


def _md_cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return ""
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    if value is None:
        return ""
    return str(_cell(value)).replace("|", "/")


def markdown_table(frame: pl.DataFrame) -> str:
    """A frame as a markdown table for the UI; logins, trader and account ids masked."""
    shown = mask_identities(frame)
    head = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in shown.iter_rows()]
    return "\n".join([head, rule, *rows])


def json_value(value: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(value)


def targeting_latest(
    instance: dg.DagsterInstance, evaluation: dg.AssetCheckEvaluation
) -> dg.AssetCheckEvaluation:
    """The evaluation pointed at its partition's latest materialisation.

    A check result logged by hand (one per day of a range run) carries no target, and Dagster
    treats a result that does not target the latest materialisation as stale: automation would
    never see the day's blocking checks pass. Log such results after the day's materialisation.
    """
    return next(targeted(instance, [evaluation]))


def _latest_materialization(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str | None
):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=asset_key, asset_partitions=[partition] if partition else None
        ),
        limit=1,
    ).records
    return records[0] if records else None


def targeted(
    instance_or_context: dg.DagsterInstance | dg.AssetExecutionContext,
    evaluations: Iterable[dg.AssetCheckEvaluation],
) -> Iterator[dg.AssetCheckEvaluation]:
    """Per-day results logged or yielded after the range's materialisation, each aimed at its
    day; one look-up per asset and day, however many checks it has."""
    instance = (
        instance_or_context
        if isinstance(instance_or_context, dg.DagsterInstance)
        else instance_or_context.instance
    )
    latest: dict[tuple[dg.AssetKey, str | None], object] = {}
    for evaluation in evaluations:
        key = (evaluation.asset_key, evaluation.partition)
        if key not in latest:
            latest[key] = _latest_materialization(instance, *key)
        record = latest[key]
        yield evaluation if record is None else _with_target(evaluation, record)


def _with_target(evaluation: dg.AssetCheckEvaluation, latest) -> dg.AssetCheckEvaluation:
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationTargetMaterializationData,
    )

    return dg.AssetCheckEvaluation(
        asset_key=evaluation.asset_key,
        check_name=evaluation.check_name,
        passed=evaluation.passed,
        metadata=evaluation.metadata,
        severity=evaluation.severity,
        description=evaluation.description,
        blocking=evaluation.blocking,
        partition=evaluation.partition,
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp
        ),
    )
