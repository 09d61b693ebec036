"""The `alert` sink: webhook notifications when a SQL condition holds over window rows, and when it stops.

`config` holds the YAML model, `rules` the per-group state machine (pending → firing → resolved, in event
time), `message` the summary template and the `json`/`slack` bodies, `delivery` the webhook POST with
retries on a bounded background queue, and `sink` ties them together and registers `alert`.
"""

from loglake.operators.alert.config import AlertConfig
from loglake.operators.alert.sink import AlertSink, AlertSinkWriter

__all__ = ["AlertConfig", "AlertSink", "AlertSinkWriter"]
