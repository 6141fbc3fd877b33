"""POST alerts to a webhook as JSON, with bounded retries and exponential backoff.

A 2xx answer is delivery. Connection errors, timeouts, 408, 429 and 5xx are retried; any other
4xx is refused at once (`WebhookRejected`), since sending the same body again cannot succeed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from ehr_client.audit.errors import WebhookRejected, WebhookUnavailable

_RETRY_STATUS = {408, 429}


class WebhookSender:
    """One httpx client per monitor; `send` posts one alert."""

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, backoff: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._client = httpx.Client(timeout=timeout, headers={"content-type": "application/json",
                                                              "user-agent": "ehr-monitor"})

    def send(self, alert: dict[str, Any]) -> None:
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._client.post(self.url, json=alert)
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
                continue
            if response.is_success:
                return
            if response.status_code < 500 and response.status_code not in _RETRY_STATUS:
                raise WebhookRejected(f"the webhook {self.url} refused alert {alert.get('id')} with HTTP "
                                      f"{response.status_code}; check its URL and what it accepts")
            problem = f"HTTP {response.status_code}"
        raise WebhookUnavailable(f"the webhook {self.url} did not accept alert {alert.get('id')} after "
                                 f"{self.retries + 1} attempts ({problem}); it stays queued and is retried")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> WebhookSender:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
