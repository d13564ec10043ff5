"""The columns of every warehouse-backed asset, as the UI's catalog shows them.

Each asset that a warehouse table holds publishes ``dagster/column_schema``: the table's
business columns with their type, whether they may be null, and what they mean (the API field
for raw tables, the feature catalog's description for features, the desk's tables' own
meanings beside their definitions). Built from the table definitions, so the columns cannot
drift from what is stored.
"""

import dagster as dg
import sqlalchemy as sa

from daily_profit.defs.asset_keys import FEATURE_DRIFT
from daily_profit.features.catalog import catalog
from daily_profit.warehouse.derived import (
    COLUMN_DESCRIPTIONS,
    account_features_daily,
    feature_drift_daily,
)
from daily_profit.warehouse.tables import META_COLUMNS, metadata

COLUMN_SCHEMA_KEY = "dagster/column_schema"
# Assets whose table is named otherwise than the asset.
TABLE_OF_ASSET: dict[dg.AssetKey, str] = {FEATURE_DRIFT: feature_drift_daily.name}


def _descriptions() -> dict[str, str]:
    return {f.name: f"{f.description} ({f.unit})" if f.unit else f.description for f in catalog()}


def column_schema(table: sa.Table) -> dg.TableSchema:
    meanings = (
        _descriptions()
        if table.name == account_features_daily.name
        else COLUMN_DESCRIPTIONS.get(table.name, {})
    )
    key = set(table.info.get("natural_key", ()))
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=str(column.type).lower(),
                description=meanings.get(column.name) or column.comment,
                constraints=dg.TableColumnConstraints(
                    nullable=bool(column.nullable),
                    unique=False,
                    other=["part of the natural key"] if column.name in key else [],
                ),
            )
            for column in table.columns
            if column.name not in META_COLUMNS
        ]
    )


def with_column_schema(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The asset, when its key names a warehouse table, with that table's column schema."""
    table = metadata.tables.get(TABLE_OF_ASSET.get(spec.key, spec.key.to_user_string()))
    if table is None:
        return spec
    return spec.merge_attributes(metadata={COLUMN_SCHEMA_KEY: column_schema(table)})
