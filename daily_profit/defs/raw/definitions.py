"""The raw layer's definitions: the API sources as daily assets and their per-day checks."""

import dagster as dg

from daily_profit.defs.raw.assets import raw_assets
from daily_profit.defs.raw.checks import raw_checks

defs = dg.Definitions(assets=raw_assets, asset_checks=raw_checks)
