"""Predictions are records: a restated day gets new rows beside the ones made before.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

``daily_predictions`` gains ``restatement`` (0 for a day's first scoring by a model version, 1,
2, ... for each rescoring after its inputs changed) and it joins the primary key.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = ["date", "account_id", "model_version"]
NEW_KEY = [*OLD_KEY, "restatement"]


def _rekey(key: list[str], add: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        if add:
            op.add_column(
                "daily_predictions",
                sa.Column("restatement", sa.BigInteger(), nullable=False, server_default="0"),
            )
            op.alter_column("daily_predictions", "restatement", server_default=None)
        op.drop_constraint("pk_daily_predictions", "daily_predictions", type_="primary")
        op.create_primary_key("pk_daily_predictions", "daily_predictions", key)
        if not add:
            op.drop_column("daily_predictions", "restatement")
        return
    with op.batch_alter_table("daily_predictions", recreate="always") as batch:
        if add:
            batch.add_column(
                sa.Column("restatement", sa.BigInteger(), nullable=False, server_default="0")
            )
        batch.drop_constraint("pk_daily_predictions", type_="primary")
        batch.create_primary_key("pk_daily_predictions", key)
        if not add:
            batch.drop_column("restatement")
    if add:
        with op.batch_alter_table("daily_predictions", recreate="always") as batch:
            batch.alter_column("restatement", server_default=None)


def upgrade() -> None:
    _rekey(NEW_KEY, add=True)


def downgrade() -> None:
    op.execute(
        "DELETE FROM daily_predictions WHERE restatement > 0"
    )  # the key without it holds one row per version
    _rekey(OLD_KEY, add=False)
