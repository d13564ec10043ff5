"""The desk layer's definitions: the morning report."""

import dagster as dg

from daily_profit.defs.desk.assets import desk_assets

defs = dg.Definitions(assets=desk_assets)
