"""Which endpoint feeds which raw table, and how a day is asked for."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from daily_profit.warehouse.records import SourceSpec, source_spec


@dataclass(frozen=True)
class ApiSource:
    """A raw table fed by one Risk API endpoint."""

    source: str
    endpoint: str
    # Query parameter that selects one trading date (None: the endpoint is a snapshot).
    date_param: str | None

    @property
    def spec(self) -> SourceSpec:
        return source_spec(self.source)

    @property
    def table(self) -> str:
        return self.spec.table

    def params_for(self, day: dt.date | None) -> dict[str, str]:
        if self.date_param is None or day is None:
            return {}
        return {self.date_param: day.strftime("%Y%m%d")}


METRICS_ALLTIME = ApiSource("metrics_alltime", "v2/metrics/alltime", None)
METRICS_DAILY = ApiSource("metrics_daily", "v2/metrics/daily", "dates")
METRICS_HOURLY = ApiSource("metrics_hourly", "v2/metrics/hourly", "dates")
TRADES_CLOSED = ApiSource("trades_closed", "v2/trades/closed", "trade-date")
TRADES_OPEN = ApiSource("trades_open", "v2/trades/open", "trade-date")
REGIMES_DAILY = ApiSource("regimes_daily", "v2/regimes/daily", "dates")

DAILY_API_SOURCES: tuple[ApiSource, ...] = (
    METRICS_DAILY,
    METRICS_HOURLY,
    TRADES_CLOSED,
    TRADES_OPEN,
    REGIMES_DAILY,
)
