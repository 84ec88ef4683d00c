"""`python -m app sweep TAPES... --grid KEY=V1,V2 [...]`: walk-forward parameter sweep over recorded tapes.

Every combination of the grid (plus the base config's own settings, the "defaults" row) is backtested on every
ticker as `backtest` does it; the session days are split into rolling train/test windows; each step's setting is
chosen on its train days only and judged on the next test days. Tasks run on local processes (--jobs) or on a Dask
distributed cluster (--cluster). Exit codes: 0 done, 2 configuration (bad --grid key or value, too few days for the
windows, a ticker without a contract), 3 a tape could not be read, 4 --out cannot be written, 5 tasks failed after
their retries (or the cluster could not be reached).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from app import config as config_mod
from app.events import Trade
from app.agents.base import session_day
from app.backtest.sources import TapeError, expand_paths, load_tape, parse_columns, require_spec
from app.cli import EXIT_CONFIG, EXIT_FEED, EXIT_OK, EXIT_STORAGE
from app.research import engine, output, results as R
from app.research.grid import GridError, label, parse, settings as all_settings
from app.research.tasks import Task, run_task
from app.research.walkforward import WindowError, split

NAME = "sweep"
HELP = "walk-forward parameter sweep: every --grid setting backtested, chosen on train days, judged on test days"
EXIT_TASKS = 5

EPILOG = """\
example: python -m app sweep exports/ --grid coordination.entry_threshold=0.3,0.4,0.5 \\
             --grid coordination.learner.fixed_share=0.01,0.02 --train-days 5 --test-days 1 --jobs 2 --out sweep-out
