"""The figures a person compares between model versions, as PNG files.

Built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never ``pyplot``: no global
figure state, safe in a worker thread and without a display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from daily_profit.modeling.baselines import BREACH_BASELINE, INTERVAL_BASELINE, MEAN_BASELINES
from daily_profit.modeling.bundle import ModelBundle
from daily_profit.modeling.dataset import TARGET
from daily_profit.modeling.evaluate import MODEL, ORACLE, EvaluationReport, coverage_by_decile

_MODEL_COLOUR = "#1f77b4"
_BASE_COLOUR = "#9a9a9a"


def figure(width: float = 8.0, height: float = 5.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def feature_importance(bundle: ModelBundle, top: int = 20) -> Figure:
    """Total gain of each feature in the mean model (what the expected P&L is built from)."""
    gain = bundle.boosters["mean"].get_score(importance_type="total_gain")
    names = bundle.mean_input_names()
    # Boosters built from numpy name features f0, f1, ...; map back to the catalog's names.
    pairs = sorted(
        (
            (names[int(k[1:])] if k.startswith("f") and k[1:].isdigit() else k, v)
            for k, v in gain.items()
        ),
        key=lambda kv: kv[1],
    )[-top:]
    fig = figure(8, max(3.0, 0.3 * len(pairs) + 1))
    ax = fig.add_subplot()
    ax.barh([p[0] for p in pairs], [p[1] for p in pairs], color=_MODEL_COLOUR)
    ax.set_xlabel("total gain (mean model)")
    ax.set_title(f"Feature importance, top {len(pairs)}")
    return fig


def coverage_and_width(predictions: pl.DataFrame) -> Figure:
    """Coverage of the 90% interval and its mean width per decile of the predicted scale."""
    table = coverage_by_decile(predictions)
    fig = figure()
    ax = fig.add_subplot()
    deciles = table["decile"].to_numpy() + 1
    ax.bar(deciles, table["coverage"].to_numpy(), color=_MODEL_COLOUR, alpha=0.8)
    ax.axhline(0.9, color="black", linestyle="--", linewidth=1, label="nominal 90%")
    ax.axhspan(0.88, 0.92, color="green", alpha=0.1, label="88-92% band")
    ax.set_ylim(0.5, 1.0)
    ax.set_xlabel("decile of predicted scale s(x) (1 = quietest accounts)")
    ax.set_ylabel("coverage")
    ax.legend(loc="lower left")
    twin = ax.twinx()
    twin.plot(deciles, table["mean_width"].to_numpy(), color="darkorange", marker="o")
    twin.set_ylabel("mean interval width (USD)", color="darkorange")
    twin.set_yscale("log")
    ax.set_title("Interval coverage and width by predicted decile (test days)")
    return fig


def residuals(predictions: pl.DataFrame) -> Figure:
    """Residuals against the prediction, and their distribution (symmetric log scale)."""
    y = predictions[TARGET].to_numpy()
    pred = predictions["expected_net_profit"].to_numpy()
    res = y - pred
    fig = figure(10, 4.5)
    left, right = fig.subplots(1, 2)
    left.scatter(pred, res, s=3, alpha=0.3, color=_MODEL_COLOUR)
    left.axhline(0, color="black", linewidth=1)
    left.set_yscale("symlog", linthresh=100)
    left.set_xlabel("expected net profit (USD)")
    left.set_ylabel("residual (USD, symlog)")
    left.set_title("Residual vs prediction")
    bins = np.unique(np.concatenate([-np.logspace(0, 6, 30), [0.0], np.logspace(0, 6, 30)]))
    right.hist(np.clip(res, -1e6, 1e6), bins=bins, color=_MODEL_COLOUR)
    right.set_xscale("symlog", linthresh=1)
    right.set_xlabel("residual (USD, symlog)")
    right.set_title("Residual distribution")
    return fig


def model_vs_baselines(report: EvaluationReport) -> Figure:
    """RMSE, interval score and breach Brier of the model beside each baseline (lower wins).

    With ground truth, a fourth panel: each mean's MSE to the true expected profit.
    """
    panels = [
        ("RMSE of the mean (USD)", "rmse", [MODEL, *MEAN_BASELINES, ORACLE]),
        ("Interval score, 90% (USD)", "interval_score", [MODEL, INTERVAL_BASELINE]),
        ("Breach Brier score", "brier", [MODEL, BREACH_BASELINE]),
    ]
    if np.isfinite(report.get(MODEL, "mse_to_true_mean")):
        panels.append(
            ("MSE to the true mean (USD^2)", "mse_to_true_mean", [MODEL, *MEAN_BASELINES])
        )
    fig = figure(4 * len(panels), 4.5)
    axes = fig.subplots(1, len(panels))
    for ax, (title, metric, names) in zip(axes, panels, strict=True):
        shown = [(n, report.get(n, metric)) for n in names if np.isfinite(report.get(n, metric))]
        colours = [_MODEL_COLOUR if n == MODEL else _BASE_COLOUR for n, _ in shown]
        ax.bar([n for n, _ in shown], [v for _, v in shown], color=colours)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45)
        if shown:
            values = np.array([v for _, v in shown])
            lo, hi = values.min(), values.max()
            # Differences are small next to the noise level: zoom in on them.
            pad = max((hi - lo) * 0.5, abs(hi) * 1e-3)
            ax.set_ylim(max(0.0, lo - pad), hi + pad)
    fig.suptitle(f"Model vs baselines on {report.n_days} test days ({report.n_rows} rows)")
    return fig


def write_plots(
    bundle: ModelBundle,
    test_predictions: pl.DataFrame,
    report: EvaluationReport,
    folder: Path,
) -> list[Path]:
    """Write every figure as PNG into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "feature_importance": feature_importance(bundle),
        "coverage_width_by_decile": coverage_and_width(test_predictions),
        "residuals": residuals(test_predictions),
        "model_vs_baselines": model_vs_baselines(report),
    }
    paths = []
    for name, fig in figures.items():
        path = folder / f"{name}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


