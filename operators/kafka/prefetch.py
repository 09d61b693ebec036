"""How a `kafka` source partition's `prefetch_bytes` becomes librdkafka fetch settings that hold its memory to about that.

librdkafka fetches ahead into a queue per partition and decides whether to send the next fetch by the queue's
level *before* sending it, counting only the messages' keys and values. Both undercount what a consumer holds:

- every queued message also costs librdkafka an op struct and allocator headers (`MESSAGE_OVERHEAD`), as much
  as a 300-byte log line itself, and its share of the decompressed record batch it points into;
- a fetch's size limit counts bytes on the wire, compressed: lz4 inflates nginx lines ~3.6×, so a 4 MiB fetch
  landing on a full queue brought 15 MB of messages (and ~65k op structs) more.

With a quarter of the budget per fetch and the rest as a byte-only queue bound, the nginx benchmark's two
partitions held 122 MiB in librdkafka at the process's peak (memray) for a budget of 2 × 16 MiB; with these
settings 27–39 MiB (two sessions' runs), and a source's peak RSS grows by ~0.9 × `prefetch_bytes` per partition (4 to 64 MiB tried).

What a budget cannot lower (the same pipeline reading a file peaks ~45 MiB lower; with `prefetch_bytes: 1MiB`
still ~25 MiB lower): a broker sends a record batch whole, so a partition holds whole producer batches (1 MB of
nginx lines each; at 1 MiB the two partitions still held 16 MiB in librdkafka, memray); librdkafka's code
(5 MiB); glibc arenas of its threads holding freed memory (~10 MiB, `malloc_info`). A lz4 frame does not state
its decompressed size, so librdkafka's buffer for a batch starts at min(4 × compressed, `message.max.bytes`) and
grows 1.75× at a time, never shrinking: a 1 MB batch ends in a 1.5 MiB buffer (two `zbuf_grow`s per batch in
librdkafka's statistics). Raising `message.max.bytes` to avoid that needs `fetch.max.bytes` raised too
(librdkafka refuses it below), and the benchmark's broker (Tansu) then fills each fetch to `fetch.max.bytes`
whatever `max.partition.fetch.bytes` says: 97k queued messages per partition instead of 29k, peak RSS 568
instead of 492 MiB.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MESSAGE_OVERHEAD", "consumer_tuning", "queue_limits"]

MESSAGE_OVERHEAD = 350
"""Bytes librdkafka holds per fetched message besides its key and value: its `rd_kafka_op_t` (333 bytes measured
with memray, librdkafka 2.16 on x86-64) and the allocator's header."""
_QUEUE_SHARE = 3 / 8
"""Share of the budget the queue may fill with keys and values, and again with `MESSAGE_OVERHEAD` per message."""
_FETCH_SHARE = 1 / 32
"""Share of the budget one fetch may bring, on the wire."""


def queue_limits(prefetch_bytes: int) -> tuple[int, int]:
    """Keys-and-values bytes and the message count at which a partition's queue stops fetching."""
    queued = int(prefetch_bytes * _QUEUE_SHARE)
    return queued, max(queued // MESSAGE_OVERHEAD, 1)


def consumer_tuning(prefetch_bytes: int) -> dict[str, Any]:
    """librdkafka settings that keep one consumer's fetched-but-unread messages within about `prefetch_bytes`.

    Three quarters of the budget go to the queue: fetching pauses when its keys and values reach 3/8 of the
    budget or when it holds as many messages as 3/8 of it pays `MESSAGE_OVERHEAD` for, so keys, values and
    bookkeeping stay within 3/4. The last quarter is for the one fetch that can land on a full queue: it asks for
    1/32 of the budget on the wire, room for its messages to inflate 8× by decompression and bookkeeping (240-byte
    nginx lines under lz4 inflate ~9×: 3.6× decompressed, 2.4× with bookkeeping). A broker returns a first record
    batch larger than the fetch size whole (one producer batch: up to `batch.size`, 1 MB by default).

    librdkafka's default `fetch.queue.backoff.ms` (1 s) idles a consumer whose queue is full for a whole
    second, which caps a 16 MiB queue at ~100k messages/s of 240-byte lines; 10 ms keeps up with the broker.
    """
    queued, messages = queue_limits(prefetch_bytes)
    fetch = int(prefetch_bytes * _FETCH_SHARE)
    return {
        "fetch.max.bytes": fetch,
        "max.partition.fetch.bytes": fetch,
        "message.max.bytes": fetch,  # librdkafka refuses a fetch.max.bytes below it; a consumer only sends small requests
        "queued.max.messages.kbytes": max(queued // 1024, 1),
        "queued.min.messages": messages,  # despite the name, fetching pauses at this many queued messages
        "fetch.queue.backoff.ms": 10,
        "fetch.wait.max.ms": 100,  # an idle fetch returns sooner: a re-assignment (after finding the log end) waits for it
    }
