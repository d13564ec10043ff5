"""Monitoring that acts: how far each day's features have moved from what the champion learned.

``feature_drift`` compares one day of ``account_features_daily`` with the champion's training
reference (stored in its bundle at training time, ``daily_profit.monitoring.drift``): the
population stability index of every feature, the KS statistic of the continuous ones, and the
PSI weighted by the champion's feature importance. Drift is read as the excess of a feature's
PSI over its typical single-day PSI among the training days (``weighted_excess_psi``, what the
check and the retrain sensor act on): a day that differs from training no more than training
days differ from each other has not drifted. One run per day, so every day keeps its own
numbers and the UI plots them (asset -> Plots).
"""

import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg
import polars as pl

from daily_profit.config import get_settings
from daily_profit.defs.asset_keys import FEATURE_DRIFT
from daily_profit.defs.features.assets import account_features_daily
from daily_profit.defs.model.assets import MONITORING_GROUP, profit_model
from daily_profit.defs.partitions import daily_partitions, partition_day
from daily_profit.defs.resources import MlflowResource, WarehouseResource
from daily_profit.modeling.tracking import CHAMPION, load_drift_reference
from daily_profit.monitoring.drift import (
    DRIFT_ROW_SCHEMA,
    DriftReference,
    DriftReport,
    compare,
    drift_rows,
    typical_values,
)

FEATURES_NOT_DRIFTED = "features_not_drifted"
TOP_FEATURES = 10
# Per-feature PSI of the champion's most important features goes into numeric metadata under
# stable keys ("psi.<feature>"), so the UI plots each of them over days.
PLOTTED_FEATURES = 10

# Metadata keys the retrain sensor reads back.
STATUS = "status"
MEASURED = "measured"
NO_CHAMPION = "no champion yet"
NO_REFERENCE = "champion has no drift reference"
NO_FEATURES = "no feature rows for the day"
CHAMPION_VERSION = "champion_version"
WEIGHTED_PSI = "weighted_psi"
WEIGHTED_EXCESS_PSI = "weighted_excess_psi"
DRIFTED = "drifted"


def top_table(report: DriftReport, reference: DriftReference, day: pl.DataFrame) -> str:
    """The most drifting features as a markdown table: PSI, KS, the champion's reliance on the
    feature, and its typical value in training and on the day."""
    top = report.top(TOP_FEATURES)
    values = typical_values(reference, day, [f.name for f in top])
    lines = [
        "| feature | PSI | a training day's PSI | KS | importance | level | in training "
        "| this day |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in top:
        ks = f"{f.ks:.3f}" if f.ks is not None else ""
        train, today = values.get(f.name, ("", ""))
        lines.append(
            f"| {f.name} | {f.psi:.3f} | {f.baseline:.3f} | {ks} | {f.importance:.1%} "
            f"| {f.level} "
            f"| {train} | {today} |"
        )
    return "\n".join(lines)


def drift_metadata(
    report: DriftReport, reference: DriftReference, day: pl.DataFrame, version: str
) -> dict[str, object]:
    settings = get_settings()
    drifted_features = [
        f for f in report.features if f.excess >= settings.drift_feature_psi_threshold
    ]
    ks = [f.ks for f in report.features if f.ks is not None]
    important = sorted(reference.features, key=lambda f: (-f.importance, f.name))
    psi_by_name = {f.name: f.psi for f in report.features}
    return {
        STATUS: MEASURED,
        CHAMPION_VERSION: version,
        "rows": report.rows,
        "reference_rows": reference.rows,
        "features": len(report.features),
        # One value per day (calendar, market regime): one day says nothing about them.
        "day_level_features_not_compared": len(reference.day_level),
        WEIGHTED_PSI: report.weighted_psi,
        WEIGHTED_EXCESS_PSI: report.weighted_excess_psi,
        "max_psi": report.max_psi,
        "max_excess_psi": report.max_excess_psi,
        "max_ks": max(ks, default=0.0),
        "features_drifted": len(drifted_features),
        "features_moderate": report.count("moderate"),
        "features_large": report.count("large"),
        DRIFTED: int(report.weighted_excess_psi > settings.drift_weighted_psi_threshold),
        "weighted_psi_threshold": settings.drift_weighted_psi_threshold,
        "feature_psi_threshold": settings.drift_feature_psi_threshold,
        "top_drifting": dg.MetadataValue.md(top_table(report, reference, day)),
        **{f"psi.{f.name}": psi_by_name[f.name] for f in important[:PLOTTED_FEATURES]},
    }


def drift_check(metadata: dict[str, object]) -> dg.AssetCheckResult:
    """The day's verdict: warn when the importance-weighted excess PSI passes the threshold."""
    status = metadata[STATUS]
    if status != MEASURED:
        # Nothing to compare is not drift; a champion without a reference is a real gap.
        return dg.AssetCheckResult(
            check_name=FEATURES_NOT_DRIFTED,
            passed=status != NO_REFERENCE,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"not measured: {status}",
            metadata={STATUS: str(status)},
        )
    threshold = float(metadata["weighted_psi_threshold"])  # type: ignore[arg-type]
    weighted = float(metadata[WEIGHTED_EXCESS_PSI])  # type: ignore[arg-type]
    return dg.AssetCheckResult(
        check_name=FEATURES_NOT_DRIFTED,
        passed=weighted <= threshold,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"importance-weighted excess PSI {weighted:.3f} "
            f"{'>' if weighted > threshold else '<='} {threshold:g}"
        ),
        metadata={
            k: metadata[k]
            for k in (
                CHAMPION_VERSION,
                WEIGHTED_EXCESS_PSI,
                WEIGHTED_PSI,
                "weighted_psi_threshold",
                "max_psi",
                "features_drifted",
                "feature_psi_threshold",
                "top_drifting",
            )
        },
    )


