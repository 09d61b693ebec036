"""A pretend web shop that logs one structured record per request to Kafka through `LoglakeHandler`.

    python examples/producers/app.py --brokers 127.0.0.1:9092 --topic app-logs --count 500

Requests are made up from a seeded random generator: an INFO line per request with its method, path,
status, duration and ids as fields, WARNING for slow ones, and ERROR with a traceback when a payment
fails. `examples/kafka/pipeline.yaml` reads the topic into a lake. Exit status 1 if any record was lost.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from anywhere: the handler is beside it

from loglake_handler import LoglakeHandler  # noqa: E402

PATHS = ("/", "/products", "/cart", "/checkout", "/healthz")
SLOW_MS = 500.0

log = logging.getLogger("shop.http")


class PaymentDeclinedError(Exception):
    """The made-up payment provider said no."""


def charge(user_id: int, amount: float) -> None:
    """Fail like a real payment call does, now and then."""
    if amount > 190:
        raise PaymentDeclinedError(f"card of user {user_id} declined for {amount:.2f} EUR")


def handle_request(rng: random.Random) -> None:
    """Log one made-up request."""
    path = rng.choice(PATHS)
    method = "POST" if path == "/checkout" else "GET"
    user_id = rng.randint(1, 400)
    duration_ms = round(rng.lognormvariate(4.0, 0.9), 1)
    request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    fields = {"request_id": request_id, "user_id": user_id, "method": method, "path": path, "duration_ms": duration_ms}
    if path == "/checkout":
        try:
            charge(user_id, round(rng.uniform(5, 200), 2))
        except PaymentDeclinedError:
            log.exception("%s %s failed", method, path, extra={**fields, "status": 502})
            return
    level = logging.WARNING if duration_ms >= SLOW_MS else logging.INFO
    log.log(level, "%s %s 200", method, path, extra={**fields, "status": 200})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"), help="bootstrap servers (default $KAFKA_BROKERS or 127.0.0.1:9092)")
    parser.add_argument("--topic", default="app-logs")
    parser.add_argument("--count", type=int, default=500, help="requests to log, one record each")
    parser.add_argument("--service", default="shop")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    handler = LoglakeHandler(args.brokers, args.topic, service=args.service)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    rng = random.Random(args.seed)
    for _ in range(args.count):
        handle_request(rng)
    handler.close()
    print(
        f"{handler.delivered:,} of {args.count:,} records sent to {args.topic} on {args.brokers} "
        f"({handler.dropped:,} dropped, {handler.delivery_errors:,} failed, {handler.undelivered:,} unsent)"
    )
    return 0 if handler.delivered == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
