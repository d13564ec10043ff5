"""Labels follow the trading calendar: ``labels_next_day`` becomes ``labels_next_session``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

The label of session D is now the account's P&L over its target span (the day after D up to and
including the next session), not over the next calendar day. The old rows mean something else,
so the table is not renamed with its rows: ``labels_next_day`` is dropped with its partitions'
load records and ``labels_next_session`` created empty (labels are derived from the raw layer;
the next run of the asset rebuilds them).

``daily_predictions`` and ``prediction_outcomes`` gain ``target_start`` and ``target_end``, the
span each prediction is for. Rows made before are records of what was predicted then: a
prediction of the next calendar day, so both columns are set to D + 1 for them (and outcomes
are matched with a label only when their spans agree).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPAN_TABLES = ("daily_predictions", "prediction_outcomes")
SPAN_COLUMNS = ("target_start", "target_end")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _run_defaults(table: str) -> None:
    # COPY sends only the business columns: the bookkeeping ones come from the session (0001).
    if _postgres():
        op.execute(
            f"ALTER TABLE {table} "
            "ALTER COLUMN _run_id SET DEFAULT current_setting('dp.run_id'), "
            "ALTER COLUMN _loaded_at SET DEFAULT "
            "CAST(current_setting('dp.loaded_at') AS timestamptz)"
        )


def _forget_loads(table: str) -> None:
    """The dropped table's partition load records (row counts, checksums) describe rows that
    are gone."""
    op.execute(sa.text("DELETE FROM partition_loads WHERE table_name = :t").bindparams(t=table))


def _labels_table(name: str, *, next_session: bool) -> None:
    if next_session:
        columns = [
            sa.Column("target_start", sa.Date(), nullable=True),
            sa.Column("target_end", sa.Date(), nullable=True),
            sa.Column("label_status", sa.Text(), nullable=True),
            sa.Column("label_available", sa.Boolean(), nullable=True),
            sa.Column("net_profit_next_session", sa.Double(), nullable=True),
            sa.Column("breached_next_session", sa.Boolean(), nullable=True),
            sa.Column("breach_by_rules", sa.Boolean(), nullable=True),
            sa.Column("eod_equity_next_session", sa.Double(), nullable=True),
        ]
        comment = (
            "For each trading session D: the account's net profit and breach over D's target "
            "span, from the day after D up to and including the next session."
        )
    else:
        columns = [
            sa.Column("label_date", sa.Date(), nullable=True),
            sa.Column("label_status", sa.Text(), nullable=True),
            sa.Column("label_available", sa.Boolean(), nullable=True),
            sa.Column("next_day_net_profit", sa.Double(), nullable=True),
            sa.Column("next_day_breached", sa.Boolean(), nullable=True),
            sa.Column("breach_by_rules", sa.Boolean(), nullable=True),
            sa.Column("next_day_eod_equity", sa.Double(), nullable=True),
        ]
        comment = "For feature day D: the account's net profit and breach on D+1."
    op.create_table(
        name,
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("account_id", sa.Text(), nullable=False),
        *columns,
        sa.Column("_run_id", sa.Text(), nullable=False),
        sa.Column("_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("date", "account_id", name=f"pk_{name}"),
        comment=comment,
        info={
            "partition_column": "date",
            "natural_key": ("date", "account_id"),
            "source": name,
        },
        postgresql_partition_by="RANGE (date)",
    )
    _run_defaults(name)


def _drop_partitioned(name: str) -> None:
    # On PostgreSQL the day/month partitions are tables of their own: CASCADE drops them too.
    if _postgres():
        op.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
    else:
        op.drop_table(name)
    _forget_loads(name)


def upgrade() -> None:
    _drop_partitioned("labels_next_day")
    _labels_table("labels_next_session", next_session=True)
    for table in SPAN_TABLES:
        for column in SPAN_COLUMNS:
            op.add_column(table, sa.Column(column, sa.Date(), nullable=True))
        next_day = (
            "date + 1" if _postgres() else "date(date, '+1 day')"
        )  # what the rows made before predicted: the next calendar day
        op.execute(f"UPDATE {table} SET target_start = {next_day}, target_end = {next_day}")


def downgrade() -> None:
    for table in SPAN_TABLES:
        if _postgres():
            for column in SPAN_COLUMNS:
                op.drop_column(table, column)
        else:
            with op.batch_alter_table(table, recreate="always") as batch:
                for column in SPAN_COLUMNS:
                    batch.drop_column(column)
    _drop_partitioned("labels_next_session")
    _labels_table("labels_next_day", next_session=False)
