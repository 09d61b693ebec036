"""Mergeable, picklable Apache DataSketches for the approximate aggregates, with their stated error bounds.

Each wrapper pickles through the sketch's own `serialize`/`deserialize`, so window state holding them can be
snapshotted by the engine for crash recovery.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from datasketches import (
    frequent_items_error_type,
    frequent_strings_sketch,
    hll_sketch,
    hll_union,
    kll_doubles_sketch,
    tgt_hll_type,
)

__all__ = [
    "QuantileSketch",
    "DistinctSketch",
    "TopKSketch",
    "KLL_K",
    "QUANTILE_RANK_ERROR",
    "HLL_LG_K",
    "COUNT_DISTINCT_ERROR",
    "top_k_lg_size",
]

KLL_K = 200
"""KLL accuracy parameter for `quantile` (DataSketches' default): about 4 KiB per sketch once full."""
QUANTILE_RANK_ERROR: float = kll_doubles_sketch.get_normalized_rank_error(KLL_K, False)
"""Normalised rank error of one `quantile` estimate with 99% confidence (≈ 0.0133 for k = 200): the true rank
of the returned value lies within q ± this. Exact while a window holds at most k values."""

HLL_LG_K = 12
"""log2 of the HLL buckets for `count_distinct` (4,096 buckets, HLL_8: at most 4 KiB per sketch)."""
COUNT_DISTINCT_ERROR: float = abs(hll_sketch.get_rel_err(True, True, HLL_LG_K, 3))
"""Relative error bound of a `count_distinct` estimate at 3 standard deviations (99.7%), for merged sketches
(≈ 4.7%; one standard deviation is ≈ 1.6%). Small counts are (near) exact."""


def top_k_lg_size(k: int) -> int:
    """log2 of the frequent-items map for `top_k(x, k)`: at least 1,024 slots, and 8 slots per wanted item.

    Counts are exact while a window has at most 0.75 × 2^lg distinct values (768 for the minimum). Past that
    each reported count over-estimates the true one by at most ε·N, with ε = 3.5 / 2^lg (0.34% for 1,024
    slots) and N the window's record count, and every value more frequent than ε·N is kept.
    """
    return max(10, (8 * k - 1).bit_length())


class _Sketch:
    """Pickles as the wrapped sketch's serialised bytes."""

    sketch: Any

    def _dump(self) -> bytes:
        data: bytes = self.sketch.serialize()
        return data

    def _load(self, data: bytes) -> Any:
        raise NotImplementedError

    def __getstate__(self) -> bytes:
        return self._dump()

    def __setstate__(self, state: bytes) -> None:
        self.sketch = self._load(state)


class QuantileSketch(_Sketch):
    """A KLL sketch of float values (k = `KLL_K`)."""

    def __init__(self) -> None:
        self.sketch = kll_doubles_sketch(KLL_K)

    def _load(self, data: bytes) -> Any:
        return kll_doubles_sketch.deserialize(data)

    def add(self, values: np.ndarray) -> None:
        """Add float64 values; NaN (missing or non-numeric values) are skipped."""
        values = values[~np.isnan(values)]
        if values.size:
            self.sketch.update(np.ascontiguousarray(values, dtype=np.float64))

    def merge(self, other: QuantileSketch) -> None:
        """Fold another sketch into this one."""
        self.sketch.merge(other.sketch)

    def quantile(self, q: float) -> float | None:
        """The estimated q-quantile, or None when no value was added."""
        return None if self.sketch.is_empty() else float(self.sketch.get_quantile(q))


class DistinctSketch(_Sketch):
    """An HLL sketch (lg_k = `HLL_LG_K`, HLL_8) of distinct values."""

    def __init__(self) -> None:
        self.sketch = hll_sketch(HLL_LG_K, tgt_hll_type.HLL_8)

    def _dump(self) -> bytes:
        data: bytes = self.sketch.serialize_compact()
        return data

    def _load(self, data: bytes) -> Any:
        return hll_sketch.deserialize(data)

    def add(self, values: list[str | int | float]) -> None:
        """Add values (distinct per batch and window in practice); `200` and `"200"` are different values."""
        update = self.sketch.update
        for value in values:
            update(value)

    def merge(self, other: DistinctSketch) -> None:
        """Fold another sketch into this one."""
        union = hll_union(HLL_LG_K)
        union.update(self.sketch)
        union.update(other.sketch)
        self.sketch = union.get_result(tgt_hll_type.HLL_8)

    def estimate(self) -> int:
        """The estimated number of distinct values, rounded."""
        return int(round(self.sketch.get_estimate()))


class TopKSketch(_Sketch):
    """A frequent-strings sketch of weighted values (see `top_k_lg_size` for its guarantee)."""

    def __init__(self, lg_size: int) -> None:
        self.sketch = frequent_strings_sketch(lg_size)

    def _load(self, data: bytes) -> Any:
        return frequent_strings_sketch.deserialize(data)

    def add(self, values: list[str], counts: list[int]) -> None:
        """Add each value with its number of occurrences."""
        update = self.sketch.update
        for value, count in zip(values, counts):
            update(value, count)

    def merge(self, other: TopKSketch) -> None:
        """Fold another sketch into this one."""
        self.sketch.merge(other.sketch)

    def top(self, k: int) -> list[dict[str, Any]]:
        """The k most frequent values with their estimated counts, most frequent first (ties by value)."""
        items = self.sketch.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)
        ranked = sorted(items, key=lambda item: (-item[1], item[0]))[:k]
        return [{"value": value, "count": int(estimate)} for value, estimate, _, _ in ranked]
