"""Posting notifications to the webhook: checked URL, retries with exponential backoff and jitter, and a
bounded background queue per writer so a slow webhook does not hold up the pipeline.

Each writer has one delivery thread, started with its first notification, that sends notifications one at
a time in the order they were made (a group's `resolved` never overtakes its `firing`). A POST fails on a
connection error, a timeout or a non-2xx answer; connection errors, timeouts, 429 and 5xx are retried
(`retries` times, waits doubling from `backoff` up to `max_backoff`, each drawn from its upper half at
random; a `Retry-After: <seconds>` answer is honoured up to `max_backoff`); redirects and other 4xx are not.
A notification that cannot be delivered stops delivery and is raised as a `TerminalError` by the writer's
next `write` or by `close`, naming the webhook with its secrets masked (`redact_url`).
"""

from __future__ import annotations

import http.client
import logging
import queue
import random
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from loglake.operators.alert.message import Notification
from loglake.schemas.errors import ConfigError, TerminalError
from loglake.schemas.stage import NodeCounters

__all__ = ["RetryPolicy", "Webhook", "Delivery", "redact_url", "check_url"]

log = logging.getLogger(__name__)

_EXCERPT_BYTES = 300
_EXCERPT_CHARS = 200
_MASK = "***"
_TOKEN = re.compile(r"^[A-Za-z0-9_\-.~]{16,}$")
"""A path segment that looks like a credential (Slack, Discord and Teams webhooks carry one in the path)."""
_USER_AGENT = "loglake-alert"


def check_url(url: str) -> None:
    """Raise a ConfigError (field `webhook`) unless `url` is an absolute http(s) URL urllib can send to."""
    def problem(text: str) -> ConfigError:
        return ConfigError(f"webhook {text}", field="webhook")

    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise problem("URL holds spaces or control characters; percent-encode them")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise problem(f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        got = f"'{parts.scheme}:'" if parts.scheme else "none"
        raise problem(f"must be an http:// or https:// URL (scheme: {got})")
    if not parts.hostname:
        raise problem("URL has no host")


def _secrets_of(url: str) -> list[str]:
    """The pieces of `url` that may be credentials: user info, query, token-like path segments."""
    parts = urlsplit(url)
    found = [piece for piece in (parts.username, parts.password, parts.query, parts.fragment) if piece]
    found += [segment for segment in parts.path.split("/") if _TOKEN.match(segment)]
    found += [value for _, _, value in (item.partition("=") for item in parts.query.split("&")) if value]
    return sorted(set(found), key=len, reverse=True)


def redact_url(url: str) -> str:
    """`url` safe to print: user info dropped, query values and credential-like path segments masked.

    `https://hooks.slack.com/services/T0/B0/abcd…1234?x=1` → `https://hooks.slack.com/services/T0/B0/***?x=***`.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host += f":{parts.port}"
    if parts.username or parts.password:
        host = f"{_MASK}@{host}"
    path = "/".join(_MASK if _TOKEN.match(segment) else segment for segment in parts.path.split("/"))
    query = "&".join(f"{name}={_MASK}" if sep else _MASK for name, sep, _ in (item.partition("=") for item in parts.query.split("&") if item))
    return f"{parts.scheme}://{host}{path}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a failed POST again (times in seconds)."""

    retries: int
    backoff: float
    max_backoff: float

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Wait before retry number `retry` (0-based): `backoff · 2^retry` capped, jittered into its upper half."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** min(retry, 32))
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff))
        return wait


