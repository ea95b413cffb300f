"""POST JSON with bounded concurrency, timeouts and retries with exponential backoff.

Shared by the HTTP providers so both retry the same way: 408/409/429 and 5xx answers, timeouts
and dropped connections are retried `max_retries` times; anything else fails at once. Errors
are one line and never carry request headers (where the API key lives).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import first_line
from .errors import TeacherError

RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 60.0  # seconds: never sleep longer than this on a server's Retry-After


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff: float = 1.0  # first delay in seconds; doubles each retry (with jitter)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        # Jitter spreads out concurrent clients that all hit a 429 at the same moment.
        return self.backoff * (2**attempt) * random.uniform(0.5, 1.0)


class JsonPoster:
    """A pooled HTTP client that POSTs JSON; at most `max_concurrency` requests in flight at once."""

    def __init__(
        self,
        label: str,
        headers: dict[str, str],
        timeout: float,
        max_concurrency: int,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import httpx2 as httpx

        self._httpx = httpx
        self.label = label
        self.policy = policy
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._client = httpx.Client(
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )

    def post(self, url: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The decoded JSON answer; TeacherError (one line) once retries are spent or on a hard failure."""
        httpx = self._httpx
        attempts = self.policy.max_retries + 1
        for attempt in range(attempts):
            retry_after = None
            try:
                with self._slots:
                    response = self._client.post(url, json=payload)
            except httpx.TimeoutException:
                problem = "timed out"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {first_line(str(exc))})"
            else:
                if response.is_success:
                    return _decode(response, self.label)
                problem = f"HTTP {response.status_code}: {_error_text(response)}"
                if not _retryable(response.status_code):
                    raise TeacherError(f"{self.label}: {problem}")
                retry_after = _retry_after(response)
            if attempt + 1 < attempts:
                self._sleep(self.policy.delay(attempt, retry_after))
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise TeacherError(f"{self.label}: {problem} (gave up after {tries})")

    def close(self) -> None:
        self._client.close()


def _retryable(status: int) -> bool:
    return status in RETRY_STATUSES or status >= 500


def _retry_after(response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def _decode(response, label: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise TeacherError(f"{label}: the answer is not JSON: {first_line(response.text)}") from None
    if not isinstance(body, dict):
        raise TeacherError(f"{label}: expected a JSON object, got {type(body).__name__}")
    return body


def _error_text(response) -> str:
    """The API's own error message when it sends one (OpenAI and Anthropic both use error.message)."""
    try:
        body = response.json()
        message = body["error"]["message"] if isinstance(body.get("error"), dict) else body.get("error")
    except (ValueError, AttributeError, KeyError, TypeError):
        message = None
    return first_line(str(message) if message else response.text or response.reason_phrase)
