"""The feature layer's definitions: staging, features, labels, their checks and their guards."""

import dagster as dg

from daily_profit.defs.features.assets import feature_assets, guard_checks
from daily_profit.defs.features.checks import feature_checks

defs = dg.Definitions(assets=feature_assets, asset_checks=[*feature_checks, *guard_checks])
