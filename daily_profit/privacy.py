"""Trader identities never leave the warehouse in the clear.

Previews, Dagster metadata, logs and MLflow input examples show logins, trader ids and account ids
as short keyed hashes (HMAC-SHA256 under ``DAILY_PROFIT_IDENTITY_HASH_KEY``): stable (the same
login masks the same in every run and every process that shares the key, so rows can still be
matched by eye) but not reversible by whoever sees them. A bare SHA-256 would not do: logins are
short numbers, and a loop over every seven-digit number reverses it in seconds.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import polars as pl

from daily_profit.config import get_settings

# Previews are a handful of rows, so hashing in Python is cheap and, unlike polars' hash, stable
# across library versions.

IDENTITY_COLUMNS = frozenset({"login", "trader", "account_id", "accountId", "ticket", "position"})
MASK_PREFIX = "h:"
# 40 bits: enough to tell a desk's accounts apart by eye; the key, not the length, protects them.
MASK_HEX_DIGITS = 10


def mask_identities(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every identity column replaced by its keyed hash such as ``h:3f9a0c1be2``."""
    masked = [
        pl.col(name)
        .cast(pl.String)
        .map_elements(mask_value, return_dtype=pl.String, skip_nulls=True)
        .alias(name)
        for name in frame.columns
        if name in IDENTITY_COLUMNS
    ]
    return frame.with_columns(masked) if masked else frame


def mask_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record (a natural key, a conflict's description) with its identity fields masked."""
    return {
        name: mask_value(str(value)) if name in IDENTITY_COLUMNS and value is not None else value
        for name, value in record.items()
    }


def mask_value(value: str) -> str:
    """One identity as its stable keyed hash (HMAC-SHA256 under the settings' identity key)."""
    key = get_settings().identity_hash_key.get_secret_value().encode()
    digest = hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()
    return MASK_PREFIX + digest[:MASK_HEX_DIGITS]
