"""Scaling figures for the README: `python -m tests.research.measure [TRADES_PER_DAY] [DAYS] [SETTINGS]`.

One run, same tasks three ways: --jobs 1, --jobs 2 (local processes) and a Dask LocalCluster of 2 worker processes.
Tasks are one-day tasks (fresh each day), on synthetic Profit tapes written by tests/backtest/make.py. Prints
tasks/minute of each, the in-worker seconds per task, the overhead per task on each engine and the projection for
250 days x 200 settings from the measured cost per trade.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from app import config
from app.cli import build_parser
from app.commands.sweep import plan
from app.research import engine
from app.research.tasks import run_task
from tests.backtest.make import write_tape


def main() -> None:
    trades = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    ndays = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    nset = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    with tempfile.TemporaryDirectory() as tmp:
        dates = [f"{d:02d}/11/2026" for d in (16, 17, 18, 19, 20, 23, 24, 25, 26, 27)[:ndays]]
        write_tape(Path(tmp) / "wdo.csv", [("WDOZ26", d, trades, 100 + k) for k, d in enumerate(dates)])
        values = ",".join(f"{0.2 + 0.05 * k:.2f}" for k in range(nset))
        args = build_parser().parse_args(["sweep", tmp, "--grid", f"coordination.entry_threshold={values}",
                                          "--train-days", "2", "--fresh-each-day"])
        _axes, _settings, tasks, _steps = plan(args, config.load(None))
        rows = []
        for name, kw in (("--jobs 1", {"jobs": 1}), ("--jobs 2", {"jobs": 2})):
            rows.append((name, *_timed(tasks, **kw)))
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
            engine.run(tasks[:2], run_task, cluster=c.scheduler_address)  # workers import the app once
            rows.append(("dask 2 workers", *_timed(tasks, cluster=c.scheduler_address)))
    n = len(tasks)
    print(f"{n} one-day tasks of {trades:,} trades ({nset + 1} settings x {ndays} days)")
    base = rows[0][1]
    for name, wall, work, tr, workers in rows:
        per = work / n
        over = (wall * workers / n - per) / per
        print(f"{name:15s} {60 * n / wall:7.1f} tasks/min  x{base / wall:4.2f} of --jobs 1  "
              f"{per:.3f} s/task in the worker  overhead/task {100 * over:+.1f} %  {tr / work:,.0f} trades/s/core")
    print(f"dask vs --jobs 2 (same 2 slots): wall x{rows[2][1] / rows[1][1]:.2f}")
    print(f"load average at the end (the box is shared): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    per_trade = rows[0][2] / rows[0][3]
    day_trades = 300_000
    core_s = 250 * 200 * day_trades * per_trade
    for cores in (2, 16, 64, 256):
        print(f"250 days x 200 settings x {day_trades:,} trades/day on {cores} cores: "
              f"{core_s / cores / 3600:.1f} h")


def _timed(tasks, **kw) -> tuple[float, float, int, int]:
    t0 = time.perf_counter()
    out, tally = engine.run(tasks, run_task, **kw)
    wall = time.perf_counter() - t0
    assert tally.failed == 0
    return wall, sum(r["seconds"] for r in out), sum(r["trades"] for r in out), kw.get("jobs", 2)


if __name__ == "__main__":
    main()
