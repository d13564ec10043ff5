"""The monitoring layer's definitions: drift and performance, and what retrains the model."""

import dagster as dg

from daily_profit.defs.monitoring.assets import monitoring_assets
from daily_profit.defs.monitoring.retrain import retrain_schedules, retrain_sensors

defs = dg.Definitions(
    assets=monitoring_assets, schedules=retrain_schedules, sensors=retrain_sensors
)
