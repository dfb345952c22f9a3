"""The latency histogram: logarithmic buckets whose quantiles are within 1 % of exact.

A latency v > 0 falls in bucket i = ceil(log_γ v), the values in (γ^(i-1), γ^i], with
γ = (1 + α) / (1 - α) and α = RELATIVE_ACCURACY; the bucket's representative value
2γ^i / (γ + 1) is within α of every member. Latencies of 0 ms are counted apart (`zero`).
A histogram is a map of counts, so histograms merge by addition and a quantile read from
merged ones keeps the same bound (the scheme of DDSketch: Masson, Rim and Lee, 2019).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LOG_GAMMA = math.log(GAMMA)


def bucket_of(latency_ms: float) -> int:
    """Return the histogram bucket of a latency > 0: values in (γ^(i-1), γ^i] share i."""
    return math.ceil(math.log(latency_ms) / LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The value that represents bucket `index`: within RELATIVE_ACCURACY of its members."""
    return 2 * GAMMA**index / (GAMMA + 1)


def histogram_json(buckets: Mapping[int, int], zero: int) -> dict[str, Any]:
    """Dense storage form: counts from the lowest to the highest bucket in use."""
    if not buckets:
        return {"zero": zero, "offset": 0, "counts": []}
    low, high = min(buckets), max(buckets)
    return {
        "zero": zero,
        "offset": low,
        "counts": [buckets.get(i, 0) for i in range(low, high + 1)],
    }


def quantile(
    buckets: Mapping[int, int], zero: int, q: float, low: float, high: float
) -> float | None:
    """Return the q-quantile (nearest rank) of a histogram, clamped to the observed range."""
    total = zero + sum(buckets.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    if rank <= zero:
        return 0.0
    seen = zero
    for index in sorted(buckets):
        seen += buckets[index]
        if seen >= rank:
            return min(max(bucket_value(index), low), high)
    return high
