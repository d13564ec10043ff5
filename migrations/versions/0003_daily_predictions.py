"""Daily predictions: one row per account, feature day and model version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Generated from daily_profit/warehouse/derived.py with ``alembic revision --autogenerate``,
plus the PostgreSQL ``_run_id`` / ``_loaded_at`` defaults that COPY relies on (as in 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daily_predictions",
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("model_role", sa.Text(), nullable=True),
        sa.Column("feature_set_version", sa.Text(), nullable=True),
        sa.Column("expected_net_profit", sa.Double(), nullable=True),
        sa.Column("p05", sa.Double(), nullable=True),
        sa.Column("p50", sa.Double(), nullable=True),
        sa.Column("p95", sa.Double(), nullable=True),
        sa.Column("breach_probability", sa.Double(), nullable=True),
        sa.Column("risk_score", sa.Double(), nullable=True),
        sa.Column("driver_1_feature", sa.Text(), nullable=True),
        sa.Column("driver_1_contribution", sa.Double(), nullable=True),
        sa.Column("driver_2_feature", sa.Text(), nullable=True),
        sa.Column("driver_2_contribution", sa.Double(), nullable=True),
        sa.Column("driver_3_feature", sa.Text(), nullable=True),
        sa.Column("driver_3_contribution", sa.Double(), nullable=True),
        sa.Column("drivers_method", sa.Text(), nullable=True),
        sa.Column("in_sample", sa.Boolean(), nullable=True),
        sa.Column("history_days", sa.BigInteger(), nullable=True),
        sa.Column("scored_run_id", sa.Text(), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", "account_id", "model_version", name="pk_daily_predictions"),
        comment="Next-day P&L predictions per account, feature day and model version.",
        info={
            "partition_column": "date",
            "natural_key": ("date", "account_id", "model_version"),
            "source": "daily_predictions",
        },
        postgresql_partition_by="RANGE (date)",
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE daily_predictions "
            "ALTER COLUMN _run_id SET DEFAULT current_setting('dp.run_id'), "
            "ALTER COLUMN _loaded_at SET DEFAULT "
            "CAST(current_setting('dp.loaded_at') AS timestamptz)"
        )


def downgrade() -> None:
    op.drop_table("daily_predictions")
