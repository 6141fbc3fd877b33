"""Errors only the audit package raises; each subclasses the ehr_client error it resembles."""

from __future__ import annotations

from ehr_client.errors import EHRError


class WebhookUnavailable(EHRError, ConnectionError):
    """The alert webhook did not accept an alert after every retry; the alert stays queued."""


class WebhookRejected(EHRError, ValueError):
    """The alert webhook answered with a client error (4xx) that retrying cannot fix."""
