"""Tables the graph derives from the raw layer: staging, features, labels, predictions.

Their columns come from the pure packages' own schemas (``STAGING_SCHEMA``, the feature
catalog, ``LABEL_SCHEMA``, the prediction schemas), so the computation and the table cannot
drift apart silently: a changed schema fails ``test_migrations`` until a migration follows it.
They are written through the same ``Warehouse.replace_partitions`` as the raw tables.
"""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa

from daily_profit.features.catalog import output_schema as feature_schema
from daily_profit.features.labels import LABEL_SCHEMA
from daily_profit.features.staging import STAGING_SCHEMA
from daily_profit.warehouse.tables import LOADED_AT, RUN_ID, metadata


def _sa_type(dtype: pl.DataType) -> sa.types.TypeEngine:
    if dtype == pl.Date:
        return sa.Date()
    if isinstance(dtype, pl.Datetime):
        return sa.DateTime(timezone=True)
    if dtype == pl.Boolean:
        return sa.Boolean()
    if dtype.is_integer():
        return sa.BigInteger()
    if dtype.is_float():
        return sa.Double()
    return sa.Text()


def derived_table(
    name: str,
    schema: pl.Schema,
    *,
    key: tuple[str, ...],
    description: str,
    partition_column: str = "date",
) -> sa.Table:
    """A daily table whose business columns are ``schema``; key columns are NOT NULL."""
    columns = [
        sa.Column(column, _sa_type(dtype), nullable=column not in key)
        for column, dtype in schema.items()
    ]
    columns += [
        sa.Column(RUN_ID, sa.Text(), nullable=False),
        sa.Column(LOADED_AT, sa.DateTime(timezone=True), nullable=False),
    ]
    return sa.Table(
        name,
        metadata,
        *columns,
        sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
        comment=description,
        info={"partition_column": partition_column, "natural_key": key, "source": name},
        postgresql_partition_by=f"RANGE ({partition_column})",
    )


stg_accounts_daily = derived_table(
    "stg_accounts_daily",
    STAGING_SCHEMA,
    key=("date", "account_id"),
    description="Point-in-time state of each live funded account per day.",
)

account_features_daily = derived_table(
    "account_features_daily",
    feature_schema(),
    key=("date", "account_id", "feature_set_version"),
    description="Features of each live funded account-day from data dated that day or earlier.",
)

labels_next_day = derived_table(
    "labels_next_day",
    LABEL_SCHEMA,
    key=("date", "account_id"),
    description="For feature day D: the account's net profit and breach on D+1.",
)

DERIVED_TABLES = (stg_accounts_daily, account_features_daily, labels_next_day)
