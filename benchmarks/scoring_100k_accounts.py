"""Scoring speed: one feature day of 100,000 accounts, with intervals, risk score and drivers.

    uv run python benchmarks/scoring_100k_accounts.py [--quick]

Simulates the sandbox firm (300 accounts x 120 days; ``--quick``: 150 x 60), builds its
features and labels with the platform's own pipeline, trains the model bundle, then:

- ``profit_model_training``: seconds to train on the default window (every feature day of the
  simulation) with the default configuration, search budget included (``--quick``: 2 trials).
  No baseline.
- ``scoring_100k_accounts``: ``scoring.score_accounts`` on 100,000 account rows (feature rows
  of the simulation drawn with replacement, each under its own account id), in accounts per
  second: expected profit, calibrated p05/p50/p95, breach probability, risk score and the top
  three drivers (exact TreeSHAP for the 1,000 riskiest, Saabas elsewhere). Baseline, in the
  same run: the straightforward way, the MLflow pyfunc model's ``predict`` on the same frame
  (loaded from a scratch MLflow store, frame conversion included) plus exact TreeSHAP for
  every row, timed on a sample of rows and scaled to 100,000.

Figures are medians of repeated runs; one JSON line per figure on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import log, median_time, report, timed
from daily_profit.modeling.bundle import attach_baselines
from daily_profit.modeling.dataset import ID
from daily_profit.modeling.evaluate import evaluate_result
from daily_profit.modeling.scoring import DEFAULT_EXACT_TOP_N, score_accounts
from daily_profit.modeling.tracking import (
    CHALLENGER,
    TrackingTarget,
    load_pyfunc,
    log_training_run,
    model_input,
)
from daily_profit.modeling.train import SearchBudget, TrainConfig, train_profit_model
from daily_profit_tests.modeling.sandbox_frame import sandbox_frame

N_ACCOUNTS = 100_000
QUICK_BUDGET = SearchBudget(n_trials=2, n_folds=2)
TIME_LIMIT_S = 5.0


def scoring_frame(frame: pl.DataFrame, n: int, seed: int = 0) -> pl.DataFrame:
    """n feature rows drawn with replacement from ``frame``, each under a unique account id."""
    rng = np.random.default_rng(seed)
    picked = frame[rng.integers(0, frame.height, size=n).tolist()]
    return picked.with_columns(
        pl.format("BENCH{}", pl.int_range(pl.len(), dtype=pl.Int64)).alias(ID),
        pl.lit(frame["date"].max()).alias("date"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller simulation, fewer repeats")
    args = parser.parse_args()
    n_accounts, n_days = (150, 60) if args.quick else (300, 120)
    repeat = 3 if args.quick else 5
    threads = os.cpu_count() or 1

    log(f"simulating {n_accounts} accounts x {n_days} days and building features ...")
    data = sandbox_frame(seed=7, n_accounts=n_accounts, n_days=n_days)
    # The default configuration (search budget included) is what the profit_model asset runs.
    config = TrainConfig(seed=0) if not args.quick else TrainConfig(seed=0, budget=QUICK_BUDGET)
    budget = config.budget
    log(f"training on {data.frame.height} rows ({budget.n_trials} search trials) ...")
    train_s, result = timed(
        lambda: train_profit_model(data.frame, data.feature_columns, config, history=data.history)
    )
    bundle = result.bundle
    report(
        "profit_model_training",
        train_s,
        "s",
        params={
            "rows": data.frame.height,
            "feature_days": data.frame["date"].n_unique(),
            "features": len(bundle.feature_columns),
            "trials": len(result.search.trials),
            "search_stopped_by": result.search.stopped_by,
            "folds": result.search.n_folds,
            "threads": config.threads(),
        },
    )

    # Each account's stacked baselines come with its feature row, as in daily_predictions.
    rows = scoring_frame(attach_baselines(data.frame, data.history), N_ACCOUNTS)
    score = lambda: score_accounts(bundle, rows, model_version="bench", n_threads=threads)  # noqa: E731
    score()  # warm-up: first-call allocations and thread pool start
    ours = median_time(score, repeat)
    log(f"score_accounts: {ours:.2f}s for {N_ACCOUNTS} accounts")

    with tempfile.TemporaryDirectory() as tmp:
        target = TrackingTarget.embedded(Path(tmp), experiment_name="bench")
        log("logging the bundle to a scratch MLflow store ...")
        log_training_run(target, result, evaluate_result(result, history=data.history))
        pyfunc = load_pyfunc(target, CHALLENGER)
        predict = lambda: pyfunc.predict(model_input(rows, bundle))  # noqa: E731
        predict()
        pyfunc_s = median_time(predict, repeat)
    sample = rows.head(5_000 if args.quick else 10_000)
    booster = bundle.boosters["mean"]
    booster.set_param({"nthread": threads})

    def shap() -> np.ndarray:
        x = bundle.matrix(sample)
        mx = bundle.mean_model_matrix(x, bundle.predict_scale(x))
        return booster.predict(xgb.DMatrix(mx), pred_contribs=True)

    shap_s = median_time(shap, max(1, repeat - 2)) * N_ACCOUNTS / sample.height
    baseline_s = pyfunc_s + shap_s
    log(f"baseline: pyfunc predict {pyfunc_s:.2f}s + exact TreeSHAP for all {shap_s:.2f}s")
    report(
        "scoring_100k_accounts",
        N_ACCOUNTS / ours,
        "accounts/s",
        baseline=N_ACCOUNTS / baseline_s,
        params={
            "accounts": N_ACCOUNTS,
            "seconds": round(ours, 3),
            "within_5s": ours < TIME_LIMIT_S,
            "exact_shap_rows": DEFAULT_EXACT_TOP_N,
            "baseline_seconds": round(baseline_s, 3),
            "baseline_pyfunc_seconds": round(pyfunc_s, 3),
            "baseline_shap_seconds_scaled": round(shap_s, 3),
            "baseline_shap_sample_rows": sample.height,
            "features": len(bundle.feature_columns),
            "threads": threads,
            "quick": args.quick,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


if __name__ == "__main__":
    main()
