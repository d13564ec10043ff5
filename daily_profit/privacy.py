"""Trader identities never leave the warehouse in the clear.

Previews, Dagster metadata and MLflow input examples show logins, trader ids and account ids as
short one-way hashes: stable (the same login hashes the same everywhere, so rows can still be
matched by eye) but not reversible without the original list.
"""

from __future__ import annotations

import hashlib

import polars as pl

# Previews are a handful of rows, so hashing in Python is cheap and, unlike polars' hash, stable
# across library versions.

IDENTITY_COLUMNS = frozenset({"login", "trader", "account_id", "accountId", "ticket", "position"})


def mask_identities(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every identity column replaced by a stable hash such as ``h:3f9a0c1be2``."""
    masked = [
        pl.col(name)
        .cast(pl.String)
        .map_elements(mask_value, return_dtype=pl.String, skip_nulls=True)
        .alias(name)
        for name in frame.columns
        if name in IDENTITY_COLUMNS
    ]
    return frame.with_columns(masked) if masked else frame


def mask_value(value: str) -> str:
    """One identity as its stable short hash."""
    return "h:" + hashlib.sha256(value.encode()).hexdigest()[:10]
