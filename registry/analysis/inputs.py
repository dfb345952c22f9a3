"""What a canary analysis reads: mergeable aggregates per arm, nothing per event.

Every figure here is a count or a sum that a rollup row can hold and that adds up across
minutes and hours: a mean is (n, sum, sum of squares), a rate is (trials, hits), latency
is the log-bucketed histogram of the metrics (`registry.metrics.histogram`). So an
analysis costs the same at a thousand calls or a hundred million.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from promptctl.registry.errors import UsageError
from promptctl.registry.metrics.histogram import GAMMA, LOG_GAMMA, bucket_of, bucket_value

# log(bucket_value(i)) = log(2 γ^i / (γ + 1)) = i log γ + log(2 / (γ + 1))
_LOG_VALUE_OFFSET = math.log(2 / (GAMMA + 1))


@dataclass(frozen=True)
class Moments:
    """n, sum and sum of squares of one numeric metric: enough for a mean and its variance."""

    n: int = 0
    total: float = 0.0
    sumsq: float = 0.0

    def __post_init__(self) -> None:
        if self.n < 0:
            raise UsageError(f"moments: n is {self.n}, a count cannot be negative")
        if not (math.isfinite(self.total) and math.isfinite(self.sumsq)):
            raise UsageError(
                f"moments: sum {self.total} and sum of squares {self.sumsq} must be finite"
            )

    @classmethod
    def of(cls, values: Iterable[float]) -> Moments:
        """Return the moments of a sequence of values."""
        n, total, sumsq = 0, 0.0, 0.0
        for v in values:
            n += 1
            total += v
            sumsq += v * v
        return cls(n, total, sumsq)

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.total + other.total, self.sumsq + other.sumsq)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The unbiased sample variance (None below two observations)."""
        if self.n < 2:
            return None
        mean = self.total / self.n
        # Rounding can leave a tiny negative where the true value is 0 (identical values).
        return max(0.0, (self.sumsq - self.n * mean * mean) / (self.n - 1))

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "sum": self.total, "sumsq": self.sumsq}


@dataclass(frozen=True)
class Proportion:
    """Trials and hits of one flag (an error, an invalid output, a truncation)."""

    n: int = 0
    hits: int = 0

    def __post_init__(self) -> None:
        if self.n < 0 or not 0 <= self.hits <= self.n:
            raise UsageError(
                f"proportion: {self.hits} hits of {self.n} trials (need 0 <= hits <= trials)"
            )

    def __add__(self, other: Proportion) -> Proportion:
        return Proportion(self.n + other.n, self.hits + other.hits)

    @property
    def rate(self) -> float | None:
        return self.hits / self.n if self.n else None

    def moments(self) -> Moments:
        """The flag as a 0/1 variable: sum and sum of squares are both the hits."""
        return Moments(self.n, float(self.hits), float(self.hits))

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "hits": self.hits}