def walk_forward(table: pl.DataFrame, title: str) -> Figure:
    """Per walk-forward origin: RMSE of the model, the held-out best baseline and the oracle;
    coverage of the 90% interval; breach Brier of the model, the headroom rule and the base rate.

    ``table`` is ``WalkForwardResult.per_origin_table()``.
    """
    origins = table["origin"].to_list()
    fig = figure(14, 4.5)
    rmse_ax, cov_ax, brier_ax = fig.subplots(1, 3)
    lines = [
        (rmse_ax, "model_rmse", MODEL, _MODEL_COLOUR, "-"),
        (rmse_ax, "best_baseline_rmse", "best baseline (held out)", _BASE_COLOUR, "-"),
        (rmse_ax, "oracle_rmse", ORACLE, "black", ":"),
        (cov_ax, "coverage", MODEL, _MODEL_COLOUR, "-"),
        (brier_ax, "breach_brier", MODEL, _MODEL_COLOUR, "-"),
        (brier_ax, "rule_brier", BREACH_BASELINE, _BASE_COLOUR, "-"),
        (brier_ax, "base_rate_brier", "base rate", "black", ":"),
    ]
    for ax, column, label, colour, style in lines:
        values = table[column].to_numpy().astype(float)
        if np.isfinite(values).any():
            ax.plot(origins, values, marker="o", color=colour, linestyle=style, label=label)
    cov_ax.axhspan(0.88, 0.92, color="green", alpha=0.1, label="88-92% band")
    cov_ax.axhline(0.9, color="black", linestyle="--", linewidth=1)
    for ax, name in (
        (rmse_ax, "RMSE of the mean (USD)"),
        (cov_ax, "Coverage of the 90% interval"),
        (brier_ax, "Breach Brier score"),
    ):
        ax.set_title(name)
        ax.set_xlabel("origin (retrained at its close)")
        ax.tick_params(axis="x", rotation=45)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return fig
