"""``./dp health``: one line per part of the platform, for a person or a monitoring system.

Each check answers one question (is the API reachable with a valid key, is the warehouse at
the migrations' head, is there a champion, is the Dagster daemon alive, did last night's run
land) and returns a :class:`HealthResult`; the command prints ``ok   name: detail`` or
``FAIL name: detail`` per result and exits non-zero when any failed. A check never starts
anything (not the sandbox, not a migration) and never prints a secret: the API key travels in a
header only, and URLs are shown without their password.

Checks are independent: one that raises is reported as that part's failure, the others still
run.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from daily_profit.config import Settings, get_settings

if TYPE_CHECKING:
    import dagster as dg

# A daemon heartbeats every 30 s; one silent for this long is taken for dead.
HEARTBEAT_STALE_AFTER = dt.timedelta(minutes=5)
# The health call's own bounds: a monitoring probe must answer quickly, not wait out the
# ingestion's ten-minute request budget.
API_TIMEOUT_S = 10.0
API_BUDGET_S = 20.0
NOT_RUNNING_SANDBOX = "sandbox not running (./dp main or ./dp sandbox starts it)"


@dataclass(frozen=True)
class HealthResult:
    """The verdict on one part of the platform."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def safe_url(url: str) -> str:
    """``url`` without its password (database URLs) or user information (HTTP URLs)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        return _without_userinfo(url)
    if parsed.drivername.startswith(("http", "https")):
        return _without_userinfo(url)
    return parsed.render_as_string(hide_password=True)


def _without_userinfo(url: str) -> str:
    import httpx

    try:
        return str(httpx.URL(url).copy_with(username=None, password=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<unparsable URL>"


def _sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL (None for other databases and in-memory ones)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


# -- the Risk API ------------------------------------------------------------------------------


def check_api(settings: Settings) -> HealthResult:
    """One authenticated call (a one-record page of accounts) with the configured key."""
    from daily_profit.api.client import RetrySettings, RiskApiClient
    from daily_profit.api.errors import RiskApiError

    name = "api"
    if settings.uses_sandbox:
        from daily_profit.sandbox.launcher import sandbox_base_url, sandbox_info

        if sandbox_info(settings) is None:
            return HealthResult(name, False, NOT_RUNNING_SANDBOX)
        base_url = sandbox_base_url(settings)
    else:
        base_url = settings.risk_api_base_url
    shown = safe_url(base_url)
    retry = RetrySettings(
        max_attempts=2, max_total_seconds=API_BUDGET_S, fetch_budget_seconds=API_BUDGET_S
    )
    try:
        with RiskApiClient(
            base_url,
            settings.risk_api_key.get_secret_value(),
            timeout=API_TIMEOUT_S,
            retry=retry,
            max_connections=1,
        ) as client:
            page = client.get_page("accounts", limit=1)
    except RiskApiError as exc:
        if exc.status_code in (401, 403):
            return HealthResult(name, False, f"{shown}: key rejected (HTTP {exc.status_code})")
        # The error names the endpoint, its parameters and the API's message; never the key.
        return HealthResult(name, False, f"{shown}: {exc}")
    return HealthResult(name, True, f"{shown} answered with the key ({page.total} accounts)")


# -- the warehouse -----------------------------------------------------------------------------


def check_warehouse(settings: Settings) -> HealthResult:
    """The warehouse answers and its schema is at the migrations' head."""
    from daily_profit.warehouse.migrate import current_revision, head_revision

    name = "warehouse"
    url = settings.resolved_warehouse_url
    shown = safe_url(url)
    database = _sqlite_file(url)
    if database is not None and not database.exists():
        # Connecting would create an empty file: a health check changes nothing.
        return HealthResult(name, False, f"{shown}: no database file (./dp migrate creates it)")
    try:
        current = current_revision(url)
    except sa.exc.SQLAlchemyError as exc:
        return HealthResult(name, False, f"{shown}: unreachable ({exc.__class__.__name__})")
    head = head_revision()
    if current != head:
        return HealthResult(
            name,
            False,
            f"{shown}: at revision {current or 'none (empty)'}, head is {head} (run ./dp migrate)",
        )
    return HealthResult(name, True, f"{shown}: migrations at head ({head})")


# -- MLflow ------------------------------------------------------------------------------------


def check_mlflow(settings: Settings) -> HealthResult:
    """The tracking store answers and the registered model has a champion. Reads the registry
    only: the model itself is not loaded."""
    import mlflow

    from daily_profit.modeling.tracking import CHAMPION, TrackingTarget, aliased_version

    name = "mlflow"
    uri = settings.resolved_mlflow_tracking_uri
    shown = safe_url(uri)
    store = _sqlite_file(uri) if uri.startswith("sqlite") else None
    if store is not None and not store.exists():
        # MLflow would create (and migrate) an empty store on first contact.
        return HealthResult(name, False, f"{shown}: no tracking store yet (./dp main trains one)")
    target = TrackingTarget.for_uri(uri)
    model = target.registered_model_name
    try:
        version = aliased_version(target, CHAMPION)
    except mlflow.exceptions.MlflowException as exc:
        return HealthResult(name, False, f"{shown}: unreachable ({exc.error_code})")
    if version is None:
        return HealthResult(
            name,
            False,
            f"{shown}: no {CHAMPION} version of {model} (the nightly predictions wait for one: "
            "champion_registered blocks them)",
        )
    return HealthResult(name, True, f"{shown}: {CHAMPION} is version {version} of {model}")


# -- Dagster -----------------------------------------------------------------------------------


