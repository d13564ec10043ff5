"""Shared fixtures: a fresh PostgreSQL database per test session, warehouse URLs for both engines,
the Redis server.

PostgreSQL and Redis tests skip with the reason when no server answers, unless ``CI=true``: there
a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from daily_profit.config import get_settings

PG_ADMIN_URL = os.environ.get(
    "DAILY_PROFIT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DAILY_PROFIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True, scope="session")
def _isolated_data_dir(tmp_path_factory) -> Iterator[None]:
    """Tests never touch the project's data/ folder (warehouse, MLflow store, limiter state)."""
    data_dir = tmp_path_factory.mktemp("data")
    previous = os.environ.get("DAILY_PROFIT_DATA_DIR")
    os.environ["DAILY_PROFIT_DATA_DIR"] = str(data_dir)
    get_settings.cache_clear()
    yield
    if previous is None:
        os.environ.pop("DAILY_PROFIT_DATA_DIR", None)
    else:
        os.environ["DAILY_PROFIT_DATA_DIR"] = previous
    get_settings.cache_clear()


@pytest.fixture(autouse=True, scope="session")
def _no_process_left_behind(tmp_path_factory) -> Iterator[None]:
    """The suite leaves nothing running: a sandbox a test started (detached, so that Dagster
    runs share it) or a child process still alive at the end is stopped, and the session fails
    naming it, so that the test that leaked it gets fixed."""
    yield
    from daily_profit_tests import processes

    base = tmp_path_factory.getbasetemp()
    leaked = processes.sandboxes_writing_under(base)
    deadline = time.monotonic() + 10
    while (children := processes.live_children(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.2)  # a child that was just told to stop gets a moment
    left = sorted(set(leaked) | set(children))
    if left:
        described = [processes.describe(pid) for pid in left]
        processes.terminate(left)
        pytest.fail("the tests left processes running (now stopped): " + "; ".join(described))


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch):
    """Set DAILY_PROFIT_* settings for one test: ``settings_env(raw_quarantine_max_share=0.5)``."""

    def apply(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"DAILY_PROFIT_{name.upper()}", str(value))
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of the end-to-end tests (marked slow or browser) run first. xdist deals whole
    files to its two workers in collection order (``--no-loadscope-reorder``; its own order puts
    the files with the most tests first): dealt last, the few minutes-long tests would leave one
    worker running them alone at the end while the other idles."""
    heavy = {
        item.path
        for item in items
        if item.get_closest_marker("slow") or item.get_closest_marker("browser")
    }
    items.sort(key=lambda item: item.path not in heavy)  # stable: files stay whole and in order


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keeps each phase's report on the test item: the browser page fixture takes a screenshot
    when the test's call failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium_executable(tmp_path_factory) -> str:
    """Debian's chromium, installed through apt when missing; skips (or fails in CI) when it
    cannot be had."""
    from daily_profit_tests.browser import ChromiumUnavailable, ensure_chromium

    try:
        # The parent of the base temp folder is shared by the xdist workers of one session.
        return ensure_chromium(tmp_path_factory.getbasetemp().parent)
    except ChromiumUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI=true requires chromium for the browser tests; {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def browser(chromium_executable: str):
    """Headless Chromium for one test module. Not for the session: while Playwright's sync
    API is open its event loop counts as running in the worker's main thread, and every later
    test of that worker that calls ``asyncio.run`` (Dagster's automation evaluator does) fails."""
    from daily_profit_tests.browser import chromium_browser

    with chromium_browser(chromium_executable) as started:
        yield started


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    """A fresh headless page; a full-page screenshot under test-output/browser/ when the test
    fails. Request it after the servers it visits, so that it is closed (and its screenshot
    taken) while they still answer."""
    from daily_profit_tests.browser import page_for_test

    def failed() -> bool:
        report = getattr(request.node, "report_call", None)
        return report is not None and report.failed

    with page_for_test(browser, request.node.nodeid, failed) as opened:
        yield opened


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the server's maintenance database; skips (or fails in CI) without one."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", hide_parameters=True)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        admin.dispose()
        reason = (
            f"no PostgreSQL server reachable at {admin.url.render_as_string()}: "
            f"{exc.__class__.__name__}"
        )
        if _in_ci():
            pytest.fail(f"CI=true requires PostgreSQL; {reason}")
        pytest.skip(reason)
    yield admin
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis server; skips (or fails in CI) without one. Tests use their own
    keys and delete them."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        where = urlsplit(REDIS_URL)  # host and port only: the URL may hold a password
        reason = (
            f"no Redis server reachable at {where.hostname}:{where.port}: {exc.__class__.__name__}"
        )
        if _in_ci():
            pytest.fail(f"CI=true requires Redis; {reason}")
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


@contextmanager
def _fresh_database(admin: sa.Engine) -> Iterator[str]:
    name = f"dp_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """URL of a brand-new PostgreSQL database shared by this test session, dropped at its end."""
    with _fresh_database(postgres_admin) as url:
        yield url


@pytest.fixture
def fresh_postgres_url(postgres_admin: sa.Engine) -> Iterator[str]:
    """URL of a brand-new PostgreSQL database for one test, dropped after it."""
    with _fresh_database(postgres_admin) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, tmp_path) -> str:
    """Run a test on both warehouses: an embedded SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    return request.getfixturevalue("fresh_postgres_url")
