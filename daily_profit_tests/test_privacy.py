"""Masks of trader identities: stable under one key, different under another, not a bare hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import polars as pl
import pytest

from daily_profit.config import get_settings
from daily_profit.privacy import mask_identities, mask_record, mask_value


@pytest.fixture
def identity_key(monkeypatch) -> Iterator[None]:
    """Each test sets its own key; the cached settings follow it and are restored afterwards."""
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _use_key(monkeypatch, key: str) -> None:
    monkeypatch.setenv("DAILY_PROFIT_IDENTITY_HASH_KEY", key)
    get_settings.cache_clear()


def test_the_same_key_gives_the_same_mask_in_every_run(monkeypatch, identity_key) -> None:
    _use_key(monkeypatch, "desk-secret-1")
    first = mask_value("5100038")
    get_settings.cache_clear()  # a new run reads its settings afresh
    assert mask_value("5100038") == first
    assert mask_value("5100039") != first
    assert first.startswith("h:") and "5100038" not in first


def test_another_key_gives_other_masks(monkeypatch, identity_key) -> None:
    _use_key(monkeypatch, "desk-secret-1")
    under_one = [mask_value(v) for v in ("5100038", "TR678052", "0030cc9c41f1c3b6")]
    _use_key(monkeypatch, "desk-secret-2")
    under_two = [mask_value(v) for v in ("5100038", "TR678052", "0030cc9c41f1c3b6")]
    assert all(a != b for a, b in zip(under_one, under_two, strict=True))


def test_a_loop_over_numeric_logins_with_plain_sha256_does_not_reverse_a_mask(
    monkeypatch, identity_key
) -> None:
    _use_key(monkeypatch, "desk-secret-1")
    logins = [str(n) for n in range(5_100_000, 5_101_000)]
    masks = {mask_value(login) for login in logins}
    # What an attacker without the key computes: every candidate login's bare SHA-256, cut the
    # way masks are. None of them matches any mask.
    guesses = {"h:" + hashlib.sha256(login.encode()).hexdigest()[:10] for login in logins}
    assert masks.isdisjoint(guesses)
    assert len(masks) == len(logins)


def test_mask_identities_masks_identity_columns_only(monkeypatch, identity_key) -> None:
    _use_key(monkeypatch, "desk-secret-1")
    frame = pl.DataFrame(
        {"login": [5100038, None], "trader": ["TR678052", "TR1"], "net_profit": [1.5, -2.0]}
    )
    masked = mask_identities(frame)
    assert masked["login"].to_list() == [mask_value("5100038"), None]
    assert masked["trader"].to_list() == [mask_value("TR678052"), mask_value("TR1")]
    assert masked["net_profit"].to_list() == [1.5, -2.0]


def test_mask_record_masks_the_identity_fields_of_a_natural_key(monkeypatch, identity_key) -> None:
    _use_key(monkeypatch, "desk-secret-1")
    key = {"accountId": "0030cc9c41f1c3b6", "login": None, "date": "2025-01-07", "hour": 5}
    assert mask_record(key) == {
        "accountId": mask_value("0030cc9c41f1c3b6"),
        "login": None,
        "date": "2025-01-07",
        "hour": 5,
    }
