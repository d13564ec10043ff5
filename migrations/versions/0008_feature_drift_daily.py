"""Feature drift per day: each feature of day D against the champion's training reference.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

From daily_profit/warehouse/derived.py (``feature_drift_daily``), plus the PostgreSQL
``_run_id`` / ``_loaded_at`` defaults that COPY relies on (as in 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feature_drift_daily",
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("feature", sa.Text(), nullable=False),
        sa.Column("psi", sa.Double(), nullable=True),
        sa.Column("training_day_psi", sa.Double(), nullable=True),
        sa.Column("excess_psi", sa.Double(), nullable=True),
        sa.Column("ks", sa.Double(), nullable=True),
        sa.Column("importance", sa.Double(), nullable=True),
        sa.Column("level", sa.Text(), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", "model_version", "feature", name="pk_feature_drift_daily"),
        comment="Each feature's drift on day D against the champion's training reference.",
        info={
            "partition_column": "date",
            "natural_key": ("date", "model_version", "feature"),
            "source": "feature_drift_daily",
        },
        postgresql_partition_by="RANGE (date)",
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE feature_drift_daily "
            "ALTER COLUMN _run_id SET DEFAULT current_setting('dp.run_id'), "
            "ALTER COLUMN _loaded_at SET DEFAULT "
            "CAST(current_setting('dp.loaded_at') AS timestamptz)"
        )


def downgrade() -> None:
    op.drop_table("feature_drift_daily")