files in --out: summary.md (tables and heatmap.png), summary.csv, steps.csv, settings.csv, chosen.toml (the
setting chosen on the last train window, as a config fragment for run/backtest --config).
--cluster tcp://HOST:8786 runs the tasks on an existing Dask scheduler; its workers need this package installed
(pip install 'hmarl[research]') and the tapes at the same paths.
exit codes: 0 done, 2 configuration, 3 a tape could not be read, 4 --out not writable, 5 tasks failed after retries or the
cluster could not be reached.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("paths", nargs="+", metavar="PATH", help="tapes or folders of them, as for backtest")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a dotted config key and its values; repeat for more keys (every combination is run)")
    p.add_argument("--train-days", type=int, default=5, help="session days a choice is made on (default 5)")
    p.add_argument("--test-days", type=int, default=1, help="session days it is then judged on (default 1)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="local worker processes (default: cores)")
    p.add_argument("--cluster", metavar="ADDRESS", help="run on this Dask distributed scheduler instead")
    p.add_argument("--out", metavar="DIR", help="write CSVs, summary.md, heatmap.png and chosen.toml here")
    p.add_argument("--fresh-each-day", action="store_true",
                   help="nothing learned carries between days; each (setting, day) is its own task")
    p.add_argument("--columns", metavar="MAP", help="column map for CSV tapes, as for backtest")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    print(f"sweep: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"error": message}))
    return code


class _Progress:
    """A rich bar on a terminal; otherwise a plain line about every 10 % (logs, CI)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.bar, self.task, self.last = total, None, None, -1
        self.quiet = quiet
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("tasks", total=total)

    def __call__(self, t: engine.Tally) -> None:
        what = f"{t.done} done, {t.failed} failed, {t.retried} retried"
        if self.bar is not None:
            self.bar.update(self.task, completed=t.done + t.failed, description=what)
        elif not self.quiet:
            tenth = (t.done + t.failed) * 10 // max(self.total, 1)
            if tenth != self.last:
                self.last = tenth
                print(f"sweep: {t.done + t.failed}/{self.total} tasks: {what}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def plan(args: argparse.Namespace, cfg: config_mod.Config) -> tuple[list, list, list[Task], list]:
    """(grid axes, settings, tasks, steps); raises GridError/WindowError/TapeError/ConfigError."""
    axes = parse(args.grid, cfg)
    settings = all_settings(axes)
    paths = tuple(str(Path(p).resolve()) for p in expand_paths(args.paths))
    if not paths:
        raise TapeError(f"no tapes under {' '.join(args.paths)}")
    cols = parse_columns(args.columns) if args.columns else None
    # which (ticker, day) each file holds, one file in memory at a time: the client never holds the whole tape set,
    # and each task is given only the files it needs (a one-day task of per-day exports reads one file)
    holds: dict[str, set[tuple[str, int]]] = {}
    for p in paths:
        holds[p] = {(ev.ticker, session_day(ev.ts)) for ev in load_tape(p, cfg, cols).events  # type: ignore[union-attr]
                    if type(ev) is Trade}
    by_ticker: dict[str, list[int]] = {}
    for ticker, day in sorted(set().union(*holds.values())):
        require_spec(ticker, cfg.execution)
        by_ticker.setdefault(ticker, []).append(day)
    steps = split([d for days in by_ticker.values() for d in days], args.train_days, args.test_days)
    base = msgspec.to_builtins(cfg)
    tasks: list[Task] = []
    # ticker-major, then settings, then days: a fixed order, and a worker's consecutive tasks share their files
    for ticker, days in by_ticker.items():
        for si, s in [(R.DEFAULT, ()), *enumerate(settings)]:
            for day in (days if args.fresh_each_day else [None]):
                mine = tuple(p for p in paths if any(t == ticker and (day is None or d == day) for t, d in holds[p]))
                tasks.append(Task(len(tasks), si, s, ticker, day, mine, base, args.columns))
    return axes, settings, tasks, steps


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    if args.out:
        try:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return _fail(args, EXIT_STORAGE, f"--out {args.out} is not a writable directory ({err.strerror or err})")
    try:
        axes, settings, tasks, steps = plan(args, cfg)
    except (GridError, WindowError) as err:
        return _fail(args, EXIT_CONFIG, str(err))
    except TapeError as err:  # every tape or none: a partial set would judge the choice on other days than asked
        return _fail(args, EXIT_FEED, f"tape not read: {err}; fix or remove it")
    bar = _Progress(len(tasks), args.json)
    t0 = time.perf_counter()
    try:
        out, tally = engine.run(tasks, run_task, jobs=args.jobs, cluster=args.cluster, progress=bar)
    except (OSError, RuntimeError) as err:
        return _fail(args, EXIT_TASKS, f"cannot run on {args.cluster or 'local processes'}: {err}")
    finally:
        bar.stop()
    elapsed = time.perf_counter() - t0
    if tally.failed:
        first = min(tally.errors)
        return _fail(args, EXIT_TASKS, f"{tally.failed} of {len(tasks)} tasks failed after retries; first: task "
                                       f"{first} ({label(tasks[first].setting)}, {tasks[first].ticker}): "
                                       f"{tally.errors[first]}")
    sw = R.evaluate(settings, steps, R.collect(tasks, out), args.train_days)
    mode = "fresh each day" if args.fresh_each_day else "learned state carried from day to day"
    meta: dict[str, Any] = {"tapes": sorted({p for t in tasks for p in t.paths}), "train_days": args.train_days,
                            "test_days": args.test_days, "mode": mode}
    files: dict[str, str] = {}
    if args.out:
        files = output.write(Path(args.out), sw, axes, meta)
    work = sum(r["seconds"] for r in out if r)
    timing = {"tasks": len(tasks), "retried": tally.retried, "seconds": elapsed,
              "tasks_per_minute": 60 * len(tasks) / max(elapsed, 1e-9), "task_seconds_total": work}
    if args.json:
        print(json.dumps({"meta": meta, "summary": R.summary_rows(sw), "steps": R.step_rows(sw),
                          "settings": R.setting_rows(sw), "next_choice": label(settings[sw.next_choice]),
                          "timing": timing, **files}, indent=1))
    else:
        print(R.render_text(sw))
        print(f"\n{len(tasks)} tasks ({tally.retried} retried) in {elapsed:.1f} s: "
              f"{timing['tasks_per_minute']:.0f} tasks/min" + (f"; written to {args.out}" if args.out else ""))
    return EXIT_OK