@dataclass(frozen=True)
class LatencyHistogram:
    """Latencies in the metrics' log buckets: bucket i holds (γ^(i-1), γ^i]; 0 ms apart."""

    buckets: tuple[tuple[int, int], ...] = ()  # (bucket index, count), sorted, counts > 0
    zero: int = 0
    _log: Moments = field(init=False, repr=False, compare=False)
    _cumulative: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.zero < 0 or any(c < 0 for _, c in self.buckets):
            raise UsageError("latency histogram: a bucket count is negative")
        if any(a[0] >= b[0] for a, b in zip(self.buckets, self.buckets[1:], strict=False)):
            raise UsageError("latency histogram: bucket indices must be unique and sorted")
        n, total, sumsq = 0, 0.0, 0.0
        cumulative = []
        for index, count in self.buckets:
            value = index * LOG_GAMMA + _LOG_VALUE_OFFSET
            n += count
            total += count * value
            sumsq += count * value * value
            cumulative.append(n)
        object.__setattr__(self, "_log", Moments(n, total, sumsq))
        object.__setattr__(self, "_cumulative", tuple(cumulative))

    @classmethod
    def from_buckets(cls, buckets: Mapping[int, int], zero: int = 0) -> LatencyHistogram:
        """Build from a map of bucket index to count (as `Aggregate.buckets` holds)."""
        return cls(tuple(sorted((i, c) for i, c in buckets.items() if c)), zero)

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> LatencyHistogram:
        """Build from the dense form a rollup row stores: {zero, offset, counts}."""
        if not stored:
            return cls()
        try:
            offset, counts, zero = stored["offset"], stored.get("counts", []), stored["zero"]
            pairs = tuple((offset + k, int(c)) for k, c in enumerate(counts) if c)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(
                f"latency histogram: expected {{zero, offset, counts}}, got {dict(stored)!r}"
            ) from exc
        return cls(pairs, int(zero))

    @classmethod
    def of(cls, latencies_ms: Iterable[float]) -> LatencyHistogram:
        """Bucket raw latencies exactly as the metrics ingest does."""
        counts: dict[int, int] = {}
        zero = 0
        for v in latencies_ms:
            if v > 0:
                i = bucket_of(v)
                counts[i] = counts.get(i, 0) + 1
            else:
                zero += 1
        return cls.from_buckets(counts, zero)

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        merged = dict(self.buckets)
        for i, c in other.buckets:
            merged[i] = merged.get(i, 0) + c
        return LatencyHistogram.from_buckets(merged, self.zero + other.zero)

    @property
    def count(self) -> int:
        """Every latency counted, 0 ms included."""
        return self._log.n + self.zero

    @property
    def log_moments(self) -> Moments:
        """Moments of log(latency in ms) over the latencies above 0, each at its bucket value.

        A bucket's value is within 1 % of its members, so each log is within 0.01 of
        exact: a shift well below any tolerance, and the same in both arms.
        """
        return self._log

    def quantile(self, q: float) -> float | None:
        """Return the q-quantile in ms (nearest rank), within 1 % of exact.

        The rule of `registry.metrics.histogram.quantile`, by bisection of the running
        counts instead of a walk over the buckets.
        """
        total = self.zero + self._log.n
        if total == 0:
            return None
        rank = max(1, math.ceil(q * total - 1e-9))
        if rank <= self.zero:
            return 0.0
        k = bisect_left(self._cumulative, rank - self.zero)
        return bucket_value(self.buckets[min(k, len(self.buckets) - 1)][0])

    def to_json(self) -> dict[str, Any]:
        if not self.buckets:
            return {"zero": self.zero, "offset": 0, "counts": []}
        low, high = self.buckets[0][0], self.buckets[-1][0]
        dense = [0] * (high - low + 1)
        for i, c in self.buckets:
            dense[i - low] = c
        return {"zero": self.zero, "offset": low, "counts": dense}


@dataclass(frozen=True)
class ArmData:
    """One arm's (stable or canary) aggregates over the analysis window.

    `latency` holds successful calls only: a failed call's latency (often a fast refusal)
    would make a failing arm look faster. Means are over the calls that reported the
    figure; flags are over the calls that reported them (`invalid_output` counts calls
    with an `output_valid`, `truncation` calls with a `finish_reason`).
    """

    calls: int = 0
    errors: int = 0
    latency: LatencyHistogram = LatencyHistogram()
    cost: Moments = Moments()
    input_tokens: Moments = Moments()
    output_tokens: Moments = Moments()
    quality: Moments = Moments()
    invalid_output: Proportion = Proportion()
    truncation: Proportion = Proportion()

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.calls:
            raise UsageError(
                f"arm: {self.errors} errors of {self.calls} calls (need 0 <= errors <= calls)"
            )

    @property
    def successes(self) -> int:
        return self.calls - self.errors

    @property
    def error(self) -> Proportion:
        return Proportion(self.calls, self.errors)

    def __add__(self, other: ArmData) -> ArmData:
        return ArmData(
            calls=self.calls + other.calls,
            errors=self.errors + other.errors,
            latency=self.latency + other.latency,
            cost=self.cost + other.cost,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            quality=self.quality + other.quality,
            invalid_output=self.invalid_output + other.invalid_output,
            truncation=self.truncation + other.truncation,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "latency_histogram": self.latency.to_json(),
            "cost": self.cost.to_json(),
            "input_tokens": self.input_tokens.to_json(),
            "output_tokens": self.output_tokens.to_json(),
            "quality": self.quality.to_json(),
            "invalid_output": self.invalid_output.to_json(),
            "truncation": self.truncation.to_json(),
        }
