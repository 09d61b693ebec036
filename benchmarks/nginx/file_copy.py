"""The benchmark pipeline (nginx/pipeline.yaml) reading a file instead of Kafka, and variants of it, as YAML text.

The lake benchmarks (nginx_lake_size.py, nginx_queries.py) build lakes faster from a file: the `kafka` source
becomes a `file` source over the generated input, and nothing else differs downstream but the source's own
columns: the file source adds `source` and `_line` (the line number) where Kafka adds `kafka_topic`,
`kafka_partition` and `kafka_offset`, so a `column_encoding` of `kafka_offset` is carried over to `_line`.
A variant leaves out nodes (`without`: stages, whose consumers then read what they read, and sinks) or options
of the `access` sink (`without_options`), to measure what each part of the pipeline does to the lake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["PIPELINE", "ACCESS_SINK", "file_pipeline"]

PIPELINE = Path(__file__).resolve().parent / "pipeline.yaml"
ACCESS_SINK = "records"
"""The sink that writes the `access` dataset."""


def file_pipeline(source: Path, without: tuple[str, ...] = (), without_options: tuple[str, ...] = ()) -> str:
    """nginx/pipeline.yaml reading `source` (a file of lines), without the given nodes and `access` sink options."""
    spec: dict[str, Any] = yaml.safe_load(PIPELINE.read_text(encoding="utf-8"))
    [name] = spec["sources"]
    spec["sources"] = {name: {"type": "file", "paths": [str(source)]}}
    access = spec["sinks"][ACCESS_SINK]
    encodings = access.get("column_encoding", {})
    if "kafka_offset" in encodings:
        encodings["_line"] = encodings.pop("kafka_offset")
    for option in without_options:
        if option not in access:
            raise SystemExit(f"{PIPELINE}: sink '{ACCESS_SINK}' has no option '{option}' to leave out")
        del access[option]
    for node in without:
        if node in spec["sinks"]:
            del spec["sinks"][node]
        else:
            _remove_stage(spec, node)
    return yaml.safe_dump(spec, sort_keys=False, width=200)


def _remove_stage(spec: dict[str, Any], stage: str) -> None:
    """Drop `stage`; nodes that read it (explicitly, or as the node declared next) read what it read."""
    order = [*spec["sources"], *spec["stages"], *spec["sinks"]]
    if stage not in spec["stages"]:
        raise SystemExit(f"{PIPELINE}: no stage or sink '{stage}' to leave out")
    removed = spec["stages"].pop(stage)
    inputs = removed.get("inputs", [order[order.index(stage) - 1]])
    following = order[order.index(stage) + 1]
    for group in ("stages", "sinks"):
        for name, node in spec[group].items():
            if name == following and "inputs" not in node:
                node["inputs"] = list(inputs)
            if "inputs" in node:
                node["inputs"] = [port for ref in node["inputs"] for port in _replaced(ref, stage, inputs)]


def _replaced(ref: str, stage: str, inputs: list[str]) -> list[str]:
    node, _, port = ref.partition(".")
    if node != stage:
        return [ref]
    if port:
        raise SystemExit(f"{PIPELINE}: '{ref}' reads an output of the stage left out")
    return list(inputs)
