"""The predictions and outcomes tables say in their comments that they are about sessions.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Since 0010 a prediction of session D is for its target span (the day after D up to and
including the next session), not for D+1; the table comments the catalog shows say so.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENTS = {
    "daily_predictions": (
        "Predictions of the P&L to the next session per account, session and model version.",
        "Next-day P&L predictions per account, feature day and model version.",
    ),
    "prediction_outcomes": (
        "Each prediction of session D against what happened over its target span.",
        "Each prediction of feature day D against what happened on D+1.",
    ),
}


def _comment(new: bool) -> None:
    # SQLite keeps no table comments: only PostgreSQL has anything to change.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, (session, next_day) in COMMENTS.items():
        op.create_table_comment(table, session if new else next_day)


def upgrade() -> None:
    _comment(new=True)


def downgrade() -> None:
    _comment(new=False)
