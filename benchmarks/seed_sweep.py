"""Is the method robust across firms? The whole walk-forward on 12 simulated firms.

Each seed is a different firm: its own traders and, across seeds, other firm parameters of the
sandbox (share of skilled traders, of martingale traders, weekend trading, regime volatility;
``FIRMS``). For each, the platform's own feature and label pipeline builds the modeling frame in
process (no HTTP: ``daily_profit_tests.modeling.sandbox_frame``), and the walk-forward backtest
(``daily_profit.modeling.walk_forward``, through the training method's entry point) retrains
every 14 days and predicts the next 14. Per seed it prints, as JSON lines:

- ``seed_sweep_rmse_vs_best_baseline``: RMSE of the model over that of the best mean baseline
  (chosen per origin on its training days, never on the days judged), with a 90% moving-block
  bootstrap interval over days;
- ``seed_sweep_headroom_share``: share of the achievable MSE improvement, best baseline ->
  the sandbox's oracle, that the model captures;
- ``seed_sweep_coverage``: coverage of the 90% interval, overall, on non-zero outcomes and the
  lowest / highest conditional cell (rows with a non-zero outcome by weekday, regime,
  predicted-scale decile; >= 300 rows), and the same of intervals that know the simulated truth
  (``oracle_intervals``: exact mean +- c x exact std, the moving rows covered at 88% in hindsight);
- ``seed_sweep_interval_score``: the model's interval score against the trailing percentiles';
- ``seed_sweep_breach_brier``: the model's breach Brier against the headroom rule's (the
  project's breach rule) and the base rate's.

Then the summary: ``seed_sweep_headroom_share_mean`` (and pooled: sum of gains over sum of
headroom), ``seed_sweep_coverage_in_band_seeds`` (overall coverage in 88-92%),
``seed_sweep_conditional_coverage_in_band_seeds`` (every cell in 85-95%; the truth's intervals'
count in its params), ``seed_sweep_conditional_coverage_pooled_cell_min`` (the lowest cell when
every firm's rows are pooled: each weekday and regime of every firm together, each firm's own
scale decile with the others'; every cell in its params),
``seed_sweep_worse_than_best_baseline_seeds`` (interval entirely above 1), the pooled breach
Brier against the rule's, and the wall time. Exit status 1 when a floor of issue 9 is missed.

    uv run python benchmarks/seed_sweep.py                     # seeds 1-12 (the figures)
    uv run python benchmarks/seed_sweep.py --seeds 1,2 --accounts 100 --days 90   # a check
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import log, report

# Firm parameters by seed (seed 1 is FIRMS[0]; seeds beyond 12 cycle): a share of skilled
# traders (None: the tuned 27%), of martingale traders, weekend activity of crypto traders and
# the regimes' volatility multipliers. Spread so that the sweep holds firms with little and
# with much edge to find, calm and wild markets.
TUNED_VOL = (0.55, 1.0, 1.8)
CALM_VOL = (0.8, 1.0, 1.25)
WILD_VOL = (0.4, 1.0, 2.6)
FIRMS: tuple[tuple[float | None, float, float, tuple[float, float, float]], ...] = (
    (None, 0.3, 0.35, TUNED_VOL),
    (0.10, 0.1, 0.10, CALM_VOL),
    (0.45, 0.5, 0.70, WILD_VOL),
    (0.20, 0.3, 0.35, WILD_VOL),
    (0.35, 0.1, 0.10, TUNED_VOL),
    (0.05, 0.5, 0.35, CALM_VOL),
    (0.60, 0.3, 0.70, TUNED_VOL),
    (None, 0.6, 0.10, WILD_VOL),
    (0.15, 0.0, 0.70, CALM_VOL),
    (0.30, 0.4, 0.00, WILD_VOL),
    (0.50, 0.2, 0.35, CALM_VOL),
    (0.25, 0.3, 0.50, TUNED_VOL),
)
COVERAGE_BAND = (0.88, 0.92)


@dataclass(frozen=True)
class SweepSettings:
    accounts: int
    days: int
    step_days: int
    min_train_days: int
    trials: int
    folds: int


def firm_parameters(seed: int) -> dict[str, Any]:
    skilled, martingale, weekend, vol = FIRMS[(seed - 1) % len(FIRMS)]
    return {
        "skilled_share": skilled,
        "martingale_share": martingale,
        "weekend_activity": weekend,
        "regime_vol": vol,
    }


def run_seed(seed: int, settings: SweepSettings) -> dict[str, Any]:
    """Simulate the firm, build its frame, walk forward; the firm's figures."""
    from daily_profit.modeling.promotion import (
        PromotionCriteria,
        compare_on_backtest,
        decide_fallback,
        decide_promotion,
    )
    from daily_profit.modeling.train import SearchBudget, TrainConfig
    from daily_profit.modeling.walk_forward import (
        WalkForwardConfig,
        firm_figures,
        oracle_interval_coverage,
        pooling_rows,
        run_walk_forward,
    )
    from daily_profit.sandbox.simulation import SimulationConfig
    from daily_profit_tests.modeling.sandbox_frame import sandbox_frame_for

    started = time.perf_counter()
    config = SimulationConfig(
        seed=seed, n_accounts=settings.accounts, n_days=settings.days, **firm_parameters(seed)
    )
    data = sandbox_frame_for(config)
    built = time.perf_counter() - started
    result = run_walk_forward(
        data.frame,
        data.feature_columns,
        TrainConfig(
            seed=0,
            budget=SearchBudget(
                n_trials=settings.trials, n_folds=settings.folds, max_seconds=120.0
            ),
        ),
        WalkForwardConfig(step_days=settings.step_days, min_train_days=settings.min_train_days),
        history=data.history,
        truth=data.truth,
    )
    figures = firm_figures(result)
    # Would this firm get a first champion? The promotion check's decision on the same
    # walk-forward days (non-inferior to the best baseline, coverage in its day-clustered band).
    compared, _ = compare_on_backtest(result.out_of_sample, None, None, data.frame, data.history)
    decision = decide_promotion(compared, PromotionCriteria())
    figures["first_champion_promoted"] = decision.promote
    figures["first_champion_reasons"] = decision.reasons
    # When the version is kept, the firm's first champion would be its fallback twin (the
    # baseline as the mean, the version's intervals), judged on the same days.
    fallback = (
        None
        if decision.promote
        else decide_fallback(result.out_of_sample, data.frame, data.history, PromotionCriteria())
    )
    figures["first_champion"] = (
        "version" if decision.promote else "fallback_twin" if fallback.promote else "none"
    )
    figures["fallback_twin_reasons"] = fallback.reasons if fallback is not None else []
    # The bound on the cells: intervals that know the simulated truth, on the same rows.
    oracle = oracle_interval_coverage(result.out_of_sample, data.truth)
    figures["oracle_coverage_overall"] = oracle.overall
    figures["oracle_cell_min"] = oracle.summary()["coverage_cell_min"]
    figures["oracle_conditional_in_band"] = float(oracle.in_band())
    # The rows the pooled cells read (weekday, regime, scale, outcome, interval), a few MB.
    figures["pooling_rows"] = pooling_rows(result.out_of_sample)
    figures["frame_seconds"] = built
    figures["seconds"] = time.perf_counter() - started
    figures["expected_skilled_share"] = config.expected_skilled_share()
    return figures


