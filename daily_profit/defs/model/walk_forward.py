"""The walk-forward backtest of the model, as an asset the desk compares model versions on.

``model_walk_forward`` replays the training method (``profit_model``'s own entry point) over
the whole labelled history with rolling origins and logs each origin's metrics to MLflow with
the origin as the step, so two versions of the method line up on the same walk-forward days in
MLflow's run comparison.
"""

import base64
import datetime as dt
import io
import math

import dagster as dg
import mlflow as mlflow_api
import polars as pl
from matplotlib.figure import Figure

from daily_profit.config import get_settings
from daily_profit.defs.asset_keys import MODEL_WALK_FORWARD
from daily_profit.defs.metadata import json_value
from daily_profit.defs.model.assets import (
    MODEL_GROUP,
    _loaded_days,
    _sandbox_truth,
    daily_pnl_history,
    profit_model,
    training_frame,
)
from daily_profit.defs.resources import MlflowResource, WarehouseResource
from daily_profit.modeling import plots
from daily_profit.modeling.tracking import TAG_DAGSTER_RUN, open_run
from daily_profit.modeling.train import SearchBudget, TrainConfig
from daily_profit.modeling.walk_forward import (
    OriginResult,
    WalkForwardConfig,
    WalkForwardResult,
    conditional_coverage,
    firm_figures,
    origin_workers,
    run_walk_forward,
)
from daily_profit.trading_calendar import TradingCalendar

# The asset's name, which is also its op's name in a run config.
WALK_FORWARD = MODEL_WALK_FORWARD.to_user_string()
# The walk-forward reads what profit_model reads (features and labels), whatever they are named.
TRAINING_INPUTS = sorted(k for k in profit_model.dependency_keys if k != profit_model.key)
LABEL_TABLE = next(k.path[-1] for k in TRAINING_INPUTS if k.path[-1].startswith("labels"))
# Pooled figures shown as numbers, so the UI plots them across materialisations.
HEADLINE = (
    "model_rmse",
    "best_baseline_rmse",
    "rmse_ratio",
    "rmse_ratio_lo",
    "rmse_ratio_hi",
    "headroom_share",
    "coverage_overall",
    "coverage_nonzero",
    "coverage_cell_min",
    "coverage_cell_max",
    "interval_score",
    "trailing_percentiles_interval_score",
    "breach_brier",
    "headroom_rule_brier",
    "base_rate_brier",
)


class WalkForwardRunConfig(dg.Config):
    """Backtest settings a person can change in the launchpad (unset: the settings')."""

    step_days: int | None = None  # DAILY_PROFIT_WALK_FORWARD_STEP_DAYS
    min_train_days: int | None = None  # DAILY_PROFIT_WALK_FORWARD_MIN_TRAIN_DAYS
    n_trials: int = 2
    n_folds: int = 2
    max_search_seconds: float = 60.0
    seed: int = 0
    window_days: int | None = None


def origin_step(origin_day: dt.date) -> int:
    """MLflow step of an origin: days since the first partition, the same for every run."""
    return (origin_day - get_settings().start_date).days


def _md_cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else ""
    return "" if value is None else str(value)


def per_origin_markdown(table: pl.DataFrame) -> str:
    """The per-origin table as markdown: one row per origin, numbers to four digits."""
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * table.width]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join(lines)


def log_walk_forward(result: WalkForwardResult, figures: dict[str, float], figure: Figure) -> None:
    """Per-origin metrics with the origin as step, the pooled figures, the table and the plot,
    into the active MLflow run."""
    for origin in result.origins:
        step = origin_step(origin.origin.day)
        mlflow_api.log_metrics(
            {f"wf_{k}": v for k, v in origin.metrics().items()},
            step=step,
        )
    mlflow_api.log_metrics(
        {f"wf_pooled_{k}": v for k, v in figures.items() if math.isfinite(v)}
        | result.pooled.flat("wf_pooled_eval")
    )
    table = result.per_origin_table()
    mlflow_api.log_text(table.write_csv(), "walk_forward/per_origin.csv")
    mlflow_api.log_figure(figure, "walk_forward/per_origin.png")


