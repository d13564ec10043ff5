"""Typed errors of the Risk API client.

Every error names the endpoint and the query parameters it was called with, never the API key
(the key travels in a header, so it is never part of what an error can print).
"""

from __future__ import annotations

from collections.abc import Mapping


class RiskApiError(Exception):
    """A Risk API call that did not return usable data."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        params: Mapping[str, object] | None = None,
        status_code: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.params = dict(params or {})
        self.status_code = status_code
        self.reason = message
        where = f"GET {endpoint}"
        if self.params:
            where += " " + " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"{where}{status}: {message}")


class RiskApiTransientError(RiskApiError):
    """Worth retrying: 5xx, timeouts, connection errors and HTTP 200 with a failed status."""


class RiskApiRateLimited(RiskApiTransientError):
    """HTTP 429: the key's allowance is spent; ``retry_after`` seconds is the server's ask."""

    def __init__(self, message: str, *, retry_after: float | None, **kwargs: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class RiskApiPermanentError(RiskApiError):
    """A 4xx other than 429: the request itself is wrong, retrying cannot help."""


class RiskApiAuthError(RiskApiPermanentError):
    """HTTP 401: the API key is missing or wrong."""


class RiskApiCircuitOpen(RiskApiError):
    """The circuit breaker is open after repeated failures: calls fail fast until it resets."""