def _round(value: float) -> float | None:
    """Four significant digits (a Brier score of 0.0123 keeps its digits), None for NaN."""
    return float(f"{value:.4g}") if math.isfinite(value) else None


def report_seed(seed: int, f: dict[str, Any]) -> None:
    firm = {**firm_parameters(seed), "expected_skilled_share": _round(f["expected_skilled_share"])}
    common = {
        "seed": seed,
        "firm": firm,
        "rows": int(f["rows"]),
        "origins": int(f["origins"]),
        "out_of_sample_trading_days": int(f["out_of_sample_trading_days"]),
    }
    report(
        "seed_sweep_rmse_vs_best_baseline",
        f["rmse_ratio"],
        "ratio",
        params={
            **common,
            "interval_90": [_round(f["rmse_ratio_lo"]), _round(f["rmse_ratio_hi"])],
            "model_rmse": _round(f["model_rmse"]),
            "best_baseline_rmse": _round(f["best_baseline_rmse"]),
        },
    )
    report(
        "seed_sweep_headroom_share",
        f.get("headroom_share", math.nan),
        "share",
        params={
            "seed": seed,
            "gain_mse": _round(f.get("headroom_gain", math.nan)),
            "headroom_mse": _round(f.get("headroom", math.nan)),
        },
    )
    report(
        "seed_sweep_coverage",
        f["coverage_overall"],
        "share",
        params={
            "seed": seed,
            "nonzero": _round(f["coverage_nonzero"]),
            "cell_min": _round(f["coverage_cell_min"]),
            "cell_max": _round(f["coverage_cell_max"]),
            "in_band": bool(f["coverage_in_band"]),
            "conditional_in_band": bool(f["conditional_coverage_in_band"]),
            "oracle_intervals": {
                "overall": _round(f["oracle_coverage_overall"]),
                "cell_min": _round(f["oracle_cell_min"]),
                "conditional_in_band": bool(f["oracle_conditional_in_band"]),
            },
        },
    )
    report(
        "seed_sweep_interval_score",
        f["interval_score"],
        "USD",
        baseline=f["trailing_percentiles_interval_score"],
        params={"seed": seed, "baseline_name": "trailing_percentiles"},
    )
    report(
        "seed_sweep_breach_brier",
        f["breach_brier"],
        "brier",
        baseline=f["headroom_rule_brier"],
        params={
            "seed": seed,
            "baseline_name": "headroom_rule",
            "model_brier": _round(f["breach_brier"]),
            "headroom_rule_brier": _round(f["headroom_rule_brier"]),
            "base_rate_brier": _round(f["base_rate_brier"]),
            "breach_rate": _round(f["breach_rate"]),
        },
    )

    report(
        "seed_sweep_first_champion_promoted",
        float(f["first_champion_promoted"]),
        "bool",
        params={"seed": seed, "reasons": f["first_champion_reasons"]},
    )
    report(
        "seed_sweep_first_champion",
        float(f["first_champion"] != "none"),
        "bool",
        params={
            "seed": seed,
            "champion": f["first_champion"],
            "fallback_twin_reasons": f["fallback_twin_reasons"],
        },
    )


