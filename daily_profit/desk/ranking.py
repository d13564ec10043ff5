"""The accounts ranked by risk for the next session, and what changed since yesterday.

Risk order: the breach probability first (the chance of losing the account), then the lower
end of the 90% interval (``p05``: how much it can lose on a bad day), the lowest first. The
top ``n`` of day D is compared with the top ``n`` of D-1: an account is ``new`` in the top,
``up`` / ``down`` (moved), ``unchanged``, or ``left`` it; each change carries its reason in
the desk's words, from the predictions and their drivers (the features that move the
account's expected P&L most, with their USD contributions).
"""

from __future__ import annotations

import polars as pl

from daily_profit.modeling.scoring import N_DRIVERS

RANK_ORDER = (pl.col("breach_probability"), pl.col("p05"))
RANKED_COLUMNS = (
    "rank",
    "account_id",
    "trader",
    "breach_probability",
    "p05",
    "expected_net_profit",
    "p95",
    "risk_score",
    "drivers",
)
CHANGE_SCHEMA = pl.Schema(
    {
        "account_id": pl.String(),
        "trader": pl.String(),
        "change": pl.String(),
        "rank": pl.Int64(),
        "previous_rank": pl.Int64(),
        "breach_probability": pl.Float64(),
        "previous_breach_probability": pl.Float64(),
        "p05": pl.Float64(),
        "previous_p05": pl.Float64(),
        "reason": pl.String(),
    }
)


def drivers_text() -> pl.Expr:
    """The drivers of a prediction as one text: ``feature (+1,234 USD); ...``."""
    parts = []
    for j in range(1, N_DRIVERS + 1):
        feature, contribution = pl.col(f"driver_{j}_feature"), pl.col(f"driver_{j}_contribution")
        parts.append(
            pl.when(feature.is_not_null()).then(
                pl.format(
                    "{} ({} USD)",
                    feature,
                    pl.when(contribution >= 0).then(pl.lit("+")).otherwise(pl.lit(""))
                    + contribution.round(0).cast(pl.Int64).cast(pl.String),
                )
            )
        )
    return pl.concat_str(parts, separator="; ", ignore_nulls=True).alias("drivers")


def ranked(predictions: pl.DataFrame) -> pl.DataFrame:
    """Every account of one day in risk order, ``rank`` 1 the riskiest, with its drivers."""
    ordered = predictions.sort(*RANK_ORDER, descending=[True, False], nulls_last=True)
    return ordered.with_columns(
        pl.int_range(1, ordered.height + 1, dtype=pl.Int64).alias("rank"), drivers_text()
    )


def _reason(row: dict) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100.0 * v:.1f}%"

    def usd(v: float | None) -> str:
        return "n/a" if v is None else f"{v:,.0f}"

    change = row["change"]
    moves = (
        f"breach {pct(row['previous_breach_probability'])} -> {pct(row['breach_probability'])}, "
        f"p05 {usd(row['previous_p05'])} -> {usd(row['p05'])} USD"
    )
    if change == "left" and row["breach_probability"] is None:
        return "not scored today (no longer a live funded account: breached, paid out or gone)"
    drivers = row.get("drivers")
    if change == "new" and row["previous_breach_probability"] is None:
        moves = (
            f"first scored today: breach {pct(row['breach_probability'])}, "
            f"p05 {usd(row['p05'])} USD"
        )
    return f"{moves}; drivers: {drivers}" if drivers else moves


def changes(today: pl.DataFrame, yesterday: pl.DataFrame, top_n: int) -> pl.DataFrame:
    """What changed in the top ``top_n`` between yesterday's ranking and today's
    (both from ``ranked``): one row per account in either top, with its reason."""
    cols = ["account_id", "trader", "rank", "breach_probability", "p05", "drivers"]
    now = today.select([c for c in cols if c in today.columns])
    before = yesterday.select(
        "account_id",
        (pl.col("trader") if "trader" in yesterday.columns else pl.lit(None, dtype=pl.String))
        .cast(pl.String)
        .alias("previous_trader"),
        pl.col("rank").alias("previous_rank"),
        pl.col("breach_probability").alias("previous_breach_probability"),
        pl.col("p05").alias("previous_p05"),
    )
    if "trader" not in now.columns:
        now = now.with_columns(pl.lit(None, dtype=pl.String).alias("trader"))
    both = now.join(before, on="account_id", how="full", coalesce=True).with_columns(
        pl.coalesce(pl.col("trader").cast(pl.String), "previous_trader").alias("trader")
    )
    in_top = pl.col("rank").is_not_null() & (pl.col("rank") <= top_n)
    was_top = pl.col("previous_rank").is_not_null() & (pl.col("previous_rank") <= top_n)
    change = (
        pl.when(in_top & ~was_top)
        .then(pl.lit("new"))
        .when(~in_top & was_top)
        .then(pl.lit("left"))
        .when(pl.col("rank") < pl.col("previous_rank"))
        .then(pl.lit("up"))
        .when(pl.col("rank") > pl.col("previous_rank"))
        .then(pl.lit("down"))
        .otherwise(pl.lit("unchanged"))
    )
    rows = both.filter(in_top | was_top).with_columns(change.alias("change"))
    reasons = [_reason(r) for r in rows.iter_rows(named=True)]
    out = rows.with_columns(pl.Series("reason", reasons, dtype=pl.String))
    order = pl.col("change").replace_strict(
        {"new": 0, "up": 1, "down": 2, "left": 3, "unchanged": 4}, return_dtype=pl.Int64
    )
    return (
        out.sort(order, pl.col("rank"), pl.col("previous_rank"), nulls_last=True)
        .select(CHANGE_SCHEMA.names())
        .cast(dict(CHANGE_SCHEMA))
    )
