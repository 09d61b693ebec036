"""`loglake dev-broker`: a local Kafka-protocol broker in the foreground, for trying pipelines without Kafka.

Every `loglake` command imports this module to build its parser, so the broker is imported when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_dev_broker_command"]


def add_dev_broker_command(commands: Any) -> None:
    """Register `loglake dev-broker` on the CLI's sub-command parser."""
    parser = commands.add_parser(
        "dev-broker",
        help="run a local in-memory Kafka-protocol broker (Tansu) until Ctrl-C; for trying pipelines, not production",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092)")
    parser.set_defaults(handler=_cmd_dev_broker)


def _cmd_dev_broker(args: argparse.Namespace) -> int:
    from loglake.pipelines.broker import start_broker

    broker = start_broker(args.host, args.port)
    print(f"broker listening on {broker.bootstrap} (pid {broker.pid}); messages live in memory only. Ctrl-C to stop.", flush=True)
    print(f"  produce:  loglake produce --brokers {broker.bootstrap} --topic app-logs FILE", flush=True)
    try:
        broker.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    code = broker.process.returncode
    return 0 if code in (0, -15, None) else 1