@dg.asset(
    name=WALK_FORWARD,
    group_name=MODEL_GROUP,
    deps=TRAINING_INPUTS,
    kinds={"xgboost", "mlflow"},
    tags={"layer": "model"},
)
def model_walk_forward(
    context: dg.AssetExecutionContext,
    config: WalkForwardRunConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    """Does the model beat the baselines, on months rather than one test window? The training
    method is replayed over the labelled history: retrained every 14 days (at an origin's close,
    on the labels realised by then) and scored on the next 14 days it never saw, against every
    baseline (the best one chosen on each origin's training days), the trailing-percentile
    interval, the headroom breach rule, the breach base rate and, on sandbox data, the oracle.
    Per origin and pooled: RMSE, MSE, coverage (also on non-zero outcomes, by weekday, regime and
    predicted-scale decile), interval score and breach Brier. Logged to MLflow with the origin as
    step, so method versions compare on the same days; says how many out-of-sample trading days
    it had."""
    settings = get_settings()
    store = warehouse.get()
    days = _loaded_days(store, LABEL_TABLE)
    if not days:
        raise dg.Failure("no labelled feature days in the warehouse: materialise features first")
    frame = training_frame(store, days[0], days[-1])
    history = daily_pnl_history(store, days[-1])
    calendar = TradingCalendar.from_settings(settings)
    defaults = WalkForwardConfig.from_settings(settings)
    wf_config = WalkForwardConfig(
        step_days=config.step_days or defaults.step_days,
        min_train_days=config.min_train_days or defaults.min_train_days,
    )
    train_config = TrainConfig(
        seed=config.seed,
        window_days=config.window_days,
        budget=SearchBudget(
            n_trials=config.n_trials, max_seconds=config.max_search_seconds, n_folds=config.n_folds
        ),
        dask_scheduler_address=settings.dask_scheduler_address,
    )

    def progress(done: OriginResult) -> None:
        context.log.info(
            f"origin {done.origin.day}: {done.report.n_rows} rows of "
            f"{done.origin.predict_start}..{done.origin.predict_end} in {done.seconds:.0f}s"
        )

    try:
        result = run_walk_forward(
            frame,
            None,
            train_config,
            wf_config,
            history=history,
            truth=_sandbox_truth(calendar),
            calendar=calendar,
            progress=progress,
            workers=origin_workers(),
        )
    except ValueError as exc:
        raise dg.Failure(f"walk-forward not possible: {exc}") from exc
    figures = firm_figures(result)
    table = result.per_origin_table()
    first, last = result.origins[0].origin, result.origins[-1].origin
    title = (
        f"Walk-forward: {len(result.origins)} origins every {wf_config.step_days} days, "
        f"{result.out_of_sample_trading_days} out-of-sample trading days "
        f"({first.predict_start}..{last.predict_end})"
    )
    figure = plots.walk_forward(table, title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")

    target = mlflow.target()
    with open_run(
        target,
        run_name=f"walk_forward {context.run.run_id[:8]}",
        tags={
            TAG_DAGSTER_RUN: context.run.run_id,
            "dagster_asset": WALK_FORWARD,
            "walk_forward.first_origin": first.day.isoformat(),
            "walk_forward.last_day": last.predict_end.isoformat(),
            "walk_forward.step_days": str(wf_config.step_days),
            "walk_forward.origins": ",".join(o.origin.day.isoformat() for o in result.origins),
        },
    ) as run:
        mlflow_api.log_params(
            {
                "step_days": wf_config.step_days,
                "min_train_days": wf_config.min_train_days,
                "n_trials": config.n_trials,
                "n_folds": config.n_folds,
                "seed": config.seed,
                "window_days": config.window_days,
                "out_of_sample_days": result.out_of_sample_days,
                "out_of_sample_trading_days": result.out_of_sample_trading_days,
            }
        )
        log_walk_forward(result, figures, figure)
        run_url = target.run_url(run.info.experiment_id, run.info.run_id)

    image = base64.b64encode(buffer.getvalue()).decode()
    return dg.MaterializeResult(
        metadata={
            "out_of_sample_trading_days": result.out_of_sample_trading_days,
            "out_of_sample_days": result.out_of_sample_days,
            "out_of_sample_rows": result.out_of_sample.height,
            "origins": len(result.origins),
            "window": f"{first.predict_start}..{last.predict_end}",
            "mlflow_run": dg.MetadataValue.url(run_url),
            "per_origin": dg.MetadataValue.md(per_origin_markdown(table)),
            "plot": dg.MetadataValue.md(f"![walk-forward](data:image/png;base64,{image})"),
            "conditional_coverage": json_value(
                {
                    k: round(v, 4)
                    for k, v in conditional_coverage(result.out_of_sample).cells.items()
                }
            ),
            "duration_s": round(result.seconds, 1),
            **{
                f"pooled_{k}": float(figures[k])
                for k in HEADLINE
                if math.isfinite(figures.get(k, math.nan))
            },
        }
    )


walk_forward_job = dg.define_asset_job(
    "walk_forward",
    selection=dg.AssetSelection.assets(MODEL_WALK_FORWARD),
    description="Backtest the training method over the labelled history with rolling origins.",
)
