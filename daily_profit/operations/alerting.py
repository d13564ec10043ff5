"""Alerts: what went wrong, sent once per incident to a webhook and by email.

An alert names the asset, the day, what failed and a link to the run in the Dagster UI. The
webhook gets Slack-compatible JSON (``text`` plus ``blocks``), so a Slack incoming webhook, a
Mattermost or a Teams connector in Slack mode takes it as is; email goes through SMTP. Both are
configured in the settings; the webhook URL and the SMTP password are secrets and never appear in
an alert, a log line or an error.

One alert per incident: an incident is a key (kind, asset, check, day); it opens with its first
failure, every later failure of the same key (a retry, the next step, the next tick) is the same
incident, and a success of the same key closes it, so that the next failure alerts again. The
incidents a tick opens on one asset and day (a source-day's checks failing together) go out as
one alert naming every check (``merged``). The ledger of open incidents is plain data, kept by the caller (the alert sensor keeps it in its
cursor). No Dagster here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)

REDACTED = "***"
# An incident not seen again for this long is forgotten (the ledger stays small).
INCIDENT_MEMORY = dt.timedelta(days=45)
MAX_DETAIL_CHARS = 300


class AlertKind(StrEnum):
    RUN_FAILURE = "run_failure"
    CHECK_FAILED = "check_failed"
    DEADLINE_MISSED = "deadline_missed"
    DRIFT = "drift"
    MODEL_DECAY = "model_decay"


TITLES = {
    AlertKind.RUN_FAILURE: "Run failed",
    AlertKind.CHECK_FAILED: "Blocking check failed",
    AlertKind.DEADLINE_MISSED: "Predictions missed their deadline",
    AlertKind.DRIFT: "Feature drift",
    AlertKind.MODEL_DECAY: "Model decay",
}


@dataclass(frozen=True)
class Alert:
    """One incident, as the people on call read it."""

    kind: AlertKind
    what: str
    asset: str | None = None
    day: str | None = None
    check: str | None = None
    run_id: str | None = None
    run_url: str | None = None
    details: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def incident_key(self) -> str:
        return "|".join([self.kind.value, self.asset or "", self.check or "", self.day or ""])

    @property
    def title(self) -> str:
        where = " ".join(x for x in (self.asset, self.day) if x)
        return f"{TITLES[self.kind]}: {where}" if where else TITLES[self.kind]


def merged(alerts: Iterable[Alert]) -> list[Alert]:
    """The alerts to send, one per (kind, asset, day): checks of one source-day that fail
    together (its schema drifted, so its records were quarantined, so it was not published)
    are one thing gone wrong, told once with every check named. Each check's incident stays in
    the ledger on its own, so each closes with its own success."""
    groups: dict[tuple[str, str, str], list[Alert]] = {}
    for alert in alerts:
        groups.setdefault((alert.kind.value, alert.asset or "", alert.day or ""), []).append(alert)
    out: list[Alert] = []
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            out.append(first)
            continue
        whats = list(dict.fromkeys(a.what for a in group))
        details: dict[str, str | int | float | bool] = {}
        for alert in group:
            for key, value in alert.details.items():
                details.setdefault(key, value)
        out.append(
            Alert(
                kind=first.kind,
                what=" | ".join(whats),
                asset=first.asset,
                day=first.day,
                check=", ".join(dict.fromkeys(a.check for a in group if a.check)),
                run_id=first.run_id,
                run_url=first.run_url,
                details=dict(list(details.items())[:8]),
            )
        )
    return out


# -- the ledger of open incidents ---------------------------------------------------------------


@dataclass
class IncidentLedger:
    """Open incidents by key, with when each was first seen (ISO timestamps)."""

    open: dict[str, str] = field(default_factory=dict)

    def failure(self, key: str, at: dt.datetime) -> bool:
        """Record a failure of ``key``; True when it opens a new incident (alert it)."""
        if key in self.open:
            return False
        self.open[key] = at.isoformat()
        return True

    def success(self, key: str) -> bool:
        """A success of ``key`` closes its incident; True when one was open."""
        return self.open.pop(key, None) is not None

    def forget_before(self, cutoff: dt.datetime) -> None:
        self.open = {k: t for k, t in self.open.items() if dt.datetime.fromisoformat(t) >= cutoff}

    def to_json(self) -> dict[str, Any]:
        return {"open": self.open}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> IncidentLedger:
        return cls(open=dict((data or {}).get("open", {})))


# -- rendering ----------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced (the URL of the webhook embeds its token)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _lines(alert: Alert) -> list[tuple[str, str]]:
    rows = [
        ("asset", alert.asset or "-"),
        ("day", alert.day or "-"),
    ]
    if alert.check:
        rows.append(("check", alert.check))
    rows.append(("what failed", alert.what))
    rows.extend((k, _short(v)) for k, v in alert.details.items())
    if alert.run_url:
        rows.append(("run", alert.run_url))
    return rows


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack-compatible webhook JSON: a plain ``text`` fallback and the same as ``blocks``."""
    lines = _lines(alert)
    text = f"{alert.title}\n" + "\n".join(f"{k}: {v}" for k, v in lines)
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in lines if k != "run"]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
        # Slack allows at most 10 fields in a section.
        *({"type": "section", "fields": fields[i : i + 10]} for i in range(0, len(fields), 10)),
    ]
    if alert.run_url:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{alert.run_url}|Open the run in Dagster>"},
            }
        )
    return {"text": text, "blocks": blocks}


