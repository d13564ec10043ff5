"""Tables the graph derives from the raw layer: staging, features, labels, predictions.

Their columns come from the pure packages' own schemas (``STAGING_SCHEMA``, the feature
catalog, ``LABEL_SCHEMA``, the prediction schemas), so the computation and the table cannot
drift apart silently: a changed schema fails ``test_migrations`` until a migration follows it.
They are written through the same ``Warehouse.replace_partitions`` as the raw tables.
"""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa

from daily_profit.features.catalog import output_schema as feature_schema
from daily_profit.features.labels import LABEL_SCHEMA
from daily_profit.features.staging import STAGING_SCHEMA
from daily_profit.modeling.outcomes import OUTCOME_SCHEMA
from daily_profit.monitoring.drift import DRIFT_ROW_SCHEMA
from daily_profit.warehouse.tables import LOADED_AT, RUN_ID, metadata


def _sa_type(dtype: pl.DataType) -> sa.types.TypeEngine:
    if dtype == pl.Date:
        return sa.Date()
    if isinstance(dtype, pl.Datetime):
        return sa.DateTime(timezone=True)
    if dtype == pl.Boolean:
        return sa.Boolean()
    if dtype.is_integer():
        return sa.BigInteger()
    if dtype.is_float():
        return sa.Double()
    return sa.Text()


def derived_table(
    name: str,
    schema: pl.Schema,
    *,
    key: tuple[str, ...],
    description: str,
    partition_column: str = "date",
) -> sa.Table:
    """A daily table whose business columns are ``schema``; key columns are NOT NULL."""
    columns = [
        sa.Column(column, _sa_type(dtype), nullable=column not in key)
        for column, dtype in schema.items()
    ]
    columns += [
        sa.Column(RUN_ID, sa.Text(), nullable=False),
        sa.Column(LOADED_AT, sa.DateTime(timezone=True), nullable=False),
    ]
    return sa.Table(
        name,
        metadata,
        *columns,
        sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
        comment=description,
        info={"partition_column": partition_column, "natural_key": key, "source": name},
        postgresql_partition_by=f"RANGE ({partition_column})",
    )


stg_accounts_daily = derived_table(
    "stg_accounts_daily",
    STAGING_SCHEMA,
    key=("date", "account_id"),
    description="Point-in-time state of each live funded account per day.",
)

account_features_daily = derived_table(
    "account_features_daily",
    feature_schema(),
    key=("date", "account_id", "feature_set_version"),
    description="Features of each live funded account-day from data dated that day or earlier.",
)

labels_next_session = derived_table(
    "labels_next_session",
    LABEL_SCHEMA,
    key=("date", "account_id"),
    description="For each trading session D: the account's net profit and breach over D's "
    "target span, from the day after D up to and including the next session.",
)

DERIVED_TABLES = (stg_accounts_daily, account_features_daily, labels_next_session)


# One row per account, feature day, model version and restatement: a later model adds its own
# rows for a day and never overwrites another version's, and a day whose inputs were restated
# gets new rows (``restatement`` 1, 2, ...) beside the ones made before (``scored_run_id`` /
# ``scored_at`` keep who made each prediction and when).
PREDICTION_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "account_id": pl.String(),
        "model_version": pl.String(),
        "restatement": pl.Int64(),
        "model_role": pl.String(),
        "feature_set_version": pl.String(),
        "target_start": pl.Date(),
        "target_end": pl.Date(),
        "expected_net_profit": pl.Float64(),
        "p05": pl.Float64(),
        "p50": pl.Float64(),
        "p95": pl.Float64(),
        "breach_probability": pl.Float64(),
        "risk_score": pl.Float64(),
        "driver_1_feature": pl.String(),
        "driver_1_contribution": pl.Float64(),
        "driver_2_feature": pl.String(),
        "driver_2_contribution": pl.Float64(),
        "driver_3_feature": pl.String(),
        "driver_3_contribution": pl.Float64(),
        "drivers_method": pl.String(),
        "in_sample": pl.Boolean(),
        "history_days": pl.Int64(),
        "scored_run_id": pl.String(),
        "scored_at": pl.Datetime("ms", "UTC"),
    }
)