class _AttemptFailed(Exception):
    """One POST that did not succeed; `retryable` unless the server refused the request itself."""

    def __init__(self, reason: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects become errors: urllib would turn the POST into a GET and drop the body."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _excerpt(data: bytes) -> str:
    text = " ".join(data.decode("utf-8", errors="replace").split())
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def _retry_after(value: str | None) -> float | None:
    """A `Retry-After` header given in seconds (an HTTP date is ignored)."""
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class Webhook:
    """One webhook URL with its headers; `post` makes a single attempt."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float) -> None:
        check_url(url)
        self._url = url
        self._secrets = _secrets_of(url)
        self.redacted = redact_url(url)
        """The URL as error messages and logs show it."""
        self._headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **headers}
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    def post(self, body: bytes) -> None:
        """POST `body` once; raises `_AttemptFailed` unless the answer is 2xx."""
        request = urllib.request.Request(self._url, data=body, method="POST", headers=self._headers)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read(_EXCERPT_BYTES)
        except urllib.error.HTTPError as exc:
            with exc:
                excerpt = _excerpt(exc.read(_EXCERPT_BYTES)) if exc.fp is not None else ""
            reason = f"HTTP {exc.code} {exc.reason}" + (f": {excerpt}" if excerpt else "")
            retryable = exc.code == 429 or exc.code >= 500
            raise _AttemptFailed(self.scrub(reason), retryable, _retry_after(exc.headers.get("Retry-After"))) from None
        except urllib.error.URLError as exc:
            raise _AttemptFailed(self.scrub(f"cannot reach it: {exc.reason}"), True) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _AttemptFailed(self.scrub(f"no valid answer: {exc or type(exc).__name__}"), True) from None

    def scrub(self, text: str) -> str:
        """`text` with the URL's secret pieces masked (error texts may quote the URL)."""
        text = text.replace(self._url, self.redacted)
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text


_STOP = object()


class Delivery:
    """A writer's outbox: a bounded queue and one background thread that POSTs notifications in order."""

    def __init__(
        self,
        webhook: Webhook,
        policy: RetryPolicy,
        body: Callable[[Notification], bytes],
        size: int,
        node: str,
        counters: NodeCounters,
    ) -> None:
        self.webhook = webhook
        self._policy = policy
        self._body = body
        self._node = node
        self._counters = counters
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._failure: TerminalError | None = None
        self._thread: threading.Thread | None = None

    def send(self, notification: Notification) -> None:
        """Queue a notification; waits while the queue is full, and raises as soon as a delivery has failed."""
        self.check()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"alert-{self._node}", daemon=True)
            self._thread.start()
        self._put(notification)

    def check(self) -> None:
        """Raise the TerminalError of a notification that could not be delivered, if any."""
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """Wait until every queued notification is delivered (retries included); raise if one could not be."""
        if self._thread is not None:
            if self._thread.is_alive():
                self._put(_STOP)
            self._thread.join()
        self.check()

    def abort(self) -> None:
        """Stop without waiting for retries: what is still queued is not sent (logged, as is a failure not raised yet)."""
        self._stop.set()
        dropped = 0
        while True:
            try:
                dropped += self._queue.get_nowait() is not _STOP
            except queue.Empty:
                break
        try:
            self._queue.put_nowait(_STOP)  # wakes a thread waiting for work
        except queue.Full:
            pass  # the thread is busy and sees the stop flag before its next notification
        if self._failure is not None:
            log.error("%s", self._failure)
        if dropped:
            log.warning("%s: aborted; %d alert notifications were not sent to %s", self._node, dropped, self.webhook.redacted)

    def _put(self, item: object) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                self.check()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._stop.is_set():
                return
            try:
                self._deliver(item)
            except TerminalError as exc:
                self._failure = exc
                return

    def _deliver(self, notification: Notification) -> None:
        body = self._body(notification)
        attempts = self._policy.retries + 1
        for attempt in range(attempts):
            try:
                self.webhook.post(body)
            except _AttemptFailed as failure:
                if not failure.retryable or attempt + 1 == attempts:
                    raise self._undelivered(notification, failure, attempt + 1) from None
                if attempt == 0:
                    log.warning(
                        "%s: webhook %s failed (%s); retrying up to %d times",
                        self._node, self.webhook.redacted, failure.reason, self._policy.retries,
                    )
                if self._stop.wait(self._policy.delay(attempt, failure.retry_after)):
                    return
                continue
            self._counters.add("notifications_sent")
            if attempt:
                log.info("%s: webhook %s accepted a notification after %d attempts", self._node, self.webhook.redacted, attempt + 1)
            return

    def _undelivered(self, notification: Notification, failure: _AttemptFailed, attempts: int) -> TerminalError:
        self._counters.add("notifications_failed")
        tried = "not retried" if not failure.retryable else f"gave up after {attempts} attempts"
        what = f"{notification.status} notification for {notification.group_text()}"
        return TerminalError(f"webhook {self.webhook.redacted}: {failure.reason} ({what} not sent; {tried})", node=self._node)