def measure_day(
    day: dt.date, features: pl.DataFrame, reference: DriftReference, version: str
) -> tuple[dict[str, object], pl.DataFrame]:
    """Drift metadata of one day's feature rows against ``version``'s reference, and the
    per-feature rows the warehouse keeps."""
    if features.height == 0:
        return {STATUS: NO_FEATURES, CHAMPION_VERSION: version, "rows": 0}, pl.DataFrame(
            schema=DRIFT_ROW_SCHEMA
        )
    try:
        report = compare(reference, features)
    except ValueError as exc:
        raise dg.Failure(
            f"feature_drift {day}: the day's feature rows do not match champion version "
            f"{version}'s reference: {exc}"
        ) from exc
    return drift_metadata(report, reference, features, version), drift_rows(report, day, version)


@dg.asset(
    key=FEATURE_DRIFT,
    group_name=MONITORING_GROUP,
    partitions_def=daily_partitions,
    deps=[account_features_daily, profit_model],
    check_specs=[
        dg.AssetCheckSpec(
            FEATURES_NOT_DRIFTED,
            asset=FEATURE_DRIFT,
            partitions_def=daily_partitions,
            description="The day's features, weighted by the champion's feature importance, "
            "stay close to its training data: warns when the weighted PSI in excess of a "
            "training day's own passes DAILY_PROFIT_DRIFT_WEIGHTED_PSI_THRESHOLD. Passes with the reason when there is "
            "nothing to compare (no champion yet, no feature rows).",
        )
    ],
    kinds={"polars", "mlflow"},
    tags={"layer": "monitoring"},
)
def feature_drift(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MlflowResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """How far the day's features have moved from the champion's training data: the population
    stability index of every feature (KS as well for the continuous ones) against the reference
    stored with the champion's model version, and one number for the model, the PSI weighted by
    its feature importance. Metadata: the most drifting features with their typical values in
    training and on the day, and per-day numbers (weighted and max PSI, features drifted, the
    PSI of the champion's most important features) that the UI plots over days. Every
    feature's numbers are kept per day in the warehouse table `feature_drift_daily`."""
    day = partition_day(context.partition_key)
    target = mlflow.target()
    try:
        stored = load_drift_reference(target, alias=CHAMPION)
    except LookupError as exc:
        context.log.warning(str(exc))
        metadata: dict[str, object] = {STATUS: NO_REFERENCE, "reason": str(exc)}
    else:
        if stored is None:
            metadata = {STATUS: NO_CHAMPION}
        else:
            store = warehouse.get()
            features = store.read_partitions("account_features_daily", day, day)
            metadata, rows = measure_day(day, features, stored.reference, stored.version)
            # The day is re-measured as a whole (against today's champion): replace it.
            written = store.replace_partitions(
                "feature_drift_daily", rows, dates=[day], run_id=context.run.run_id
            )
            metadata["rows_written"] = written.total_rows
    if metadata[STATUS] != MEASURED:
        context.log.info(f"feature_drift {day}: not measured ({metadata[STATUS]})")
    yield dg.MaterializeResult(metadata=metadata)
    yield drift_check(metadata)


monitoring_assets: Sequence[dg.AssetsDefinition] = [feature_drift]
