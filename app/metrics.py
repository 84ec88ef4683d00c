"""Cheap latency histograms for the hot path.

A log-linear histogram (8 sub-buckets per power of two, so any percentile is within 12.5 %) recorded with integer
ops only: no numpy call per event, bounded memory for a 24-hour run, and mergeable across runs.
"""
from __future__ import annotations

from typing import Any

_SUB_BITS = 3
_SUB = 1 << _SUB_BITS
_BUCKETS = 64 * _SUB


def _index(value: int) -> int:
    if value < _SUB:
        return value if value > 0 else 0
    bits = value.bit_length()
    return (bits - _SUB_BITS) * _SUB + ((value >> (bits - _SUB_BITS - 1)) & (_SUB - 1))


def _lower_bound(index: int) -> int:
    if index < _SUB:
        return index
    octave, sub = divmod(index, _SUB)
    bits = octave + _SUB_BITS
    return (1 << (bits - 1)) + (sub << (bits - _SUB_BITS - 1))


class LatencyHistogram:
    """Nanosecond latencies; `percentile()` returns the upper edge of the bucket holding that rank."""

    __slots__ = ("counts", "count", "total", "max")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total = 0
        self.max = 0

    def record(self, value: int) -> None:
        if value < 0:
            value = 0
        self.counts[_index(value)] += 1
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value

    def record_elapsed(self, now: int, events: list[Any]) -> None:
        """Record `now - ev.received_ns` for a batch whose events are in arrival order (the first is the oldest).

        The bucket index of `_index` is written out inline: this runs once per event on the loop's hot path, and
        the call per event costs more than the arithmetic.
        """
        counts = self.counts
        total = 0
        for ev in events:
            v = now - ev.received_ns
            if v >= _SUB:
                b = v.bit_length()
                counts[(b - _SUB_BITS) * _SUB + ((v >> (b - _SUB_BITS - 1)) & (_SUB - 1))] += 1
                total += v
            elif v > 0:
                counts[v] += 1
                total += v
            else:
                counts[0] += 1
        self.count += len(events)
        self.total += total
        oldest = now - events[0].received_ns if events else 0
        if oldest > self.max:
            self.max = oldest

    def merge(self, other: "LatencyHistogram") -> None:
        for i, c in enumerate(other.counts):
            if c:
                self.counts[i] += c
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> int:
        if not self.count:
            return 0
        rank = max(1, int(round(p / 100.0 * self.count + 0.4999999)))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                upper = _lower_bound(i + 1) - 1 if i + 1 < _BUCKETS else self.max
                return min(max(upper, 0), self.max)
        return self.max

    def nonzero_buckets(self) -> list[tuple[int, int]]:
        """(lower edge ns, count) of every non-empty bucket: enough to redraw the histogram later."""
        return [(_lower_bound(i), c) for i, c in enumerate(self.counts) if c]

    def summary_us(self) -> dict[str, float]:
        """p50/p99/p999/max in microseconds, the shape every report uses."""
        return {
            "count": self.count,
            "p50_us": round(self.percentile(50) / 1e3, 1),
            "p99_us": round(self.percentile(99) / 1e3, 1),
            "p999_us": round(self.percentile(99.9) / 1e3, 1),
            "max_us": round(self.max / 1e3, 1),
        }
