"""The model layer's definitions: the model, its predictions and outcomes, their checks, and
the walk-forward backtest of the method (on demand, its own job)."""

import dagster as dg

from daily_profit.defs.model.assets import champion_registered, model_assets, prediction_checks
from daily_profit.defs.model.walk_forward import model_walk_forward, walk_forward_job

defs = dg.Definitions(
    assets=[*model_assets, model_walk_forward],
    asset_checks=[champion_registered, *prediction_checks],
    jobs=[walk_forward_job],
)
