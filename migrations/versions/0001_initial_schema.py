"""Initial warehouse schema: raw tables, quarantine, partition loads, partition maintenance.

Revision ID: 0001
Revises:
Create Date: 2025-11-25

The same logical schema on SQLite and PostgreSQL. On PostgreSQL only:

- the daily raw tables are RANGE-partitioned by their date column (one partition per day,
  created on demand by ``dp_ensure_partitions``; see benchmarks/README.md for why a day);
- ``_run_id`` / ``_loaded_at`` default to transaction-local settings (``dp.run_id``,
  ``dp.loaded_at``) so that COPY sends only the business columns (daily_profit.warehouse.io).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RAW_TABLES = (
    "raw_plans",
    "raw_metrics_alltime",
    "raw_metrics_daily",
    "raw_metrics_hourly",
    "raw_trades_closed",
    "raw_trades_open",
    "raw_regimes_daily",
)

# Creates the missing partitions of [p_from, p_to] (days, or months for p_granularity =>
# 'month') and returns how many it created. Two transactions that need the same new partition
# at once would race on CREATE TABLE (IF NOT EXISTS checks the catalog, then creates: not
# atomic), so creators of one table's partitions are serialised by a transaction-scoped
# advisory lock and re-check under it.
ENSURE_PARTITIONS = """
CREATE OR REPLACE FUNCTION dp_ensure_partitions(
    p_table regclass, p_from date, p_to date, p_granularity text DEFAULT 'day'
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_schema text;
    v_parent text;
    v_name text;
    v_start date;
    v_end date;
    v_step interval;
    v_created integer := 0;
BEGIN
    IF p_from IS NULL OR p_to IS NULL OR p_to < p_from THEN
        RETURN 0;
    END IF;
    IF p_granularity = 'day' THEN
        v_step := interval '1 day';
        v_start := p_from;
    ELSIF p_granularity = 'month' THEN
        v_step := interval '1 month';
        v_start := date_trunc('month', p_from)::date;
    ELSE
        RAISE EXCEPTION 'dp_ensure_partitions: granularity must be day or month, not %',
            p_granularity;
    END IF;
    SELECT n.nspname, c.relname INTO v_schema, v_parent
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = p_table;
    PERFORM pg_advisory_xact_lock(hashtext('dp_ensure_partitions'),
                                  hashtext(v_schema || '.' || v_parent));
    WHILE v_start <= p_to LOOP
        v_end := (v_start + v_step)::date;
        v_name := v_parent || '_p' || to_char(v_start,
            CASE WHEN p_granularity = 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END);
        IF to_regclass(format('%I.%I', v_schema, v_name)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                v_schema, v_name, v_schema, v_parent, v_start, v_end);
            v_created := v_created + 1;
        END IF;
        v_start := v_end;
    END LOOP;
    RETURN v_created;
END
$$;
"""


def upgrade() -> None:
    op.create_table(
        "partition_loads",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("quarantined_rows", sa.BigInteger(), nullable=False),
        sa.Column("checksum", sa.Text(), nullable=False, comment="sha256 of the business columns"),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        comment="One row per partition per write: the history of every materialisation.",
    )
    op.create_index(
        "ix_partition_loads_table_partition",
        "partition_loads",
        ["table_name", "partition_date", "loaded_at"],
        unique=False,
    )
    op.create_table(
        "raw_metrics_alltime",
        sa.Column("login", sa.Text(), nullable=False, comment="API field login"),
        sa.Column("account_id", sa.Text(), nullable=False, comment="API field accountId"),
        sa.Column("plan_id", sa.BigInteger(), nullable=False, comment="API field planId"),
        sa.Column("trader", sa.Text(), nullable=False, comment="API field trader"),
        sa.Column("status", sa.BigInteger(), nullable=False, comment="API field status"),
        sa.Column("type", sa.BigInteger(), nullable=False, comment="API field type"),
        sa.Column("phase", sa.BigInteger(), nullable=False, comment="API field phase"),
        sa.Column("broker", sa.BigInteger(), nullable=False, comment="API field broker"),
        sa.Column("platform", sa.BigInteger(), nullable=False, comment="API field mt_version"),
        sa.Column("country", sa.Text(), nullable=True, comment="API field country"),
        sa.Column(
            "starting_balance", sa.Double(), nullable=False, comment="API field startingBalance"
        ),
        sa.Column(
            "prior_days_balance", sa.Double(), nullable=False, comment="API field priorDaysBalance"
        ),
        sa.Column(
            "prior_days_equity", sa.Double(), nullable=False, comment="API field priorDaysEquity"
        ),
        sa.Column(
            "current_balance", sa.Double(), nullable=False, comment="API field currentBalance"
        ),
        sa.Column("current_equity", sa.Double(), nullable=False, comment="API field currentEquity"),
        sa.Column(
            "approved_payouts", sa.Double(), nullable=False, comment="API field approved_payouts"
        ),
        sa.Column(
            "pending_payouts", sa.Double(), nullable=False, comment="API field pending_payouts"
        ),
        sa.Column("first_trade_date", sa.Date(), nullable=True, comment="API field firstTradeDate"),
        sa.Column(
            "days_since_initial_deposit",
            sa.BigInteger(),
            nullable=False,
            comment="API field daysSinceInitialDeposit",
        ),
        sa.Column(
            "days_since_first_trade",
            sa.BigInteger(),
            nullable=False,
            comment="API field daysSinceFirstTrade",
        ),
        sa.Column("num_trades", sa.BigInteger(), nullable=False, comment="API field numTrades"),
        sa.Column("net_profit", sa.Double(), nullable=False, comment="API field netProfit"),
        sa.Column("gross_profit", sa.Double(), nullable=False, comment="API field grossProfit"),
        sa.Column("gross_loss", sa.Double(), nullable=False, comment="API field grossLoss"),
        sa.Column("profit_factor", sa.Double(), nullable=True, comment="API field profitFactor"),
        sa.Column("success_rate", sa.Double(), nullable=True, comment="API field successRate"),
        sa.Column("mean_profit", sa.Double(), nullable=True, comment="API field meanProfit"),
        sa.Column("median_profit", sa.Double(), nullable=True, comment="API field medianProfit"),
        sa.Column("std_profits", sa.Double(), nullable=True, comment="API field stdProfits"),
        sa.Column("min_profit", sa.Double(), nullable=True, comment="API field minProfit"),
        sa.Column("max_profit", sa.Double(), nullable=True, comment="API field maxProfit"),
        sa.Column("risk_adj_profit", sa.Double(), nullable=True, comment="API field riskAdjProfit"),
        sa.Column("expectancy", sa.Double(), nullable=True, comment="API field expectancy"),
        sa.Column("mean_draw_down", sa.Double(), nullable=True, comment="API field meanDrawDown"),
        sa.Column("max_draw_down", sa.Double(), nullable=True, comment="API field maxDrawDown"),
        sa.Column(
            "rel_max_draw_down", sa.Double(), nullable=True, comment="API field relMaxDrawDown"
        ),
        sa.Column("total_lots", sa.Double(), nullable=False, comment="API field totalLots"),
        sa.Column("total_volume", sa.Double(), nullable=False, comment="API field totalVolume"),
        sa.Column(
            "mean_winning_lot", sa.Double(), nullable=True, comment="API field meanWinningLot"
        ),
        sa.Column("mean_losing_lot", sa.Double(), nullable=True, comment="API field meanLosingLot"),
        sa.Column("mean_duration", sa.Double(), nullable=True, comment="API field meanDuration"),
        sa.Column("mean_sl", sa.Double(), nullable=True, comment="API field meanSL"),
        sa.Column("mean_tp", sa.Double(), nullable=True, comment="API field meanTP"),
        sa.Column(
            "max_num_consec_wins",
            sa.BigInteger(),
            nullable=True,
            comment="API field maxNumConsecWins",
        ),
        sa.Column(
            "max_num_consec_losses",
            sa.BigInteger(),
            nullable=True,
            comment="API field maxNumConsecLosses",
        ),
        sa.Column(
            "max_num_open_pos", sa.Double(), nullable=True, comment="API field maxNumOpenPos"
        ),
        sa.Column(
            "max_val_open_pos", sa.Double(), nullable=True, comment="API field maxValOpenPos"
        ),
        sa.Column(
            "num_traded_symbols",
            sa.BigInteger(),
            nullable=False,
            comment="API field numTradedSymbols",
        ),
        sa.Column(
            "most_traded_symbol", sa.Text(), nullable=True, comment="API field mostTradedSymbol"
        ),
        sa.Column(
            "life_time_in_days", sa.Double(), nullable=True, comment="API field lifeTimeInDays"
        ),
        sa.Column("daily_sharpe", sa.Double(), nullable=True, comment="API field dailySharpe"),
        sa.Column("daily_sortino", sa.Double(), nullable=True, comment="API field dailySortino"),
        sa.Column(
            "updated_date",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="API field updatedDate",
        ),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name="pk_raw_metrics_alltime"),
        comment="Lifetime metrics, one row per account as of now: the account master.",
    )
    op.create_table(
        "raw_metrics_daily",
        sa.Column("login", sa.Text(), nullable=False, comment="API field login"),
        sa.Column("account_id", sa.Text(), nullable=False, comment="API field accountId"),
        sa.Column("plan_id", sa.BigInteger(), nullable=False, comment="API field planId"),
        sa.Column("trader", sa.Text(), nullable=False, comment="API field trader"),
        sa.Column("status", sa.BigInteger(), nullable=False, comment="API field status"),
        sa.Column("type", sa.BigInteger(), nullable=False, comment="API field type"),
        sa.Column("phase", sa.BigInteger(), nullable=False, comment="API field phase"),
        sa.Column("broker", sa.BigInteger(), nullable=False, comment="API field broker"),
        sa.Column("platform", sa.BigInteger(), nullable=False, comment="API field mt_version"),
        sa.Column("country", sa.Text(), nullable=True, comment="API field country"),
        sa.Column("date", sa.Date(), nullable=False, comment="API field date"),
        sa.Column(
            "starting_balance", sa.Double(), nullable=False, comment="API field startingBalance"
        ),
        sa.Column(
            "prior_days_balance", sa.Double(), nullable=False, comment="API field priorDaysBalance"
        ),
        sa.Column(
            "prior_days_equity", sa.Double(), nullable=False, comment="API field priorDaysEquity"
        ),
        sa.Column(
            "current_balance", sa.Double(), nullable=False, comment="API field currentBalance"
        ),
        sa.Column("current_equity", sa.Double(), nullable=False, comment="API field currentEquity"),
        sa.Column(
            "approved_payouts", sa.Double(), nullable=False, comment="API field approved_payouts"
        ),
        sa.Column(
            "pending_payouts", sa.Double(), nullable=False, comment="API field pending_payouts"
        ),
        sa.Column(
            "todays_payouts", sa.Double(), nullable=False, comment="API field todays_payouts"
        ),
        sa.Column(
            "days_to_next_payout",
            sa.BigInteger(),
            nullable=True,
            comment="API field days_to_next_payout",
        ),
        sa.Column("first_trade_date", sa.Date(), nullable=True, comment="API field firstTradeDate"),
        sa.Column(
            "days_since_initial_deposit",
            sa.BigInteger(),
            nullable=False,
            comment="API field daysSinceInitialDeposit",
        ),
        sa.Column(
            "days_since_first_trade",
            sa.BigInteger(),
            nullable=False,
            comment="API field daysSinceFirstTrade",
        ),
        sa.Column("num_trades", sa.BigInteger(), nullable=False, comment="API field numTrades"),
        sa.Column("net_profit", sa.Double(), nullable=False, comment="API field netProfit"),
        sa.Column("gross_profit", sa.Double(), nullable=False, comment="API field grossProfit"),
        sa.Column("gross_loss", sa.Double(), nullable=False, comment="API field grossLoss"),
        sa.Column("profit_factor", sa.Double(), nullable=True, comment="API field profitFactor"),
        sa.Column("success_rate", sa.Double(), nullable=True, comment="API field successRate"),
        sa.Column("mean_profit", sa.Double(), nullable=True, comment="API field meanProfit"),
        sa.Column("median_profit", sa.Double(), nullable=True, comment="API field medianProfit"),
        sa.Column("std_profits", sa.Double(), nullable=True, comment="API field stdProfits"),
        sa.Column("min_profit", sa.Double(), nullable=True, comment="API field minProfit"),
        sa.Column("max_profit", sa.Double(), nullable=True, comment="API field maxProfit"),
        sa.Column("risk_adj_profit", sa.Double(), nullable=True, comment="API field riskAdjProfit"),
        sa.Column("expectancy", sa.Double(), nullable=True, comment="API field expectancy"),
        sa.Column("mean_draw_down", sa.Double(), nullable=True, comment="API field meanDrawDown"),
        sa.Column("max_draw_down", sa.Double(), nullable=True, comment="API field maxDrawDown"),
        sa.Column(
            "rel_max_draw_down", sa.Double(), nullable=True, comment="API field relMaxDrawDown"
        ),
        sa.Column("total_lots", sa.Double(), nullable=False, comment="API field totalLots"),
        sa.Column("total_volume", sa.Double(), nullable=False, comment="API field totalVolume"),
        sa.Column(
            "mean_winning_lot", sa.Double(), nullable=True, comment="API field meanWinningLot"
        ),
        sa.Column("mean_losing_lot", sa.Double(), nullable=True, comment="API field meanLosingLot"),
        sa.Column("mean_duration", sa.Double(), nullable=True, comment="API field meanDuration"),
        sa.Column("mean_sl", sa.Double(), nullable=True, comment="API field meanSL"),
        sa.Column("mean_tp", sa.Double(), nullable=True, comment="API field meanTP"),
        sa.Column(
            "max_num_consec_wins",
            sa.BigInteger(),
            nullable=True,
            comment="API field maxNumConsecWins",
        ),
        sa.Column(
            "max_num_consec_losses",
            sa.BigInteger(),
            nullable=True,
            comment="API field maxNumConsecLosses",
        ),
        sa.Column(
            "max_num_open_pos", sa.Double(), nullable=True, comment="API field maxNumOpenPos"
        ),
        sa.Column(
            "max_val_open_pos", sa.Double(), nullable=True, comment="API field maxValOpenPos"
        ),
        sa.Column(
            "num_traded_symbols",
            sa.BigInteger(),
            nullable=False,
            comment="API field numTradedSymbols",
        ),
        sa.Column(
            "most_traded_symbol", sa.Text(), nullable=True, comment="API field mostTradedSymbol"
        ),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", "account_id", name="pk_raw_metrics_daily"),
        comment="Daily metrics, one row per account per day it existed.",
        postgresql_partition_by="RANGE (date)",
    )
    op.create_table(
        "raw_metrics_hourly",
        sa.Column("login", sa.Text(), nullable=False, comment="API field login"),
        sa.Column("account_id", sa.Text(), nullable=False, comment="API field accountId"),
        sa.Column("plan_id", sa.BigInteger(), nullable=False, comment="API field planId"),
        sa.Column("trader", sa.Text(), nullable=False, comment="API field trader"),
        sa.Column("status", sa.BigInteger(), nullable=False, comment="API field status"),
        sa.Column("type", sa.BigInteger(), nullable=False, comment="API field type"),
        sa.Column("phase", sa.BigInteger(), nullable=False, comment="API field phase"),
        sa.Column("broker", sa.BigInteger(), nullable=False, comment="API field broker"),
        sa.Column("platform", sa.BigInteger(), nullable=False, comment="API field mt_version"),
        sa.Column("country", sa.Text(), nullable=True, comment="API field country"),
        sa.Column("date", sa.Date(), nullable=False, comment="API field date"),
        sa.Column("hour", sa.BigInteger(), nullable=False, comment="API field hour"),
        sa.Column(
            "starting_balance", sa.Double(), nullable=False, comment="API field startingBalance"
        ),
        sa.Column(
            "prior_days_balance", sa.Double(), nullable=False, comment="API field priorDaysBalance"
        ),
        sa.Column(
            "prior_days_equity", sa.Double(), nullable=False, comment="API field priorDaysEquity"
        ),
        sa.Column(
            "current_balance", sa.Double(), nullable=False, comment="API field currentBalance"
        ),
        sa.Column("current_equity", sa.Double(), nullable=False, comment="API field currentEquity"),
        sa.Column(
            "approved_payouts", sa.Double(), nullable=False, comment="API field approved_payouts"
        ),
        sa.Column(
            "pending_payouts", sa.Double(), nullable=False, comment="API field pending_payouts"
        ),
        sa.Column("first_trade_date", sa.Date(), nullable=True, comment="API field firstTradeDate"),
        sa.Column(
            "days_since_initial_deposit",
            sa.BigInteger(),
            nullable=False,
            comment="API field daysSinceInitialDeposit",
        ),
        sa.Column(
            "days_since_first_trade",
            sa.BigInteger(),
            nullable=False,
            comment="API field daysSinceFirstTrade",
        ),
        sa.Column("num_trades", sa.BigInteger(), nullable=False, comment="API field numTrades"),
        sa.Column("net_profit", sa.Double(), nullable=False, comment="API field netProfit"),
        sa.Column("gross_profit", sa.Double(), nullable=False, comment="API field grossProfit"),
        sa.Column("gross_loss", sa.Double(), nullable=False, comment="API field grossLoss"),
        sa.Column("profit_factor", sa.Double(), nullable=True, comment="API field profitFactor"),
        sa.Column("success_rate", sa.Double(), nullable=True, comment="API field successRate"),
        sa.Column("mean_profit", sa.Double(), nullable=True, comment="API field meanProfit"),
        sa.Column("median_profit", sa.Double(), nullable=True, comment="API field medianProfit"),
        sa.Column("std_profits", sa.Double(), nullable=True, comment="API field stdProfits"),
        sa.Column("min_profit", sa.Double(), nullable=True, comment="API field minProfit"),
        sa.Column("max_profit", sa.Double(), nullable=True, comment="API field maxProfit"),
        sa.Column("risk_adj_profit", sa.Double(), nullable=True, comment="API field riskAdjProfit"),
        sa.Column("expectancy", sa.Double(), nullable=True, comment="API field expectancy"),
        sa.Column("mean_draw_down", sa.Double(), nullable=True, comment="API field meanDrawDown"),
        sa.Column("max_draw_down", sa.Double(), nullable=True, comment="API field maxDrawDown"),
        sa.Column(
            "rel_max_draw_down", sa.Double(), nullable=True, comment="API field relMaxDrawDown"
        ),
        sa.Column("total_lots", sa.Double(), nullable=False, comment="API field totalLots"),
        sa.Column("total_volume", sa.Double(), nullable=False, comment="API field totalVolume"),
        sa.Column(
            "mean_winning_lot", sa.Double(), nullable=True, comment="API field meanWinningLot"
        ),
        sa.Column("mean_losing_lot", sa.Double(), nullable=True, comment="API field meanLosingLot"),
        sa.Column("mean_duration", sa.Double(), nullable=True, comment="API field meanDuration"),
        sa.Column("mean_sl", sa.Double(), nullable=True, comment="API field meanSL"),
        sa.Column("mean_tp", sa.Double(), nullable=True, comment="API field meanTP"),
        sa.Column(
            "max_num_consec_wins",
            sa.BigInteger(),
            nullable=True,
            comment="API field maxNumConsecWins",
        ),
        sa.Column(
            "max_num_consec_losses",
            sa.BigInteger(),
            nullable=True,
            comment="API field maxNumConsecLosses",
        ),
        sa.Column(
            "max_num_open_pos", sa.Double(), nullable=True, comment="API field maxNumOpenPos"
        ),
        sa.Column(
            "max_val_open_pos", sa.Double(), nullable=True, comment="API field maxValOpenPos"
        ),
        sa.Column(
            "num_traded_symbols",
            sa.BigInteger(),
            nullable=False,
            comment="API field numTradedSymbols",
        ),
        sa.Column(
            "most_traded_symbol", sa.Text(), nullable=True, comment="API field mostTradedSymbol"
        ),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", "account_id", "hour", name="pk_raw_metrics_hourly"),
        comment="Hourly metrics, one row per account per hour with activity.",
        postgresql_partition_by="RANGE (date)",
    )
    op.create_table(
        "raw_plans",
        sa.Column("plan_id", sa.BigInteger(), nullable=False, comment="API field planId"),
        sa.Column("type", sa.Text(), nullable=False, comment="API field type"),
        sa.Column("description", sa.Text(), nullable=True, comment="API field description"),
        sa.Column(
            "starting_balance", sa.Double(), nullable=False, comment="API field startingBalance"
        ),
        sa.Column(
            "profit_target_pct", sa.Double(), nullable=False, comment="API field profitTargetPct"
        ),
        sa.Column(
            "daily_loss_limit_pct",
            sa.Double(),
            nullable=False,
            comment="API field dailyLossLimitPct",
        ),
        sa.Column(
            "max_trailing_drawdown_pct",
            sa.Double(),
            nullable=False,
            comment="API field maxTrailingDrawdownPct",
        ),
        sa.Column("leverage", sa.BigInteger(), nullable=False, comment="API field leverage"),
        sa.Column(
            "profit_share_pct", sa.Double(), nullable=False, comment="API field profitSharePct"
        ),
        sa.Column(
            "liquidate_friday", sa.Boolean(), nullable=False, comment="API field liquidateFriday"
        ),
        sa.Column(
            "make_drawdown_static",
            sa.Boolean(),
            nullable=False,
            comment="API field makeDrawdownStatic",
        ),
        sa.Column(
            "daily_drawdown_by_balance_equity",
            sa.Boolean(),
            nullable=False,
            comment="API field dailyDrawdownByBalanceEquity",
        ),
        sa.Column(
            "enable_consistency",
            sa.Boolean(),
            nullable=False,
            comment="API field enableConsistency",
        ),
        sa.Column(
            "inactivity_period",
            sa.BigInteger(),
            nullable=True,
            comment="API field inactivityPeriod",
        ),
        sa.Column(
            "minimum_required_active_trading_days",
            sa.BigInteger(),
            nullable=True,
            comment="API field minimumRequiredActiveTradingDays",
        ),
        sa.Column("maximum_time", sa.BigInteger(), nullable=True, comment="API field maximumTime"),
        sa.Column("platform", sa.Text(), nullable=False, comment="API field platform"),
        sa.Column("broker", sa.Text(), nullable=False, comment="API field broker"),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", name="pk_raw_plans"),
        comment="Plans CSV export; the last row of a planId wins.",
    )
    op.create_table(
        "raw_quarantine",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("asset", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=True),
        sa.Column("natural_key", sa.Text(), nullable=True, comment="JSON of the raw key fields"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw_payload", sa.Text(), nullable=False, comment="the record as JSON text"),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        comment="Records rejected by the raw layer, with the reason; replaced per asset partition.",
    )
    op.create_index(
        "ix_raw_quarantine_asset_partition",
        "raw_quarantine",
        ["asset", "partition_date"],
        unique=False,
    )
    op.create_table(
        "raw_regimes_daily",
        sa.Column("date", sa.Date(), nullable=False, comment="API field date"),
        sa.Column(
            "volatility_regime", sa.Text(), nullable=False, comment="API field volatilityRegime"
        ),
        sa.Column("liquidity_state", sa.Text(), nullable=True, comment="API field liquidityState"),
        sa.Column(
            "sentiment_score", sa.Double(), nullable=True, comment="API field sentimentScore"
        ),
        sa.Column("risk_on_prob", sa.Double(), nullable=True, comment="API field riskOnProb"),
        sa.Column("risk_off_prob", sa.Double(), nullable=True, comment="API field riskOffProb"),
        sa.Column("vol_spike_prob", sa.Double(), nullable=True, comment="API field volSpikeProb"),
        sa.Column("fed_funds_rate", sa.Double(), nullable=True, comment="API field fedFundsRate"),
        sa.Column("treasury2y", sa.Double(), nullable=True, comment="API field treasury2y"),
        sa.Column("treasury10y", sa.Double(), nullable=True, comment="API field treasury10y"),
        sa.Column("instruments_json", sa.Text(), nullable=False, comment="API field instruments"),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", name="pk_raw_regimes_daily"),
        comment="Market regime, one row per calendar day.",
        postgresql_partition_by="RANGE (date)",
    )
    op.create_table(
        "raw_trades_closed",
        sa.Column("trade_date", sa.Date(), nullable=False, comment="API field tradeDate"),
        sa.Column("broker", sa.BigInteger(), nullable=False, comment="API field broker"),
        sa.Column("mngr", sa.BigInteger(), nullable=False, comment="API field mngr"),
        sa.Column("platform", sa.BigInteger(), nullable=False, comment="API field platform"),
        sa.Column("ticket", sa.Text(), nullable=False, comment="API field ticket"),
        sa.Column("position", sa.Text(), nullable=False, comment="API field position"),
        sa.Column("login", sa.Text(), nullable=False, comment="API field login"),
        sa.Column("std_symbol", sa.Text(), nullable=False, comment="API field stdSymbol"),
        sa.Column("trd_symbol", sa.Text(), nullable=True, comment="API field trdSymbol"),
        sa.Column("side", sa.Text(), nullable=False, comment="API field side"),
        sa.Column("lots", sa.Double(), nullable=False, comment="API field lots"),
        sa.Column("contract_size", sa.Double(), nullable=False, comment="API field contractSize"),
        sa.Column(
            "qty_in_base_crncy", sa.Double(), nullable=False, comment="API field qtyInBaseCrncy"
        ),
        sa.Column("volume_usd", sa.Double(), nullable=False, comment="API field volumeUSD"),
        sa.Column("stop_loss", sa.Double(), nullable=True, comment="API field stopLoss"),
        sa.Column("take_profit", sa.Double(), nullable=True, comment="API field takeProfit"),
        sa.Column(
            "open_time", sa.DateTime(timezone=True), nullable=False, comment="API field openTime"
        ),
        sa.Column("open_price", sa.Double(), nullable=False, comment="API field openPrice"),
        sa.Column(
            "close_time", sa.DateTime(timezone=True), nullable=False, comment="API field closeTime"
        ),
        sa.Column("close_price", sa.Double(), nullable=False, comment="API field closePrice"),
        sa.Column("duration", sa.Double(), nullable=False, comment="API field duration"),
        sa.Column("profit", sa.Double(), nullable=False, comment="API field profit"),
        sa.Column("commission", sa.Double(), nullable=False, comment="API field commission"),
        sa.Column("fee", sa.Double(), nullable=False, comment="API field fee"),
        sa.Column("swap", sa.Double(), nullable=False, comment="API field swap"),
        sa.Column("comment", sa.Text(), nullable=True, comment="API field comment"),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "trade_date", "broker", "platform", "position", name="pk_raw_trades_closed"
        ),
        comment="Trades closed on a trade date.",
        postgresql_partition_by="RANGE (trade_date)",
    )
    op.create_table(
        "raw_trades_open",
        sa.Column("trade_date", sa.Date(), nullable=False, comment="API field tradeDate"),
        sa.Column("broker", sa.BigInteger(), nullable=False, comment="API field broker"),
        sa.Column("mngr", sa.BigInteger(), nullable=False, comment="API field mngr"),
        sa.Column("platform", sa.BigInteger(), nullable=False, comment="API field platform"),
        sa.Column("ticket", sa.Text(), nullable=False, comment="API field ticket"),
        sa.Column("position", sa.Text(), nullable=False, comment="API field position"),
        sa.Column("login", sa.Text(), nullable=False, comment="API field login"),
        sa.Column("std_symbol", sa.Text(), nullable=False, comment="API field stdSymbol"),
        sa.Column("trd_symbol", sa.Text(), nullable=True, comment="API field trdSymbol"),
        sa.Column("side", sa.Text(), nullable=False, comment="API field side"),
        sa.Column("lots", sa.Double(), nullable=False, comment="API field lots"),
        sa.Column("contract_size", sa.Double(), nullable=False, comment="API field contractSize"),
        sa.Column(
            "qty_in_base_crncy", sa.Double(), nullable=False, comment="API field qtyInBaseCrncy"
        ),
        sa.Column("volume_usd", sa.Double(), nullable=False, comment="API field volumeUSD"),
        sa.Column("stop_loss", sa.Double(), nullable=True, comment="API field stopLoss"),
        sa.Column("take_profit", sa.Double(), nullable=True, comment="API field takeProfit"),
        sa.Column(
            "open_time", sa.DateTime(timezone=True), nullable=False, comment="API field openTime"
        ),
        sa.Column("open_price", sa.Double(), nullable=False, comment="API field openPrice"),
        sa.Column("duration", sa.Double(), nullable=False, comment="API field duration"),
        sa.Column("profit", sa.Double(), nullable=False, comment="API field profit"),
        sa.Column("commission", sa.Double(), nullable=False, comment="API field commission"),
        sa.Column("fee", sa.Double(), nullable=False, comment="API field fee"),
        sa.Column("swap", sa.Double(), nullable=False, comment="API field swap"),
        sa.Column("comment", sa.Text(), nullable=True, comment="API field comment"),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "trade_date", "broker", "platform", "position", name="pk_raw_trades_open"
        ),
        comment="Open positions at the end of a trade date (snapshot).",
        postgresql_partition_by="RANGE (trade_date)",
    )

    if op.get_bind().dialect.name == "postgresql":
        for table in RAW_TABLES:
            op.execute(
                f"ALTER TABLE {table} "
                "ALTER COLUMN _run_id SET DEFAULT current_setting('dp.run_id'), "
                "ALTER COLUMN _loaded_at SET DEFAULT "
                "CAST(current_setting('dp.loaded_at') AS timestamptz)"
            )
        op.execute(ENSURE_PARTITIONS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS dp_ensure_partitions(regclass, date, date, text)")
    op.drop_table("raw_trades_open")
    op.drop_table("raw_trades_closed")
    op.drop_table("raw_regimes_daily")
    op.drop_index("ix_raw_quarantine_asset_partition", table_name="raw_quarantine")
    op.drop_table("raw_quarantine")
    op.drop_table("raw_plans")
    op.drop_table("raw_metrics_hourly")
    op.drop_table("raw_metrics_daily")
    op.drop_table("raw_metrics_alltime")
    op.drop_index("ix_partition_loads_table_partition", table_name="partition_loads")
    op.drop_table("partition_loads")
