"""Bucket keys land where Bytewax puts them: bucket i of a keyed stage on its own worker, checked on real workers."""

from __future__ import annotations

import threading

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, cluster_main

from loglake.pipelines.worker_keys import bucket_keys, bytewax_worker


def _threads_of(keys: list[str], workers: int) -> dict[str, int]:
    """The worker thread Bytewax runs each key's state on, in a real run with `workers` threads."""
    seen: dict[str, int] = {}
    lock = threading.Lock()
    flow = Dataflow("keys")
    items = op.input("in", flow, TestingSource([(key, 1) for key in keys]))
    placed = op.stateful_map("state", items, lambda state, value: (state, threading.get_ident()))

    def note(step_id: str, item: tuple[str, int]) -> None:
        with lock:
            seen[item[0]] = item[1]

    op.inspect("note", placed, note)
    cluster_main(flow, [], 0, worker_count_per_proc=workers)  # type: ignore[no-untyped-call]
    return seen


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_each_bucket_key_lands_on_its_own_worker(workers: int) -> None:
    keys = bucket_keys(workers)
    threads = _threads_of(keys, workers)
    assert len(set(threads.values())) == workers, f"buckets share workers: {threads}"


@pytest.mark.parametrize("workers", [2, 3])
def test_the_model_groups_any_keys_as_bytewax_does(workers: int) -> None:
    keys = [str(index) for index in range(12)] + ["window", "a.b", "ünïcode", "x" * 40]
    threads = _threads_of(keys, workers)
    together_in_bytewax = {(a, b) for a in keys for b in keys if threads[a] == threads[b]}
    together_in_model = {(a, b) for a in keys for b in keys if bytewax_worker(a, workers) == bytewax_worker(b, workers)}
    assert together_in_bytewax == together_in_model
