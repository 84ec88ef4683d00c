"""Walk-forward windows over session days, and the choice made on each train window.

Days are the union of every ticker's session days, sorted. Step k trains on days [k*M, k*M + N) and tests on the
next M days (the last test window may be shorter); windows roll by M, so every test day is judged exactly once and
only by a choice made on days before it. The choice on a train window: the setting with the highest total P&L
(coordinator, all tickers) over those days; ties go to the earlier setting in grid order, so the same inputs always
give the same choice.
"""
from __future__ import annotations

from dataclasses import dataclass


class WindowError(ValueError):
    """Too few days for the windows asked for (one line, exit 2)."""


@dataclass(frozen=True)
class Step:
    index: int
    train: tuple[int, ...]
    test: tuple[int, ...]


def split(days: list[int], train_days: int, test_days: int) -> list[Step]:
    if train_days < 1 or test_days < 1:
        raise WindowError(f"--train-days {train_days} --test-days {test_days}: both must be at least 1")
    ds = sorted(set(days))
    if len(ds) < train_days + 1:
        raise WindowError(f"{len(ds)} session day(s) in the tapes; --train-days {train_days} needs at least "
                          f"{train_days + 1} (train days plus one test day): give more tapes or fewer train days")
    steps = []
    start = 0
    while start + train_days < len(ds):
        steps.append(Step(len(steps), tuple(ds[start:start + train_days]),
                          tuple(ds[start + train_days:start + train_days + test_days])))
        start += test_days
    return steps


def choose(totals: list[float]) -> int:
    """Index of the best total; the first on ties (max keeps the first maximal element)."""
    return max(range(len(totals)), key=lambda i: (totals[i], -i))
