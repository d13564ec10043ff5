"""The model layer's definitions: the model, its predictions and outcomes, and their checks."""

import dagster as dg

from daily_profit.defs.model.assets import model_assets, prediction_checks

defs = dg.Definitions(assets=model_assets, asset_checks=prediction_checks)
