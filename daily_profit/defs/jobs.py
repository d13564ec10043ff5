"""Jobs people launch from the UI and the main job runs."""

import dagster as dg

from daily_profit.defs import guards
from daily_profit.defs.raw import checks as raw_checks

# The raw assets record every check result of every day themselves; the declared checks that
# re-read those results from the audit table are for the UI (a re-run for a day), not for the
# jobs: under the multiprocess executor each would cost a process per run. The reconciliation
# checks compute something new and stay.
RECONCILIATIONS = dg.AssetSelection.checks(*raw_checks.reconciliation_checks)

raw_daily_job = dg.define_asset_job(
    "raw_daily",
    selection=(
        dg.AssetSelection.groups("raw")
        - dg.AssetSelection.assets("raw_plans", "raw_metrics_alltime")
    ).without_checks()
    | RECONCILIATIONS,
    description="Land trading days of every daily Risk API source (one day, or a range in one "
    "run), each day audited, published and checked on its own.",
)

raw_reference_job = dg.define_asset_job(
    "raw_reference",
    selection=dg.AssetSelection.assets("raw_plans", "raw_metrics_alltime").without_checks(),
    description="Refresh the plans export and the account master.",
)

features_job = dg.define_asset_job(
    "features",
    # The guard's declared checks re-read what each asset recorded per day: for the UI only.
    selection=dg.AssetSelection.groups("staging", "features")
    - dg.AssetSelection.assets("account_performance_summary")
    - dg.AssetSelection.checks(*guards.declared_guard_checks()),
    description="Staging, features and labels for a range of days, in one vectorised run.",
)

train_job = dg.define_asset_job(
    "train_profit_model",
    selection=dg.AssetSelection.assets("profit_model"),
    description="Train, log and register a model version; promote it to champion on evidence.",
)

predictions_job = dg.define_asset_job(
    "predictions",
    selection=dg.AssetSelection.assets("daily_predictions"),
    description="Score a range of days with the champion and, in shadow, the challenger.",
)

desk_summary_job = dg.define_asset_job(
    "desk_summary",
    selection=dg.AssetSelection.assets("account_performance_summary"),
    description="Refresh the desk's account performance summary.",
)

outcomes_job = dg.define_asset_job(
    "score_outcomes",
    selection=dg.AssetSelection.assets("prediction_outcomes"),
    description="Realised D+1 against predictions, for a range of days in one run.",
)

performance_job = dg.define_asset_job(
    "daily_model_performance",
    selection=dg.AssetSelection.assets("model_performance"),
    description="One day's metrics per model (launch a backfill for a plot over time).",
)

drift_job = dg.define_asset_job(
    "daily_feature_drift",
    selection=dg.AssetSelection.assets("feature_drift"),
    description="One day's features against the champion's training reference (launch a "
    "backfill for a plot over time).",
)

desk_report_job = dg.define_asset_job(
    "morning_report",
    selection=dg.AssetSelection.assets("desk_report"),
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