daily_predictions = derived_table(
    "daily_predictions",
    PREDICTION_SCHEMA,
    key=("date", "account_id", "model_version", "restatement"),
    description="Predictions of the P&L to the next session per account, session and model "
    "version.",
)

DERIVED_TABLES = (*DERIVED_TABLES, daily_predictions)


def latest_predictions(frame: pl.DataFrame) -> pl.DataFrame:
    """Each day's and model version's latest restatement: what the model says of the day now.
    The earlier rows stay in the table as the record of what was predicted then."""
    if frame.height == 0:
        return frame
    latest = pl.col("restatement") == pl.col("restatement").max().over("date", "model_version")
    return frame.filter(latest)


prediction_outcomes = derived_table(
    "prediction_outcomes",
    OUTCOME_SCHEMA,
    key=("date", "account_id", "model_version"),
    description="Each prediction of session D against what happened over its target span.",
)

DERIVED_TABLES = (*DERIVED_TABLES, prediction_outcomes)


feature_drift_daily = derived_table(
    "feature_drift_daily",
    DRIFT_ROW_SCHEMA,
    key=("date", "model_version", "feature"),
    description="Each feature's drift on day D against the champion's training reference.",
)

DERIVED_TABLES = (*DERIVED_TABLES, feature_drift_daily)


