"""Null accountIds, resolved as the contract says.

A metrics row may come without its ``accountId``. The platform then uses the known id of the same
``login, mt_version, broker`` (from other rows of the same answer, or the account master already
in the warehouse); where none is known, a stable id derived from the three, so the same account
gets the same id on every run and the derivation is recognisable (``derived:`` prefix).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

IDENTITY = ("login", "platform", "broker")


@dataclass(frozen=True)
class Resolution:
    """How many null account ids were filled, and from where."""

    from_known: int
    derived: int


def derived_account_id(login: str, platform: int, broker: int) -> str:
    digest = hashlib.sha256(f"{login}|{platform}|{broker}".encode()).hexdigest()[:16]
    return f"derived:{digest}"


def resolve_account_ids(
    frame: pl.DataFrame, known: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, Resolution]:
    """Fill null ``account_id``s; ``known`` maps (login, platform, broker) to account_id."""
    missing = frame["account_id"].is_null()
    n_missing = int(missing.sum())
    if n_missing == 0:
        return frame, Resolution(0, 0)
    sources = [frame.filter(~missing).select(*IDENTITY, "account_id")]
    if known is not None and known.height:
        sources.append(known.select(*IDENTITY, "account_id"))
    lookup = (
        pl.concat(sources, how="vertical_relaxed")
        .unique(subset=list(IDENTITY), keep="first", maintain_order=True)
        .rename({"account_id": "_known_id"})
    )
    resolved = frame.join(lookup, on=list(IDENTITY), how="left", maintain_order="left")
    from_known = int((missing & resolved["_known_id"].is_not_null()).sum())
    still_missing = resolved.filter(pl.col("account_id").is_null() & pl.col("_known_id").is_null())
    derived = {
        (row["login"], row["platform"], row["broker"]): derived_account_id(
            row["login"], row["platform"], row["broker"]
        )
        for row in still_missing.select(IDENTITY).unique().iter_rows(named=True)
    }
    derived_frame = pl.DataFrame(
        {
            "login": [k[0] for k in derived],
            "platform": [k[1] for k in derived],
            "broker": [k[2] for k in derived],
            "_derived_id": list(derived.values()),
        },
        schema={
            "login": frame.schema["login"],
            "platform": frame.schema["platform"],
            "broker": frame.schema["broker"],
            "_derived_id": pl.String,
        },
    )
    resolved = (
        resolved.join(derived_frame, on=list(IDENTITY), how="left", maintain_order="left")
        .with_columns(pl.coalesce("account_id", "_known_id", "_derived_id").alias("account_id"))
        .drop("_known_id", "_derived_id")
    )
    return resolved, Resolution(from_known=from_known, derived=n_missing - from_known)
