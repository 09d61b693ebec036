"""The `sample` stage: keep about 1 record in N, deterministically by a key so a replay keeps the same ones."""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Mapping
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from loglake.schemas.config import StageConfig
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput, split_failures

__all__ = ["SampleConfig", "SampleStage", "stable_hash"]

_DEFAULT_KEY = "message"


def stable_hash(value: str) -> int:
    """A 64-bit BLAKE2b hash of `value`, the same in every process and release (unlike `hash` or Arrow's)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8, person=b"loglake-sample").digest(), "little")


class SampleConfig(StageConfig):
    """Keep about one record in `rate`, chosen by a stable hash of a key field, so a replay keeps the same ones.

    Example:
        some: {type: sample, rate: 10, key: clientip}
    """

    type: Literal["sample"]
    rate: int = Field(ge=1)
    """Keep 1 record in this many (1 keeps everything)."""
    key: str | None = None
    """Field whose value decides (records with equal values are kept or left out together; null counts as empty text); default `message`, or every `rate`-th record when there is no `message` column."""


@register_stage(SampleConfig)
class SampleStage:
    """Hashes each distinct key value once per batch and keeps the records whose hash is 0 modulo `rate`.

    A configured `key` missing from a batch fails its records per `on_error` (never dropped silently).
    Without `key` and without a `message` column the stage counts records (not replay-stable).
    """

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: SampleConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._lock = threading.Lock()
        self._counter = itertools.count()

    def _counted(self, rows: int) -> pa.Array:
        with self._lock:
            start = next(self._counter)
            self._counter = itertools.count(start + rows)
        return pa.array((np.arange(start, start + rows) % self.config.rate) == 0)

    def _hashed(self, column: pa.Array) -> pa.Array:
        text = column if pa.types.is_string(column.type) else column.cast(pa.string())
        encoded = pc.dictionary_encode(pc.fill_null(text, ""))
        rate = self.config.rate
        keep = pa.array([stable_hash(value) % rate == 0 for value in encoded.dictionary.to_pylist()], pa.bool_())
        return keep.take(encoded.indices)

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields (records are kept or not, never changed)."""
        return upstream

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types (records are kept or not, never changed)."""
        return dict(upstream)

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The sampled records; the others are filtered out, not errors."""
        if batch.num_rows == 0 or self.config.rate == 1:
            return StageOutput(main=batch)
        key = self.config.key or _DEFAULT_KEY
        index = batch.schema.get_field_index(key)
        if index >= 0:
            return StageOutput(main=batch.filter(self._hashed(batch.column(index))))
        if self.config.key is None:
            return StageOutput(main=batch.filter(self._counted(batch.num_rows)))
        errors = [f"sample: no field '{key}' in the record"] * batch.num_rows
        return split_failures(batch.slice(0, 0), batch, errors, self.ctx.node, self.config.on_error)
