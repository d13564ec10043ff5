"""When to ask for a new model: the retrain sensor's decision, without Dagster.

The sensor reads back what ``feature_drift`` and ``model_performance`` recorded per day and
asks for ``profit_model`` (whose promotion check still decides whether the new version
replaces the champion) when

- **drift**: the mean importance-weighted excess PSI of the latest ``drift_days`` measured days,
  all against the same champion, is above the threshold: several days, not one day's noise;
- **decay**: the latest day of ``model_performance`` says the champion has decayed;

and never twice within the cooldown, nor twice on the same evidence (a stalled pipeline that
records nothing new does not retrain again on yesterday's numbers). The cursor keeps when it
last asked and the newest event it acted on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

TAG_PREFIX = "daily_profit/"
TAG_REASON = f"{TAG_PREFIX}retrain_reason"
TAG_DETAIL = f"{TAG_PREFIX}retrain_detail"
TAG_CHAMPION = f"{TAG_PREFIX}champion_version"
TAG_DRIFT_DAYS = f"{TAG_PREFIX}drift_days"
TAG_DRIFT_PSI = f"{TAG_PREFIX}drift_weighted_excess_psi"
TAG_DECAY_DAY = f"{TAG_PREFIX}decay_day"
# Dagster caps tag values; a detail longer than this is cut (the numbers come first).
MAX_TAG_CHARS = 1000


@dataclass(frozen=True)
class DriftDay:
    """One day's feature_drift as recorded: against which champion, how far."""

    day: dt.date
    champion_version: str
    weighted_excess_psi: float
    event_id: int


@dataclass(frozen=True)
class PerformanceDay:
    """One day's model_performance verdict."""

    day: dt.date
    champion_version: str
    decayed: bool
    reasons: str
    event_id: int


@dataclass(frozen=True)
class RetrainPolicy:
    weighted_psi_threshold: float = 0.2
    drift_days: int = 3
    cooldown: dt.timedelta = dt.timedelta(days=3)

    @classmethod
    def from_settings(cls, settings: object | None = None) -> RetrainPolicy:
        if settings is None:
            from daily_profit.config import get_settings

            settings = get_settings()
        return cls(
            weighted_psi_threshold=settings.drift_weighted_psi_threshold,  # type: ignore[attr-defined]
            drift_days=settings.retrain_drift_days,  # type: ignore[attr-defined]
            cooldown=dt.timedelta(days=settings.retrain_cooldown_days),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class RetrainCursor:
    """What the sensor remembers between ticks."""

    last_requested_at: dt.datetime | None = None
    evidence_event_id: int = 0  # the newest event the last request acted on
    last_reason: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_requested_at": self.last_requested_at.isoformat()
                if self.last_requested_at
                else None,
                "evidence_event_id": self.evidence_event_id,
                "last_reason": self.last_reason,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> RetrainCursor:
        if not text:
            return cls()
        data = json.loads(text)
        at = data.get("last_requested_at")
        return cls(
            last_requested_at=dt.datetime.fromisoformat(at) if at else None,
            evidence_event_id=int(data.get("evidence_event_id", 0)),
            last_reason=str(data.get("last_reason", "")),
        )


@dataclass(frozen=True)
class RetrainDecision:
    request: bool
    why: str  # the reasons when requesting, else why not
    tags: dict[str, str] = field(default_factory=dict)
    cursor: RetrainCursor | None = None  # the new cursor when requesting


def _latest_per_day(events: Iterable[DriftDay]) -> list[DriftDay]:
    """A re-measured day counts once, as last recorded; newest day first."""
    latest: dict[dt.date, DriftDay] = {}
    for event in events:
        if event.day not in latest or event.event_id > latest[event.day].event_id:
            latest[event.day] = event
    return sorted(latest.values(), key=lambda e: e.day, reverse=True)


def drift_evidence(
    events: Iterable[DriftDay], policy: RetrainPolicy
) -> tuple[list[DriftDay], float] | None:
    """The latest ``drift_days`` measured days against the latest day's champion and their
    mean weighted excess PSI; None when fewer such days are recorded."""
    days = _latest_per_day(events)
    if not days:
        return None
    champion = days[0].champion_version
    same = [d for d in days if d.champion_version == champion][: policy.drift_days]
    if len(same) < policy.drift_days:
        return None
    return same, sum(d.weighted_excess_psi for d in same) / len(same)


def latest_performance(events: Iterable[PerformanceDay]) -> PerformanceDay | None:
    return max(events, key=lambda e: (e.day, e.event_id), default=None)


def decide(
    drift: Iterable[DriftDay],
    performance: Iterable[PerformanceDay],
    cursor: RetrainCursor,
    now: dt.datetime,
    policy: RetrainPolicy,
) -> RetrainDecision:
    """Whether to request a retrain now, why, and the tags that say so on the run."""
    if cursor.last_requested_at is not None:
        until = cursor.last_requested_at + policy.cooldown
        if now < until:
            return RetrainDecision(
                False,
                f"cooldown: asked at {cursor.last_requested_at:%Y-%m-%d %H:%M} "
                f"({cursor.last_reason}), not again before {until:%Y-%m-%d %H:%M}",
            )
    reasons: list[str] = []
    details: list[str] = []
    tags: dict[str, str] = {}
    used: list[int] = []
    champion = ""
    notes: list[str] = []

    evidence = drift_evidence(drift, policy)
    if evidence is None:
        notes.append(f"fewer than {policy.drift_days} days of feature_drift against one champion")
    else:
        days, mean_psi = evidence
        span = f"{days[-1].day.isoformat()}..{days[0].day.isoformat()}"
        if mean_psi > policy.weighted_psi_threshold:
            reasons.append("drift")
            champion = days[0].champion_version
            used += [d.event_id for d in days]
            details.append(
                f"mean weighted excess PSI {mean_psi:.3f} > {policy.weighted_psi_threshold:g} "
                f"over {len(days)} days {span} against champion version {champion}"
            )
            tags[TAG_DRIFT_DAYS] = span
            tags[TAG_DRIFT_PSI] = f"{mean_psi:.4f}"
        else:
            notes.append(f"drift {mean_psi:.3f} <= {policy.weighted_psi_threshold:g} over {span}")

    perf = latest_performance(performance)
    if perf is not None and perf.decayed:
        reasons.append("decay")
        champion = champion or perf.champion_version
        used.append(perf.event_id)
        details.append(
            f"champion version {perf.champion_version} decayed on {perf.day}: {perf.reasons}"
        )
        tags[TAG_DECAY_DAY] = perf.day.isoformat()
    elif perf is None:
        notes.append("no model_performance recorded")
    else:
        notes.append(f"not decayed on {perf.day}")

    if not reasons:
        return RetrainDecision(False, "; ".join(notes))
    newest = max(used)
    if newest <= cursor.evidence_event_id:
        return RetrainDecision(
            False, f"{' and '.join(reasons)} already acted on: no new measurement since"
        )
    reason = "+".join(reasons)
    detail = "; ".join(details)
    tags |= {
        TAG_REASON: reason,
        TAG_DETAIL: detail[:MAX_TAG_CHARS],
        TAG_CHAMPION: champion,
    }
    return RetrainDecision(
        True,
        detail,
        tags,
        RetrainCursor(last_requested_at=now, evidence_event_id=newest, last_reason=reason),
    )