# What each column of the derived tables means, for the UI's catalog (features: the catalog).
COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "stg_accounts_daily": {
        "date": "Trading day D.",
        "account_id": "The account (pseudonymous id).",
        "login": "Trading login (masked in the UI).",
        "trader": "Trader id (masked in the UI).",
        "platform": "Platform code (MetaTrader version).",
        "broker": "Broker code.",
        "country": "Trader's country.",
        "plan_id": "The plan in force on D (from that day's metrics).",
        "type": "Account type code.",
        "phase": "Account phase (4: funded).",
        "status": "Account status code on D.",
        "plan_found": "The plan is in the plans export (else its rules are null).",
        "starting_balance": "The plan's starting balance (USD).",
        "profit_target_pct": "Profit target, % of the starting balance.",
        "daily_loss_limit_pct": "Daily loss limit, % of the starting balance.",
        "max_trailing_drawdown_pct": "Maximum drawdown, % of the starting balance.",
        "make_drawdown_static": "The drawdown floor stops trailing once reached.",
        "daily_drawdown_by_balance_equity": "The daily floor uses the higher of balance and "
        "equity at the start of day.",
        "profit_share_pct": "The trader's share of the profit paid out (%).",
        "leverage": "The plan's leverage.",
        "liquidate_friday": "Positions are closed on Friday.",
        "enable_consistency": "The plan's consistency rule applies.",
        "inactivity_period": "Days without trading before the account is closed.",
        "minimum_required_active_trading_days": "Active days required before a payout.",
        "maximum_time": "Days the plan allows.",
        "sod_balance": "Balance at the start of D (USD).",
        "sod_equity": "Equity at the start of D (USD).",
        "eod_balance": "Balance at the end of D (USD).",
        "eod_equity": "Equity at the end of D (USD).",
        "net_profit": "Net P&L of D (USD).",
        "num_trades": "Trades closed on D.",
        "todays_payouts": "Payouts on D (USD).",
        "hwm_equity": "High-water mark of end-of-day equity up to D (USD).",
        "first_seen_date": "First day the account appears in the daily metrics.",
        "account_age_days": "Days since it first appeared.",
        "days_since_first_trade": "Days since its first trade.",
        "active_trading_days_to_date": "Days with at least one trade, up to D.",
        "payout_days_to_date": "Days with a payout, up to D.",
        "payouts_to_date_usd": "Payouts up to D (USD).",
        "days_to_next_payout": "Days until the next payout is due.",
        "daily_loss_limit_usd": "The daily loss limit in USD.",
        "daily_loss_floor_today_usd": "Equity floor of D under the daily loss limit (USD).",
        "dist_daily_loss_today_usd": "End-of-day equity minus D's daily floor (USD).",
        "daily_loss_floor_next_usd": "Equity floor of the next day under the daily limit (USD).",
        "dist_daily_loss_usd": "Distance to the next day's daily floor (USD).",
        "dist_daily_loss_pct": "Distance to the next day's daily floor, % of starting balance.",
        "drawdown_floor_usd": "Equity floor under the maximum drawdown rule (USD).",
        "dist_drawdown_usd": "End-of-day equity minus the drawdown floor (USD).",
        "dist_drawdown_pct": "Distance to the drawdown floor, % of starting balance.",
        "profit_target_usd": "Equity at which the profit target is met (USD).",
        "dist_profit_target_usd": "Profit still needed to meet the target (USD).",
        "dist_profit_target_pct": "Profit still needed, % of starting balance.",
    },
    "labels_next_session": {
        "date": "Trading session D (no labels for the other days).",
        "account_id": "The account (pseudonymous id).",
        "target_start": "First day of D's target span: the day after D.",
        "target_end": "Last day of D's target span: the next session (the label is realised then).",
        "label_status": "observed (a row on every day of the span), idle_no_row (the days "
        "without a row proven idle by the balance), missing_row (a day's P&L unknown), "
        "account_gone, or pending (the span's last day, or the grace days, not ingested yet).",
        "label_available": "True when the label can be learnt from.",
        "net_profit_next_session": "Net P&L over the target span in USD (idle days count 0).",
        "breached_next_session": "The account breached a loss limit on a day of the span "
        "(API status).",
        "breach_by_rules": "The plan's rules on end-of-day equity say the span breached.",
        "eod_equity_next_session": "End-of-day equity of the span's last recorded day in USD.",
    },
    "daily_predictions": {
        "date": "Session D: the prediction is for its target span (target_start..target_end).",
        "account_id": "The account (pseudonymous id).",
        "model_version": "The MLflow registered model version that scored the row.",
        "restatement": "0 for the day's first scoring by this version; 1, 2, ... for each "
        "rescoring after the day's inputs were restated (earlier rows are kept).",
        "model_role": "champion (the desk's) or challenger (shadow).",
        "feature_set_version": "Version of the feature set the row was scored from.",
        "target_start": "First day of the span the prediction is for: the day after D.",
        "target_end": "Last day of the span: the next session (Friday: Saturday to Monday).",
        "expected_net_profit": "Expected net P&L over the target span in USD.",
        "p05": "5th percentile of the span's net P&L (USD): the 90% interval's low end.",
        "p50": "Median of the span's net P&L (USD).",
        "p95": "95th percentile of the span's net P&L (USD): the interval's high end.",
        "breach_probability": "Probability that the account breaches a loss limit in the span.",
        "risk_score": "0-100 ranking of the accounts by risk (breach probability and tail).",
        "driver_1_feature": "The feature that moves the expected P&L most for this account.",
        "driver_1_contribution": "Its contribution to the expected P&L (USD).",
        "driver_2_feature": "The second driver.",
        "driver_2_contribution": "Its contribution (USD).",
        "driver_3_feature": "The third driver.",
        "driver_3_contribution": "Its contribution (USD).",
        "drivers_method": "How the drivers were found (exact TreeSHAP or gain approximation).",
        "in_sample": "The day lies inside the model's training window.",
        "history_days": "Days of history the account had on D (under 5: lean on priors).",
        "scored_run_id": "The Dagster run that made the row.",
        "scored_at": "When the row was made (UTC).",
    },
    "prediction_outcomes": {
        "date": "Feature day D of the prediction.",
        "account_id": "The account (pseudonymous id).",
        "model_version": "The model version that predicted.",
        "model_role": "Its role when it predicted.",
        "target_start": "First day of the span predicted.",
        "target_end": "Last day of the span predicted (the next session).",
        "expected_net_profit": "What it expected for the span (USD).",
        "p05": "Low end of its 90% interval (USD).",
        "p95": "High end of its 90% interval (USD).",
        "breach_probability": "Its breach probability.",
        "realised_net_profit": "What the span's net P&L turned out to be (USD).",
        "realised_breach": "Whether the account breached in the span.",
        "error": "Realised minus expected net P&L (USD).",
        "covered": "The realised P&L fell inside the 90% interval.",
        "new_account": "The account had under 5 days of history.",
    },
}
