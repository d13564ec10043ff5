"""The raw days a layer's day needs: a label's window is its target span on the calendar."""

import datetime as dt

from daily_profit.ingestion.publication import Requirement
from daily_profit.trading_calendar import TradingCalendar

FRIDAY = dt.date(2025, 1, 10)
FIRST = dt.date(2025, 1, 1)


def test_a_label_needs_its_whole_span_and_no_more() -> None:
    label = Requirement("raw_metrics_daily", span=TradingCalendar())
    assert label.reaches_after
    # Friday's label needs Friday (its staging) and Saturday to Monday (its span).
    assert label.window(FRIDAY, FIRST) == [FRIDAY + dt.timedelta(days=i) for i in range(4)]
    thursday = FRIDAY - dt.timedelta(days=1)
    assert label.window(thursday, FIRST) == [thursday, FRIDAY]


def test_a_lookback_is_clipped_at_the_first_partition() -> None:
    lookback = Requirement("raw_trades_closed", before=20)
    assert not lookback.reaches_after
    assert lookback.window(FRIDAY, FIRST)[0] == FIRST
