"""Every asset key of the graph, named once.

Jobs, selections, automation, checks, sensors and the CLI refer to an asset through these
constants (or through the asset object where they import it already), never through its name
typed again: a renamed asset is renamed here, and a stale reference fails at import rather
than selecting nothing. ``daily_profit_tests/test_definitions.py`` checks that each constant
names an asset of the definitions and that no other module repeats an asset's name.

A warehouse table that happens to share an asset's name (``stg_accounts_daily``) is the
table's own concept, named in ``daily_profit.warehouse``: reading or replacing its partitions
goes by the table, not by these keys.

The raw assets are built from their sources' specs (an asset per raw table, named like the
table), so their keys come from the same specs rather than being spelled out again.
"""

from typing import Final

import dagster as dg

from daily_profit.warehouse import records

# Raw layer: one asset per Risk API endpoint or export, named like its warehouse table.
RAW_PLANS: Final = dg.AssetKey(records.PLANS.table)
RAW_METRICS_ALLTIME: Final = dg.AssetKey(records.METRICS_ALLTIME.table)
RAW_METRICS_DAILY: Final = dg.AssetKey(records.METRICS_DAILY.table)
RAW_METRICS_HOURLY: Final = dg.AssetKey(records.METRICS_HOURLY.table)
RAW_TRADES_CLOSED: Final = dg.AssetKey(records.TRADES_CLOSED.table)
RAW_TRADES_OPEN: Final = dg.AssetKey(records.TRADES_OPEN.table)
RAW_REGIMES_DAILY: Final = dg.AssetKey(records.REGIMES_DAILY.table)

# Feature layer.
STG_ACCOUNTS_DAILY: Final = dg.AssetKey("stg_accounts_daily")
ACCOUNT_FEATURES_DAILY: Final = dg.AssetKey("account_features_daily")
LABELS_NEXT_SESSION: Final = dg.AssetKey("labels_next_session")
ACCOUNT_PERFORMANCE_SUMMARY: Final = dg.AssetKey("account_performance_summary")

# Model layer.
PROFIT_MODEL: Final = dg.AssetKey("profit_model")
MODEL_WALK_FORWARD: Final = dg.AssetKey("model_walk_forward")
DAILY_PREDICTIONS: Final = dg.AssetKey("daily_predictions")
PREDICTION_OUTCOMES: Final = dg.AssetKey("prediction_outcomes")
MODEL_PERFORMANCE: Final = dg.AssetKey("model_performance")

# Monitoring and the desk.
FEATURE_DRIFT: Final = dg.AssetKey("feature_drift")
DESK_REPORT: Final = dg.AssetKey("desk_report")