def check_dagster(instance: dg.DagsterInstance) -> list[HealthResult]:
    """The instance's storage answers, and every daemon it needs has a recent heartbeat."""
    try:
        heartbeats = instance.get_daemon_heartbeats()
        required = list(instance.get_required_daemon_types())
    except Exception as exc:  # any storage error: the instance is what is unhealthy
        return [HealthResult("dagster", False, f"instance unreachable ({exc.__class__.__name__})")]
    root = getattr(instance, "root_directory", None)
    where = f"instance at {root}" if root else "instance"
    results = [HealthResult("dagster", True, f"{where} answers")]
    if not heartbeats:
        results.append(
            HealthResult("daemon", False, "no heartbeat (start `dagster-daemon run` or `./dp ui`)")
        )
        return results
    now = time.time()
    missing = [t for t in required if t not in heartbeats]
    stale = {
        t: now - hb.timestamp
        for t, hb in heartbeats.items()
        if t in required and now - hb.timestamp > HEARTBEAT_STALE_AFTER.total_seconds()
    }
    erring = sorted(t for t, hb in heartbeats.items() if t in required and hb.errors)
    problems = [f"{t}: no heartbeat" for t in missing]
    problems += [f"{t}: last heartbeat {age:.0f}s ago" for t, age in sorted(stale.items())]
    problems += [f"{t}: reports errors" for t in erring if t not in stale]
    if problems:
        results.append(HealthResult("daemon", False, "; ".join(problems)))
    else:
        newest = max(hb.timestamp for hb in heartbeats.values())
        results.append(
            HealthResult(
                "daemon",
                True,
                f"{len(required)} daemons alive (last heartbeat {now - newest:.0f}s ago)",
            )
        )
    return results


# -- last night's run --------------------------------------------------------------------------


def expected_latest_day(settings: Settings, now: dt.datetime | None = None) -> dt.date:
    """The latest trading day that should be in the warehouse by ``now``.

    With the sandbox: the day its clock stands on (its last simulated day unless days are held
    back). Against the real API: the day that closed before
    the latest nightly tick in the broker's zone (between midnight and the tick, the day
    before yesterday), so that the minutes before the nightly run are not reported as late.
    """
    if settings.uses_sandbox:
        from daily_profit.sandbox.clock import sandbox_current_day

        return sandbox_current_day(settings)
    local = (now or dt.datetime.now(dt.UTC)).astimezone(ZoneInfo(settings.broker_timezone))
    closed = local.date() - dt.timedelta(days=1)
    if local.time() < settings.nightly_run_time:
        closed -= dt.timedelta(days=1)
    return closed


def check_nightly(settings: Settings, now: dt.datetime | None = None) -> list[HealthResult]:
    """The latest raw day published and the latest predictions, against the expected day."""
    from daily_profit.ingestion.sources import DAILY_API_SOURCES
    from daily_profit.warehouse.derived import daily_predictions
    from daily_profit.warehouse.io import Warehouse

    url = settings.resolved_warehouse_url
    database = _sqlite_file(url)
    if database is not None and not database.exists():
        reason = "no warehouse to read"
        return [HealthResult("raw", False, reason), HealthResult("predictions", False, reason)]
    expected = expected_latest_day(settings, now)
    try:
        with Warehouse(url) as store:
            raw_day = store.last_published_day([s.table for s in DAILY_API_SOURCES])
            predicted_day = store.last_published_day([daily_predictions.name])
    except sa.exc.SQLAlchemyError as exc:
        reason = f"warehouse unreadable ({exc.__class__.__name__})"
        return [HealthResult("raw", False, reason), HealthResult("predictions", False, reason)]
    return [
        _freshness("raw", "latest raw day published", raw_day, expected),
        _freshness("predictions", "latest daily_predictions day", predicted_day, expected),
    ]


def _freshness(name: str, what: str, day: dt.date | None, expected: dt.date) -> HealthResult:
    if day is None:
        return HealthResult(name, False, f"nothing published yet (expected {expected})")
    if day < expected:
        late = (expected - day).days
        return HealthResult(
            name, False, f"{what} {day}, expected {expected} ({late} day(s) behind)"
        )
    return HealthResult(name, True, f"{what} {day} (expected {expected})")


# -- all of it ---------------------------------------------------------------------------------


def _guarded(
    name: str, check: Callable[[], HealthResult | list[HealthResult]]
) -> list[HealthResult]:
    """A check that raises is its part's failure, named by the exception's class only (its
    message could carry a URL with a password)."""
    try:
        result = check()
    except Exception as exc:
        return [HealthResult(name, False, f"check failed ({exc.__class__.__name__})")]
    return result if isinstance(result, list) else [result]


def run_health(
    settings: Settings | None = None,
    *,
    instance_factory: Callable[[], Any] | None = None,
    now: dt.datetime | None = None,
) -> list[HealthResult]:
    """Every check, in the order of the nightly's dependencies. ``instance_factory`` returns a
    DagsterInstance context manager (default: the command line's local instance)."""
    settings = settings or get_settings()

    def dagster_checks() -> list[HealthResult]:
        factory = instance_factory
        if factory is None:
            from daily_profit.cli import local_instance

            factory = local_instance
        with factory() as instance:
            return check_dagster(instance)

    results: list[HealthResult] = []
    results += _guarded("api", lambda: check_api(settings))
    results += _guarded("warehouse", lambda: check_warehouse(settings))
    results += _guarded("mlflow", lambda: check_mlflow(settings))
    results += _guarded("dagster", dagster_checks)
    results += _guarded("raw", lambda: check_nightly(settings, now))
    return results


def exit_status(results: Sequence[HealthResult]) -> int:
    """0 when every part is healthy, 1 otherwise (what a monitoring probe reads)."""
    return 0 if all(r.ok for r in results) else 1
