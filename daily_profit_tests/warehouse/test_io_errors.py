"""Warehouse errors name the statement, never the values bound to it (identities, amounts)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from daily_profit.warehouse.io import create_warehouse_engine

LOGIN = "5100038"
TRADER = "TR678052"


def test_an_integrity_error_does_not_show_the_bound_values(warehouse_url) -> None:
    engine = create_warehouse_engine(warehouse_url)
    table = sa.Table(
        "dp_probe_accounts",
        sa.MetaData(),
        sa.Column("row_id", sa.Integer, primary_key=True),
        sa.Column("login", sa.String),
        sa.Column("trader", sa.String),
    )
    try:
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert(), {"row_id": 1, "login": LOGIN, "trader": TRADER})
        with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
            conn.execute(table.insert(), {"row_id": 1, "login": LOGIN, "trader": TRADER})
        message = str(caught.value)
        assert "dp_probe_accounts" in message  # the statement is still there to debug with
        assert "parameters hidden" in message
        assert LOGIN not in message and TRADER not in message
    finally:
        with engine.begin() as conn:
            table.drop(conn, checkfirst=True)
        engine.dispose()
