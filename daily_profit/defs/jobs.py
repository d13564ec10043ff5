"""Jobs people launch from the UI and the main job runs."""

import dagster as dg

from daily_profit.defs.asset_keys import (
    ACCOUNT_PERFORMANCE_SUMMARY,
    DAILY_PREDICTIONS,
    DESK_REPORT,
    FEATURE_DRIFT,
    MODEL_PERFORMANCE,
    PREDICTION_OUTCOMES,
    PROFIT_MODEL,
    RAW_METRICS_ALLTIME,
    RAW_PLANS,
)
from daily_profit.defs.raw import checks as raw_checks

# The raw assets record every check result of every day themselves; the declared checks that
# re-read those results from the audit table are for the UI (a re-run for a day), not for the
# jobs: under the multiprocess executor each would cost a process per run. The reconciliation
# checks compute something new and stay.
RECONCILIATIONS = dg.AssetSelection.checks(*raw_checks.reconciliation_checks)

raw_daily_job = dg.define_asset_job(
    "raw_daily",
    selection=(
        dg.AssetSelection.groups("raw") - dg.AssetSelection.assets(RAW_PLANS, RAW_METRICS_ALLTIME)
    ).without_checks()
    | RECONCILIATIONS,
    description="Land trading days of every daily Risk API source (one day, or a range in one "
    "run), each day audited, published and checked on its own.",
)

raw_reference_job = dg.define_asset_job(
    "raw_reference",
    selection=dg.AssetSelection.assets(RAW_PLANS, RAW_METRICS_ALLTIME).without_checks(),
    description="Refresh the plans export and the account master.",
)

features_job = dg.define_asset_job(
    "features",
    # Each asset records every check result of every day of its range itself; the declared
    # checks re-read the range and evaluate each day again, for a re-run of a day from the UI,
    # not for the jobs: in a year's backfill of 20,000 accounts they were 7 of its 12 steps
    # and more than half of its time.
    selection=(
        dg.AssetSelection.groups("staging", "features")
        - dg.AssetSelection.assets(ACCOUNT_PERFORMANCE_SUMMARY)
    ).without_checks(),
    description="Staging, features and labels for a range of days, in one vectorised run.",
)

train_job = dg.define_asset_job(
    "train_profit_model",
    selection=dg.AssetSelection.assets(PROFIT_MODEL),
    description="Train, log and register a model version; promote it to champion on evidence.",
)

predictions_job = dg.define_asset_job(
    "predictions",
    selection=dg.AssetSelection.assets(DAILY_PREDICTIONS),
    description="Score a range of days with the champion and, in shadow, the challenger.",
)

desk_summary_job = dg.define_asset_job(
    "desk_summary",
    selection=dg.AssetSelection.assets(ACCOUNT_PERFORMANCE_SUMMARY),
    description="Refresh the desk's account performance summary.",
)

outcomes_job = dg.define_asset_job(
    "score_outcomes",
    selection=dg.AssetSelection.assets(PREDICTION_OUTCOMES),
    description="Realised D+1 against predictions, for a range of days in one run.",
)

performance_job = dg.define_asset_job(
    "daily_model_performance",
    selection=dg.AssetSelection.assets(MODEL_PERFORMANCE),
    description="One day's metrics per model (launch a backfill for a plot over time).",
)

drift_job = dg.define_asset_job(
    "daily_feature_drift",
    selection=dg.AssetSelection.assets(FEATURE_DRIFT),
    description="One day's features against the champion's training reference (launch a "
    "backfill for a plot over time).",
)

desk_report_job = dg.define_asset_job(
    "morning_report",
    selection=dg.AssetSelection.assets(DESK_REPORT),
    description="The desk's morning report of one day: ranking and changes, the firm's "
    "next-session tail, exposure.",
)

jobs = [
    desk_report_job,
    drift_job,
    outcomes_job,
    performance_job,
    raw_daily_job,
    raw_reference_job,
    features_job,
    desk_summary_job,
    train_job,
    predictions_job,
]
