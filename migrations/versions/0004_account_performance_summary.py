"""The desk's account performance summary.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

One row per funded account: lifetime and recent (5 and 20 days up to the latest reported day)
net profit, win rate over active days, worst drawdown of end-of-day equity from its running
peak, and today's distance to the daily loss limit and to the drawdown floor (from the latest
staging row). PostgreSQL: a MATERIALIZED VIEW with a unique index, refreshed CONCURRENTLY by
the ``account_performance_summary`` asset after the features, so the desk can read it while it
refreshes. SQLite: a plain view over the same query (always current, nothing to refresh).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# {recent_5} / {recent_20}: "the day is within the last N days of the latest reported day",
# the one piece of date arithmetic the two engines spell differently.
SUMMARY_QUERY = """
WITH latest AS (SELECT MAX(date) AS last_day FROM raw_metrics_daily),
daily AS (
    SELECT account_id, date, net_profit, num_trades, current_equity,
           current_equity - MAX(current_equity) OVER (
               PARTITION BY account_id ORDER BY date ROWS UNBOUNDED PRECEDING
           ) AS drawdown_usd
    FROM raw_metrics_daily
),
performance AS (
    SELECT d.account_id,
           COUNT(*) AS days_reported,
           MAX(d.date) AS last_reported_day,
           SUM(d.net_profit) AS lifetime_net_profit,
           SUM(CASE WHEN {recent_5} THEN d.net_profit ELSE 0 END) AS net_profit_5d,
           SUM(CASE WHEN {recent_20} THEN d.net_profit ELSE 0 END) AS net_profit_20d,
           SUM(CASE WHEN d.num_trades > 0 THEN 1 ELSE 0 END) AS active_days,
           AVG(CASE WHEN d.num_trades > 0
                    THEN CASE WHEN d.net_profit > 0 THEN 1.0 ELSE 0.0 END END) AS win_rate,
           MIN(d.drawdown_usd) AS worst_drawdown_usd
    FROM daily d CROSS JOIN latest l
    GROUP BY d.account_id
),
state AS (
    SELECT account_id, date AS state_day, plan_id, eod_equity, hwm_equity,
           dist_daily_loss_usd, dist_daily_loss_pct, dist_drawdown_usd, dist_drawdown_pct,
           ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY date DESC) AS newest
    FROM stg_accounts_daily
)
SELECT p.account_id, s.state_day, s.plan_id, p.days_reported, p.last_reported_day,
       p.lifetime_net_profit, p.net_profit_5d, p.net_profit_20d, p.active_days, p.win_rate,
       p.worst_drawdown_usd, s.eod_equity, s.hwm_equity, s.dist_daily_loss_usd,
       s.dist_daily_loss_pct, s.dist_drawdown_usd, s.dist_drawdown_pct
FROM performance p
JOIN state s ON s.account_id = p.account_id AND s.newest = 1
"""

POSTGRES = SUMMARY_QUERY.format(
    recent_5="d.date > l.last_day - 5", recent_20="d.date > l.last_day - 20"
)
SQLITE = SUMMARY_QUERY.format(
    recent_5="d.date > date(l.last_day, '-5 days')",
    recent_20="d.date > date(l.last_day, '-20 days')",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE MATERIALIZED VIEW account_performance_summary AS {POSTGRES}")
        # REFRESH ... CONCURRENTLY needs a unique index.
        op.execute(
            "CREATE UNIQUE INDEX ux_account_performance_summary "
            "ON account_performance_summary (account_id)"
        )
    else:
        op.execute(f"CREATE VIEW account_performance_summary AS {SQLITE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP MATERIALIZED VIEW IF EXISTS account_performance_summary")
    else:
        op.execute("DROP VIEW IF EXISTS account_performance_summary")
