"""Alerts reach a real webhook receiver and a real SMTP server, once per incident, without secrets."""

from __future__ import annotations

import datetime as dt

from pydantic import SecretStr
from pytest_httpserver import HTTPServer

from daily_profit.config import Settings
from daily_profit.operations.alerting import (
    Alert,
    AlertKind,
    IncidentLedger,
    Notifier,
    dumps_cursor,
    loads_cursor,
)

API_KEY = "very-secret-api-key"
SMTP_PASSWORD = "smtp-password-1234"


def _settings(httpserver: HTTPServer, smtp_port: int) -> Settings:
    return Settings(
        risk_api_key=SecretStr(API_KEY),
        alert_webhook_url=SecretStr(httpserver.url_for("/hooks/T000/secret-token")),
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=smtp_port,
        alert_smtp_password=SecretStr(SMTP_PASSWORD),
        alert_email_to=["desk@example.com"],
    )


ALERT = Alert(
    kind=AlertKind.CHECK_FAILED,
    asset="raw_trades_closed",
    day="2025-03-04",
    check="quarantine_share_in_bounds",
    what=f"12.5% of records quarantined (threshold 2%); key {API_KEY} leaked into a message",
    run_id="abcd1234",
    run_url="http://127.0.0.1:3000/runs/abcd1234",
    details={"quarantined": 125, "served": 1000},
)


def test_alert_reaches_webhook_and_email_with_its_facts_and_no_secret(
    httpserver: HTTPServer, smtp_inbox
) -> None:
    inbox, port = smtp_inbox
    httpserver.expect_request("/hooks/T000/secret-token", method="POST").respond_with_data("ok")
    notifier = Notifier.from_settings(_settings(httpserver, port))

    outcome = notifier.send(ALERT)

    assert outcome == {"webhook": "sent", "email": "sent"}
    (request, _), *rest = httpserver.log
    assert not rest
    payload = request.get_json()
    text = payload["text"]
    for fact in ("raw_trades_closed", "2025-03-04", "quarantine_share_in_bounds", "12.5%"):
        assert fact in text
    assert "http://127.0.0.1:3000/runs/abcd1234" in text
    assert payload["blocks"][0]["type"] == "header"
    assert API_KEY not in request.get_data(as_text=True)
    assert "secret-token" not in request.get_data(as_text=True)

    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["Subject"] == "[daily-profit] Blocking check failed: raw_trades_closed 2025-03-04"
    body = mail.get_payload(decode=True).decode()
    assert "http://127.0.0.1:3000/runs/abcd1234" in body
    assert API_KEY not in mail.as_string() and SMTP_PASSWORD not in mail.as_string()


def test_an_unreachable_channel_is_reported_not_raised_and_names_no_secret(smtp_inbox) -> None:
    inbox, port = smtp_inbox
    settings = Settings(
        alert_webhook_url=SecretStr("http://127.0.0.1:9/hooks/secret-token"),
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=port,
        alert_email_to=["desk@example.com"],
    )
    outcome = Notifier.from_settings(settings).send(ALERT)
    assert outcome["email"] == "sent"
    assert outcome["webhook"].startswith("webhook unreachable")
    assert "secret-token" not in outcome["webhook"]
    assert len(inbox.messages) == 1


def test_one_alert_per_incident_until_it_closes() -> None:
    ledger = IncidentLedger()
    now = dt.datetime(2025, 3, 5, 6, 0, tzinfo=dt.UTC)
    key = ALERT.incident_key
    assert ledger.failure(key, now)
    assert not ledger.failure(key, now + dt.timedelta(minutes=5)), "a retry is the same incident"
    assert ledger.success(key)
    assert ledger.failure(key, now + dt.timedelta(days=1)), "a new failure after recovery alerts"

    restored, positions = loads_cursor(dumps_cursor(ledger, checks=42))
    assert positions == {"checks": 42}
    assert not restored.failure(key, now + dt.timedelta(days=1))
    restored.forget_before(now + dt.timedelta(days=60))
    assert restored.open == {}


def test_no_channel_configured_means_nothing_to_send() -> None:
    assert not Notifier.from_settings(Settings()).configured
