"""One unit of sweep work: (settings, tape shard) -> a small result dict.

A shard is one ticker's session days from tapes at paths every worker can read. Walk-forward (the default, as
`backtest` does it) a shard is all of the ticker's days, run in order in one Hierarchy so the learned state carries
from day to day exactly as `backtest` carries it; with fresh_each_day a shard is one day and nothing carries, so the
work splits finer. The result holds per-day net P&L per lane only (a few numbers per day), so it is cheap to send
back from a remote worker.

Tapes are parsed once per worker process and kept (keyed by paths, columns and each file's size and mtime): a
worker runs many settings over the same tapes, and parsing would otherwise be paid per task.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from app import config as config_mod
from app.backtest.days import DayTape, group_days
from app.backtest.runner import run_ticker
from app.backtest.sources import load_tape, parse_columns
from app.research.grid import Setting


@dataclass(frozen=True)
class Task:
    index: int  # position in the sweep's task list: results are put back in this order, whatever finishes first
    setting_index: int  # -1: the base (default) settings
    setting: Setting
    ticker: str
    day: int | None  # None: all the ticker's days, learned state carried; else this one day, fresh
    paths: tuple[str, ...]
    base: dict[str, Any]  # the base config as plain data (picklable, no file needed on the worker)
    columns: str | None = None


_TAPES: dict[tuple, dict[str, list[DayTape]]] = {}


def _stamp(paths: tuple[str, ...]) -> tuple:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((p, st.st_size, st.st_mtime_ns))
    return tuple(out)


def days_of(paths: tuple[str, ...], cfg: config_mod.Config, columns: str | None) -> dict[str, list[DayTape]]:
    """ticker -> its DayTapes, parsed once per process for the same files."""
    key = (_stamp(paths), columns)
    got = _TAPES.get(key)
    if got is None:
        cols = parse_columns(columns) if columns else None
        loaded = [(p, load_tape(p, cfg, cols).events) for p in paths]
        got = group_days(loaded)
        _TAPES.clear()  # one tape set per sweep: do not grow without bound in a long-lived cluster worker
        _TAPES[key] = got
    return got


def run_task(task: Task) -> dict[str, Any]:
    t0 = time.perf_counter()
    base = config_mod.from_dict(task.base, "sweep base config")
    cfg = config_mod.with_overrides(base, dict(task.setting)) if task.setting else base
    days = days_of(task.paths, base, task.columns).get(task.ticker, [])
    if task.day is not None:
        days = [d for d in days if d.day == task.day]
    results = run_ticker(cfg, days, fresh_each_day=task.day is not None)
    return {
        "index": task.index,
        "days": {r.day: {lane: ld.net for lane, ld in r.lanes.items()} for r in results},
        "trades": sum(r.trades for r in results),
        "seconds": time.perf_counter() - t0,
    }
