"""The alert sensor, ticking on a real instance, delivering to a real webhook and SMTP server:
one alert per incident, a retried failure not an incident yet, a success closing it."""

import json

import dagster as dg
import pytest
from pytest_httpserver import HTTPServer

from daily_profit.defs.operations.alerts import alert_sensor

API_KEY = "alert-sensor-secret-key"
DAY = "2025-03-04"
daily = dg.DailyPartitionsDefinition(start_date="2025-03-01", end_date="2025-03-10")


def _assets(check_passes: bool, asset_fails: bool = False, schema_drifts: bool = False) -> list:
    @dg.asset(
        name="raw_trades_closed",
        partitions_def=daily,
        check_specs=[
            dg.AssetCheckSpec(
                "quarantine_share_in_bounds", asset="raw_trades_closed", blocking=True
            ),
            dg.AssetCheckSpec("schema_not_drifted", asset="raw_trades_closed", blocking=True),
        ],
    )
    def raw_trades_closed(context: dg.AssetExecutionContext):
        if asset_fails:
            raise RuntimeError("the API is down")
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name="quarantine_share_in_bounds",
            passed=check_passes,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"quarantined_share": 0.125, "max_share": 0.02},
            description=None if check_passes else "12.5% of 1000 records quarantined",
        )
        yield dg.AssetCheckResult(
            check_name="schema_not_drifted",
            passed=not schema_drifts,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"drifted_fields": "profit"},
            description="profit is missing from every record" if schema_drifts else None,
        )

    return [raw_trades_closed]


def _run(instance, *, check_passes=True, asset_fails=False, schema_drifts=False, tags=None):
    return dg.materialize(
        _assets(check_passes, asset_fails, schema_drifts),
        partition_key=DAY,
        instance=instance,
        tags=tags or {},
        raise_on_error=False,
    )


@pytest.fixture
def receivers(httpserver: HTTPServer, smtp_inbox, settings_env):
    inbox, port = smtp_inbox
    httpserver.expect_request("/hooks/secret-token", method="POST").respond_with_data("ok")
    settings_env(
        risk_api_key=API_KEY,
        alert_webhook_url=httpserver.url_for("/hooks/secret-token"),
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=port,
        alert_email_to=json.dumps(["desk@example.com"]),
        dagster_ui_url="http://dagster.example:3000",
    )
    return httpserver, inbox


@pytest.fixture(params=["in_memory", "run_sharded_sqlite"])
def instance(request, tmp_path):
    """The sensor on an in-memory instance and on the run-sharded SQLite event log of a
    laptop's instance (the project's dagster.yaml), where events are not indexed across runs."""
    if request.param == "in_memory":
        yield dg.DagsterInstance.ephemeral()
        return
    overrides = {
        "event_log_storage": {
            "module": "daily_profit.instance_storage",
            "class": "FastSqliteEventLogStorage",
            "config": {"base_dir": str(tmp_path / "history" / "runs")},
        }
    }
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as sharded:
        yield sharded


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> str | None:
    sensor = alert_sensor()
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    sensor(context)
    return context.cursor


def _texts(httpserver: HTTPServer) -> list[str]:
    return [request.get_json()["text"] for request, _ in httpserver.log]


def test_a_failed_blocking_check_alerts_once_per_incident_until_it_passes(receivers, instance):
    httpserver, inbox = receivers
    failing = _run(instance, check_passes=False)
    cursor = _tick(instance, None)

    [text] = _texts(httpserver)
    assert "raw_trades_closed" in text and DAY in text
    assert "quarantine_share_in_bounds" in text and "12.5% of 1000 records" in text
    assert f"http://dagster.example:3000/runs/{failing.run_id}" in text
    assert API_KEY not in json.dumps([r.get_json() for r, _ in httpserver.log])
    [email] = inbox.messages
    assert "raw_trades_closed" in email["Subject"] and DAY in email["Subject"]

    # The same failure again (a rerun): the same incident, nothing new.
    _run(instance, check_passes=False)
    cursor = _tick(instance, cursor)
    assert len(_texts(httpserver)) == 1
    # It passes: the incident closes; failing again is a new incident.
    _run(instance, check_passes=True)
    cursor = _tick(instance, cursor)
    assert len(_texts(httpserver)) == 1
    _run(instance, check_passes=False)
    _tick(instance, cursor)
    assert len(_texts(httpserver)) == 2
    assert len(inbox.messages) == 2


def test_checks_of_one_day_failing_together_are_one_alert_naming_each(receivers, instance):
    # An API whose schema changed for a day: the field is gone, so every record is quarantined.
    # One thing went wrong with raw_trades_closed on that day: one alert, every check named.
    httpserver, inbox = receivers
    _run(instance, check_passes=False, schema_drifts=True)
    cursor = _tick(instance, None)
    [text] = _texts(httpserver)
    assert "quarantine_share_in_bounds, schema_not_drifted" in text
    assert "12.5% of 1000 records quarantined | profit is missing from every record" in text
    assert len(inbox.messages) == 1
    # Each check is its own incident still: the quarantine passes again, the drift goes on;
    # nothing new. The quarantine failing again reopens its own incident only.
    _run(instance, check_passes=True, schema_drifts=True)
    cursor = _tick(instance, cursor)
    _run(instance, check_passes=False, schema_drifts=True)
    _tick(instance, cursor)
    texts = _texts(httpserver)
    assert len(texts) == 2 and "schema_not_drifted" not in texts[1]


def test_a_run_failure_alerts_once_and_a_failure_dagster_will_retry_does_not(receivers, instance):
    httpserver, _ = receivers
    _run(instance, asset_fails=True, tags={"dagster/will_retry": "true"})
    cursor = _tick(instance, None)
    assert _texts(httpserver) == []  # Dagster retries it: not an incident yet

    last = _run(instance, asset_fails=True)
    cursor = _tick(instance, cursor)
    [text] = _texts(httpserver)
    assert "Run failed" in text and last.run_id in text and DAY in text
    _run(instance, asset_fails=True)
    _tick(instance, cursor)
    assert len(_texts(httpserver)) == 1
