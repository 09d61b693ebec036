"""The `alert` sink's configuration model."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from loglake.schemas.config import SinkConfig, check_group_by
from loglake.schemas.units import Duration

__all__ = ["AlertConfig", "WINDOW_COLUMNS"]

WINDOW_COLUMNS = ("window_start", "window_end")
"""Columns every row must have: the event-time window it aggregates."""


class AlertConfig(SinkConfig):
    """Send a webhook notification when a SQL condition holds over window rows, and again when it stops.

    Each group (`group_by`) is one alert instance: `pending` while the condition has held for less than
    `for` (event time, from `window_start` of the first true row to `window_end` of the latest), `firing`
    after (one `firing` notification), and back to inactive on the next row where it is false (one
    `resolved` notification).

    Example:
        error_rate: {type: alert, inputs: [per_minute], condition: "errors / requests > 0.05", group_by: [service], for: 5m, webhook: "https://hooks.example.com/loglake"}
    """

    type: Literal["alert"]
    condition: str
    """SQL boolean expression over one row in DuckDB's dialect; NULL counts as false."""
    group_by: list[str] = []
    """Columns that identify an alert instance (each value combination fires and resolves on its own); default: one instance."""
    for_: Duration = Field(default="0s", alias="for", validate_default=True)
    """How long the condition must hold, in event time, before the alert fires; a row where it is false starts over."""
    cooldown: Duration = Field(default="0s", validate_default=True)
    """After a group resolves, it does not fire again until this much event time has passed."""
    webhook: SecretStr
    """URL notifications are POSTed to (`http` or `https`; `${VAR}` reads it from the environment)."""
    format: Literal["json", "slack"] = "json"
    """Body: `json` (status, alert, group, condition, summary, values, window_start, window_end, since) or `slack` (`{"text": …}` for an incoming webhook)."""
    summary: str | None = None
    """One-line text with `{column}` placeholders from the row (Python `str.format` syntax, e.g. `{errors} of {requests} failed`)."""
    headers: dict[str, SecretStr] = {}
    """Extra HTTP headers sent with every notification (e.g. `Authorization`)."""
    timeout: Duration = Field(default="10s", validate_default=True)
    """How long one POST may take before it counts as failed."""
    retries: int = Field(default=5, ge=0)
    """Further attempts after a failed POST (connection error, timeout, HTTP 429 or 5xx); other 4xx are not retried."""
    backoff: Duration = Field(default="1s", validate_default=True)
    """Wait before the first retry; it doubles with each retry, up to `max_backoff`, with random jitter."""
    max_backoff: Duration = Field(default="60s", validate_default=True)
    """Longest wait between two attempts (also caps a server's `Retry-After`)."""
    queue_size: int = Field(default=1000, ge=1)
    """Notifications a writer holds while the webhook is slow; when full, the pipeline waits for delivery."""

    @field_validator("group_by")
    @classmethod
    def _group_columns(cls, value: list[str]) -> list[str]:
        return check_group_by(value, WINDOW_COLUMNS, "group_by cannot hold {names}: every window would be its own alert")

    @field_validator("for_", "cooldown", "backoff", "max_backoff")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("headers")
    @classmethod
    def _header_lines(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, text in value.items():
            if not name.strip() or any(c in name for c in ":\r\n\t ") or any(c in text.get_secret_value() for c in "\r\n"):
                raise ValueError(f"header '{name.strip()}' is not a valid HTTP header (no spaces or ':' in names, no line breaks)")
        return value

    @model_validator(mode="after")
    def _backoff_within_cap(self) -> AlertConfig:
        if self.max_backoff < self.backoff:
            raise ValueError("max_backoff must be at least backoff")
        return self
