"""Optional fields per record kind: hourly and alltime rows carry only what the contract requires.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

The contract's paragraph "Which record kind must carry which field": hourly rows must carry the
identity fields, ``date``, ``hour``, ``numTrades`` and ``netProfit``; alltime rows the identity
fields, ``startingBalance``, ``currentBalance``, ``currentEquity``, ``numTrades`` and
``netProfit``. Every other balance, payout, day-counter and statistics column of those two tables
becomes nullable (the source specs in ``daily_profit/warehouse/records.py`` say the same). SQLite
rebuilds the tables (batch mode); PostgreSQL drops NOT NULL on the partitioned parent, which
every partition follows.

Downgrade restores NOT NULL and so fails while a row holds a null in one of these columns: the
data, not the schema, would have to give.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DOUBLE, _BIGINT = sa.Double(), sa.BigInteger()

# Columns required on daily rows but optional on hourly rows, with their API field.
HOURLY_OPTIONAL: tuple[tuple[str, sa.types.TypeEngine, str], ...] = (
    ("starting_balance", _DOUBLE, "startingBalance"),
    ("prior_days_balance", _DOUBLE, "priorDaysBalance"),
    ("prior_days_equity", _DOUBLE, "priorDaysEquity"),
    ("current_balance", _DOUBLE, "currentBalance"),
    ("current_equity", _DOUBLE, "currentEquity"),
    ("approved_payouts", _DOUBLE, "approved_payouts"),
    ("pending_payouts", _DOUBLE, "pending_payouts"),
    ("days_since_initial_deposit", _BIGINT, "daysSinceInitialDeposit"),
    ("days_since_first_trade", _BIGINT, "daysSinceFirstTrade"),
    ("gross_profit", _DOUBLE, "grossProfit"),
    ("gross_loss", _DOUBLE, "grossLoss"),
    ("total_lots", _DOUBLE, "totalLots"),
    ("total_volume", _DOUBLE, "totalVolume"),
    ("num_traded_symbols", _BIGINT, "numTradedSymbols"),
)

# The same for alltime rows, which keep their starting and current balance and equity.
_ALLTIME_KEEPS = {"starting_balance", "current_balance", "current_equity"}
ALLTIME_OPTIONAL = tuple(c for c in HOURLY_OPTIONAL if c[0] not in _ALLTIME_KEEPS)

TABLES = (("raw_metrics_hourly", HOURLY_OPTIONAL), ("raw_metrics_alltime", ALLTIME_OPTIONAL))


def _set_nullable(nullable: bool) -> None:
    for table, columns in TABLES:
        with op.batch_alter_table(table) as batch:
            for column, type_, api in columns:
                batch.alter_column(
                    column,
                    existing_type=type_,
                    existing_comment=f"API field {api}",
                    nullable=nullable,
                )


def upgrade() -> None:
    _set_nullable(True)


def downgrade() -> None:
    _set_nullable(False)
