"""State keys that Bytewax places on chosen workers, so a keyed stage's buckets spread over every worker.

Bytewax sends a stateful step's item to worker `SipHash-1-3(key) mod workers`: Rust's `DefaultHasher` (keys
0, 0) over the key's `str`, which hashes its UTF-8 bytes and a 0xFF terminator. Plain bucket names such as
"0" and "1" both land on one of two workers, which then holds every window group while the other ships it
all its records. `bucket_keys` picks, for bucket i, the first of "i", "i.1", "i.2", … that lands on worker
i mod workers. Should Bytewax hash differently, buckets would only share workers again: slower, never wrong.
"""

from __future__ import annotations

__all__ = ["bytewax_worker", "bucket_keys"]

_MASK = (1 << 64) - 1
_TRIES = 10_000


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _siphash13(data: bytes) -> int:
    """SipHash-1-3 with a zero key (what Rust's `DefaultHasher::new()` computes)."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    whole = len(data) - len(data) % 8
    for start in range(0, whole, 8):
        block = int.from_bytes(data[start:start + 8], "little")
        v3 ^= block
        sip_round()
        v0 ^= block
    last = ((len(data) & 0xFF) << 56) | int.from_bytes(data[whole:], "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        sip_round()
    return v0 ^ v1 ^ v2 ^ v3


def bytewax_worker(key: str, workers: int) -> int:
    """The worker (0 … workers-1) Bytewax gives a stateful step's `key`."""
    return _siphash13(key.encode() + b"\xff") % workers


def bucket_keys(buckets: int) -> list[str]:
    """One state key per bucket; bucket i lands on worker i mod `buckets` (the cluster's worker count)."""
    keys = []
    for index in range(buckets):
        candidates = (str(index) if attempt == 0 else f"{index}.{attempt}" for attempt in range(_TRIES))
        keys.append(next((key for key in candidates if bytewax_worker(key, buckets) == index), str(index)))
    return keys
