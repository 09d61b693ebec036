"""Which writer of a snapshotting sink gets a batch: the one on the worker that made it, so no batch crosses processes."""

from __future__ import annotations

import threading
import zlib

from loglake.pipelines.dataflow import _keyed_for_sink_partitions, _LocalWriters
from loglake.schemas.stage import tag_partition
from tests.support import batch_of


def test_a_batch_goes_to_the_writer_built_on_its_own_worker_thread() -> None:
    local = _LocalWriters()
    key = _keyed_for_sink_partitions(4, local)
    batch = tag_partition(batch_of(a=[1, 2]), "topic-3")
    by_source_partition = [(str(zlib.adler32(b"topic-3") % 4), batch)]
    assert key(batch) == by_source_partition  # no writer built on this thread yet

    keyed_on: dict[str, object] = {}
    both_alive = threading.Barrier(2)  # like Bytewax's workers, the threads live side by side (a thread id is reused once its thread ends)

    def worker(part: str) -> None:
        both_alive.wait()
        local.built(part)
        local.built("0")  # a worker holding two writers keeps using its first
        keyed_on[part] = key(batch)

    threads = [threading.Thread(target=worker, args=(part,)) for part in ("1", "2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert keyed_on == {"1": [("1", batch)], "2": [("2", batch)]}
    assert key(batch) == by_source_partition  # this thread still built none


def test_ticks_and_end_markers_reach_every_writer() -> None:
    local = _LocalWriters()
    local.built("1")
    tick = batch_of()
    assert [part for part, _ in _keyed_for_sink_partitions(3, local)(tick)] == ["0", "1", "2"]