def summarise(results: dict[int, dict[str, Any]], seconds: float, n_seeds: int) -> bool:
    """The sweep's figures; whether every floor of issue 9 is met."""
    from daily_profit.modeling.walk_forward import pooled_conditional_coverage

    shares = [
        f["headroom_share"]
        for f in results.values()
        if math.isfinite(f.get("headroom_share", math.nan))
    ]
    gains = sum(f.get("headroom_gain", 0.0) for f in results.values())
    headroom = sum(max(f.get("headroom", 0.0), 0.0) for f in results.values())
    pooled_share = gains / headroom if headroom > 0 else math.nan
    in_band = sum(int(f["coverage_in_band"]) for f in results.values())
    cond_in_band = sum(int(f["conditional_coverage_in_band"]) for f in results.values())
    worse = [s for s, f in results.items() if f["rmse_ratio_lo"] > 1.0]
    rows = sum(f["rows"] for f in results.values())
    brier_model = sum(f["breach_brier"] * f["rows"] for f in results.values()) / rows
    brier_rule = sum(f["headroom_rule_brier"] * f["rows"] for f in results.values()) / rows
    seeds = sorted(results)
    report(
        "seed_sweep_headroom_share_mean",
        sum(shares) / len(shares) if shares else math.nan,
        "share",
        params={"seeds": seeds, "pooled": _round(pooled_share)},
    )
    report("seed_sweep_headroom_share_pooled", pooled_share, "share", params={"seeds": seeds})
    report(
        "seed_sweep_coverage_in_band_seeds",
        in_band,
        "seeds",
        params={"of": len(seeds), "band": list(COVERAGE_BAND)},
    )
    report(
        "seed_sweep_conditional_coverage_in_band_seeds",
        cond_in_band,
        "seeds",
        params={
            "of": len(seeds),
            "band": [0.85, 0.95],
            # The same cells of intervals that know the simulated truth (moving rows at 88%).
            "oracle_intervals_in_band_seeds": sum(
                int(f["oracle_conditional_in_band"]) for f in results.values()
            ),
        },
    )
    # Every firm's moving rows together, each cell of every firm with the same cell of the
    # others: what the method does to a kind of row, a firm's session-to-session spread averaged.
    pooled = pooled_conditional_coverage([f["pooling_rows"] for f in results.values()])
    report(
        "seed_sweep_conditional_coverage_pooled_cell_min",
        pooled.summary()["coverage_cell_min"],
        "share",
        params={
            "in_band": pooled.in_band(),
            "band": [0.85, 0.95],
            "cells": {k: _round(v) for k, v in pooled.cells.items()},
            "rows": pooled.rows,
        },
    )
    report(
        "seed_sweep_worse_than_best_baseline_seeds",
        len(worse),
        "seeds",
        params={"seeds": worse, "rule": "90% interval of the RMSE ratio entirely above 1"},
    )
    report(
        "seed_sweep_breach_brier_pooled",
        brier_model,
        "brier",
        baseline=brier_rule,
        params={
            "baseline_name": "headroom_rule",
            "model_brier": _round(brier_model),
            "headroom_rule_brier": _round(brier_rule),
            "rows": int(rows),
        },
    )
    promoted = [s for s, f in results.items() if f["first_champion_promoted"]]
    report(
        "seed_sweep_first_champion_promoted_seeds",
        len(promoted),
        "seeds",
        params={"of": len(seeds), "seeds": promoted, "on": "the walk-forward days"},
    )
    champions = {s: f["first_champion"] for s, f in results.items()}
    report(
        "seed_sweep_first_champion_seeds",
        sum(c != "none" for c in champions.values()),
        "seeds",
        params={
            "of": len(seeds),
            "fallback_twin": [s for s, c in champions.items() if c == "fallback_twin"],
            "none": [s for s, c in champions.items() if c == "none"],
        },
    )
    report("seed_sweep_seconds", seconds, "s", params={"seeds": len(seeds)})
    # The floors speak of the full sweep of 12 firms; a smaller one is a check, not a verdict.
    needed_in_band = n_seeds - 1 if n_seeds >= 12 else n_seeds
    return (
        not worse
        and math.isfinite(pooled_share)
        and pooled_share >= 0.30
        and in_band >= needed_in_band
        and cond_in_band >= needed_in_band
        and brier_model <= brier_rule
    )


