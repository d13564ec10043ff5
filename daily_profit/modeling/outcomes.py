"""Realised against predicted: what each model version said about the target span of session D
(the day after D up to the next session), and what happened.

Pure polars and the evaluation metrics; the ``prediction_outcomes`` and ``model_performance``
assets call these once the span has been ingested (its label is available). A prediction is
matched only with the label of the span it was made for, so a prediction recorded for another
span (e.g. a calendar-day prediction made before labels followed the trading calendar) is left
out rather than scored against a different outcome.

Metrics are reported on all rows and on the rows with a non-zero outcome (``nonzero_``): a
span without trading is an easy zero that pads RMSE and coverage.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from daily_profit.modeling.evaluate import (
    brier,
    coverage,
    direction_accuracy,
    interval_score,
)

# Accounts with fewer days of history than this are reported apart: their predictions lean on
# what the model learned from others.
NEW_ACCOUNT_DAYS = 5

OUTCOME_SCHEMA = pl.Schema(
    {
        "date": pl.Date(),
        "account_id": pl.String(),
        "model_version": pl.String(),
        "model_role": pl.String(),
        "target_start": pl.Date(),
        "target_end": pl.Date(),
        "expected_net_profit": pl.Float64(),
        "p05": pl.Float64(),
        "p95": pl.Float64(),
        "breach_probability": pl.Float64(),
        "realised_net_profit": pl.Float64(),
        "realised_breach": pl.Boolean(),
        "error": pl.Float64(),
        "covered": pl.Boolean(),
        "new_account": pl.Boolean(),
    }
)


def prediction_outcomes(predictions: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Each prediction joined with the realised label of its span; predictions without one yet
    (or made for another span) are left out."""
    span = ["date", "account_id", "target_start", "target_end"]
    usable = labels.filter(pl.col("label_available")).select(
        *span,
        pl.col("net_profit_next_session").alias("realised_net_profit"),
        pl.col("breached_next_session").alias("realised_breach"),
    )
    return (
        predictions.join(usable, on=span, how="inner")
        .with_columns(
            (pl.col("realised_net_profit") - pl.col("expected_net_profit")).alias("error"),
            pl.col("realised_net_profit").is_between(pl.col("p05"), pl.col("p95")).alias("covered"),
            (pl.col("history_days").fill_null(0) < NEW_ACCOUNT_DAYS).alias("new_account"),
        )
        .select(OUTCOME_SCHEMA.names())
        .cast(dict(OUTCOME_SCHEMA))
        .sort("date", "model_version", "account_id")
    )


def performance(outcomes: pl.DataFrame) -> dict[str, float]:
    """RMSE, interval score, coverage, direction accuracy, breach Brier and recall of a set of
    outcomes (NaN when there is nothing to measure), and RMSE, interval score and coverage on
    the rows with a non-zero outcome (``nonzero_rows``, ``nonzero_rmse``, ...)."""
    overall = _performance(outcomes)
    moved = outcomes.filter(pl.col("realised_net_profit") != 0.0)
    nonzero = _performance(moved)
    overall["nonzero_rows"] = float(moved.height)
    for name in ("rmse", "interval_score", "coverage"):
        overall[f"nonzero_{name}"] = nonzero.get(name, math.nan)
    return overall


def _performance(outcomes: pl.DataFrame) -> dict[str, float]:
    if outcomes.height == 0:
        return {"rows": 0.0}
    y = outcomes["realised_net_profit"].to_numpy()
    mean = outcomes["expected_net_profit"].to_numpy()
    lo, hi = outcomes["p05"].to_numpy(), outcomes["p95"].to_numpy()
    breached = outcomes["realised_breach"].cast(pl.Float64).to_numpy()
    p = outcomes["breach_probability"].to_numpy()
    flagged = p >= 0.5
    recall = float(flagged[breached == 1].mean()) if breached.sum() else math.nan
    return {
        "rows": float(outcomes.height),
        "rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
        "interval_score": interval_score(y, lo, hi),
        "coverage": coverage(y, lo, hi),
        "direction_accuracy": direction_accuracy(y, mean),
        "breach_brier": brier(breached, p),
        "breach_recall_at_0_5": recall,
        "breaches": float(breached.sum()),
    }


def performance_by_role(outcomes: pl.DataFrame) -> dict[str, float]:
    """Flat metrics per model role, established and new accounts apart: ``champion_rmse``,
    ``challenger_new_accounts_coverage``, ..."""
    flat: dict[str, float] = {}
    for role in sorted(outcomes["model_role"].unique().to_list()):
        of_role = outcomes.filter(pl.col("model_role") == role)
        for part, rows in (
            ("", of_role.filter(~pl.col("new_account"))),
            ("new_accounts_", of_role.filter(pl.col("new_account"))),
        ):
            for name, value in performance(rows).items():
                flat[f"{role}_{part}{name}"] = value
    return flat
