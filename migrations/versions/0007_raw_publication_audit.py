"""Raw publication audit: one row per attempt to land a raw partition, and what became of it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Write, audit, publish: an attempt whose blocking checks fail does not replace the published
rows; this table records every attempt (published, waived, withheld or kept_published) with the
checks that failed, and is what the downstream layers read to skip a day that never passed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "raw_publication_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("partition_date", sa.Date(), nullable=True),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("api_total", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("quarantined_rows", sa.BigInteger(), nullable=False),
        sa.Column(
            "failed_checks", sa.Text(), nullable=False, comment="JSON list of check summaries"
        ),
        sa.Column("waiver_reason", sa.Text(), nullable=True),
        sa.Column("checksum", sa.Text(), nullable=True, comment="of the rows the attempt fetched"),
        sa.PrimaryKeyConstraint("id"),
        comment="One row per attempt to land a raw partition: whether its audit let it replace "
        "the published rows, and what failed.",
    )
    op.create_index(
        "ix_raw_publication_audit_table_partition",
        "raw_publication_audit",
        ["table_name", "partition_date", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_raw_publication_audit_table_partition", "raw_publication_audit")
    op.drop_table("raw_publication_audit")