def _seeds(text: str) -> list[int]:
    if "-" in text and "," not in text:
        first, last = (int(v) for v in text.split("-"))
        return list(range(first, last + 1))
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1-12", help="1-12, or a list: 1,2")
    parser.add_argument("--accounts", type=int, default=300, help="accounts per firm")
    parser.add_argument("--days", type=int, default=120, help="calendar days per firm")
    parser.add_argument("--step-days", type=int, default=14)
    parser.add_argument("--min-train-days", type=int, default=56)
    parser.add_argument("--trials", type=int, default=1, help="hyperparameter trials per fit")
    parser.add_argument("--folds", type=int, default=2, help="time-series folds per trial")
    parser.add_argument("--jobs", type=int, default=2, help="firms run in parallel processes")
    args = parser.parse_args(argv)
    settings = SweepSettings(
        accounts=args.accounts,
        days=args.days,
        step_days=args.step_days,
        min_train_days=args.min_train_days,
        trials=args.trials,
        folds=args.folds,
    )
    seeds = _seeds(args.seeds)
    log(f"seed sweep: seeds {seeds}, {settings}, {args.jobs} processes")
    started = time.perf_counter()
    results: dict[int, dict[str, Any]] = {}
    # Spawned workers: forking a process that already runs polars' and xgboost's thread pools
    # can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {seed: pool.submit(run_seed, seed, settings) for seed in seeds}
        for seed, future in futures.items():
            results[seed] = future.result()
            log(f"seed {seed}: {results[seed]['seconds']:.0f}s")
            report_seed(seed, results[seed])
    met = summarise(results, time.perf_counter() - started, len(seeds))
    log("floors met" if met else "a floor of issue 9 is missed (see the summary lines)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
