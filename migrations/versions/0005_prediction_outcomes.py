"""Prediction outcomes: each prediction of feature day D against what happened on D+1.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Generated from daily_profit/warehouse/derived.py with ``alembic revision --autogenerate``,
plus the PostgreSQL ``_run_id`` / ``_loaded_at`` defaults that COPY relies on (as in 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction_outcomes",
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("model_role", sa.Text(), nullable=True),
        sa.Column("expected_net_profit", sa.Double(), nullable=True),
        sa.Column("p05", sa.Double(), nullable=True),
        sa.Column("p95", sa.Double(), nullable=True),
        sa.Column("breach_probability", sa.Double(), nullable=True),
        sa.Column("realised_net_profit", sa.Double(), nullable=True),
        sa.Column("realised_breach", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Double(), nullable=True),
        sa.Column("covered", sa.Boolean(), nullable=True),
        sa.Column("new_account", sa.Boolean(), nullable=True),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "date", "account_id", "model_version", name="pk_prediction_outcomes"
        ),
        comment="Each prediction of feature day D against what happened on D+1.",
        info={
            "partition_column": "date",
            "natural_key": ("date", "account_id", "model_version"),
            "source": "prediction_outcomes",
        },
        postgresql_partition_by="RANGE (date)",
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE prediction_outcomes "
            "ALTER COLUMN _run_id SET DEFAULT current_setting('dp.run_id'), "
            "ALTER COLUMN _loaded_at SET DEFAULT "
            "CAST(current_setting('dp.loaded_at') AS timestamptz)"
        )


def downgrade() -> None:
    op.drop_table("prediction_outcomes")