def email_message(alert: Alert, *, sender: str, recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[daily-profit] {alert.title}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["X-Daily-Profit-Incident"] = alert.incident_key
    body = [alert.title, ""] + [f"{k}: {v}" for k, v in _lines(alert)]
    message.set_content("\n".join(body) + "\n")
    return message


# -- channels -----------------------------------------------------------------------------------


class DeliveryError(RuntimeError):
    """A channel did not take the alert; the message names the channel, never its secret."""


@dataclass(frozen=True)
class WebhookChannel:
    url: str
    timeout_s: float = 10.0
    attempts: int = 3

    name = "webhook"

    def send(self, alert: Alert) -> None:
        payload = slack_payload(alert)
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(httpx.HTTPError),
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.5, max=5),
                reraise=True,
            ):
                with attempt:
                    response = httpx.post(self.url, json=payload, timeout=self.timeout_s)
                    response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise DeliveryError(f"webhook answered HTTP {exc.response.status_code}") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook unreachable ({exc.__class__.__name__})") from None


@dataclass(frozen=True)
class EmailChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_s: float = 10.0

    name = "email"

    def send(self, alert: Alert) -> None:
        message = email_message(alert, sender=self.sender, recipients=self.recipients)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"SMTP server {self.host}:{self.port} refused the alert ({exc.__class__.__name__})"
            ) from None


@dataclass(frozen=True)
class Notifier:
    """Sends an alert to every configured channel; what each did is returned, never raised."""

    channels: tuple[WebhookChannel | EmailChannel, ...]
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.channels)

    def scrubbed(self, alert: Alert) -> Alert:
        def clean(value: object) -> Any:
            return redact(value, self.secrets) if isinstance(value, str) else value

        return Alert(
            kind=alert.kind,
            what=clean(alert.what),
            asset=alert.asset,
            day=alert.day,
            check=alert.check,
            run_id=alert.run_id,
            run_url=alert.run_url,
            details={k: clean(v) for k, v in alert.details.items()},
        )

    def send(self, alert: Alert) -> dict[str, str]:
        """Deliver to each channel: {channel: "sent" | the reason it failed}."""
        alert = self.scrubbed(alert)
        outcome: dict[str, str] = {}
        for channel in self.channels:
            try:
                channel.send(alert)
                outcome[channel.name] = "sent"
            except DeliveryError as exc:
                outcome[channel.name] = redact(str(exc), self.secrets)
                log.warning(
                    "alert %s not delivered by %s: %s", alert.incident_key, channel.name, exc
                )
        return outcome

    @classmethod
    def from_settings(cls, settings: object | None = None) -> Notifier:
        if settings is None:
            from daily_profit.config import get_settings

            settings = get_settings()
        s: Any = settings
        channels: list[WebhookChannel | EmailChannel] = []
        secrets: list[str] = [s.risk_api_key.get_secret_value()]
        if s.alert_webhook_url is not None:
            url = s.alert_webhook_url.get_secret_value()
            channels.append(WebhookChannel(url=url))
            secrets.append(url)
        if s.alert_smtp_host and s.alert_email_to:
            password = s.alert_smtp_password.get_secret_value() if s.alert_smtp_password else None
            channels.append(
                EmailChannel(
                    host=s.alert_smtp_host,
                    port=s.alert_smtp_port,
                    sender=s.alert_email_from,
                    recipients=tuple(s.alert_email_to),
                    username=s.alert_smtp_username,
                    password=password,
                    starttls=s.alert_smtp_starttls,
                )
            )
            if password:
                secrets.append(password)
        return cls(channels=tuple(channels), secrets=tuple(secrets))


def run_url(ui_base_url: str, run_id: str) -> str:
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}"


def dumps_cursor(ledger: IncidentLedger, **positions: str | int) -> str:
    return json.dumps({"ledger": ledger.to_json(), "positions": positions}, sort_keys=True)


def loads_cursor(text: str | None) -> tuple[IncidentLedger, dict[str, str | int]]:
    if not text:
        return IncidentLedger(), {}
    data = json.loads(text)
    return IncidentLedger.from_json(data.get("ledger")), dict(data.get("positions", {}))
