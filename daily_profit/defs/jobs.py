"""Jobs people launch from the UI and the main job runs."""

import dagster as dg

raw_daily_job = dg.define_asset_job(
    "raw_daily",
    selection=dg.AssetSelection.groups("raw")
    - dg.AssetSelection.assets("raw_plans", "raw_metrics_alltime"),
    description="Land one trading day of every daily Risk API source, with its checks.",
)

raw_reference_job = dg.define_asset_job(
    "raw_reference",
    selection=dg.AssetSelection.assets("raw_plans", "raw_metrics_alltime"),
    description="Refresh the plans export and the account master.",
)

features_job = dg.define_asset_job(
    "features",
    selection=dg.AssetSelection.groups("staging", "features")
    - dg.AssetSelection.assets("account_performance_summary"),
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

jobs = [
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
