"""`python -m app backtest PATH...`: the hierarchy, walk-forward, over recorded tapes, against baselines.

Tapes (Profit CSV exports, run journals, folders of them) are grouped by ticker and B3 session day and run in
time order; the learned state carries from day to day unless --fresh-each-day. Every lane (coordinator, flat,
equal weight, each specialist alone, and the best single specialist in hindsight) trades the same signals with
the same fees, fills and risk limits. Exit codes: 0 done, 2 configuration (a ticker without a contract, a bad
--columns), 3 nothing could be read, 4 the report directory cannot be written.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from app import config as config_mod
from app.backtest.days import group_days
from app.backtest.metrics import summarise
from app.backtest.report import write_report
from app.backtest.runner import lane_names, run_ticker, describe_lanes, DayResult
from app.backtest.sources import TapeError, expand_paths, load_tape, parse_columns, require_spec
from app.backtest.table import NOTES, render_text
from app.cli import EXIT_CONFIG, EXIT_FEED, EXIT_OK, EXIT_STORAGE

NAME = "backtest"
HELP = "walk-forward backtest of the coordinator against baselines on recorded tapes (Profit CSV, B3, journals)"


EPILOG = """\
how tapes are read: files and folders (searched recursively) of Profit CSV exports, B3 TradeIntraday files, run
journals and CSVs read with --columns; trades are grouped by ticker and B3 session day (which starts at 09:00) and
run day by day in time order, one hierarchy per ticker. Several tapes of one ticker and day are merged by exchange
time; exact duplicates (same ts, price, qty, aggressor, buyer, seller and rank among identical prints of their
file) are dropped and trade ids renumbered if they collide. Open positions are marked to the day's last trade.
exit codes: 0 done, 2 configuration (ticker without [execution.contracts.<root>], bad --columns), 3 nothing read,
4 the --report directory cannot be written.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="tape: Profit CSV export, B3 TradeIntraday file, run journal (file or run directory), "
                        "CSV with --columns, or a folder of them")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--report", metavar="DIR", help="write equity.png, weights.png and report.md here")
    p.add_argument("--fresh-each-day", action="store_true",
                   help="a new hierarchy every day (nothing learned carries over) instead of walk-forward")
    p.add_argument("--columns", metavar="MAP",
                   help="read CSV tapes through a column map of role=COLUMN pairs, e.g. "
                        "ts=Time,price=Price,qty=Volume,side=Aggressor,ticker=Symbol")


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    print(f"backtest: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"error": message}))
    return code


def _progress_bar(args: argparse.Namespace) -> Any:
    """A rich progress display on stderr, only for a person watching (a TTY, not --json)."""
    if args.json or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    bar.start()
    return bar


def _advance(bar: Any, what: str, total: int) -> Callable[[int], None] | None:
    if bar is None:
        return None
    task = bar.add_task(what, total=total)
    return lambda n: bar.advance(task, n)


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    try:
        columns = parse_columns(args.columns) if args.columns else None
    except TapeError as err:
        return _fail(args, EXIT_CONFIG, str(err))
    if args.report:  # before hours of work, not after
        try:
            Path(args.report).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return _fail(args, EXIT_STORAGE, f"--report {args.report} is not a writable directory "
                                             f"({err.strerror or err}); give another one")
    try:
        paths = expand_paths(args.paths)
    except TapeError as err:
        return _fail(args, EXIT_FEED, f"nothing read: {err}")
    if not paths:
        return _fail(args, EXIT_FEED, f"nothing read: no tapes (Profit CSV *.csv/*.txt, journal run directories) "
                                      f"under {' '.join(args.paths)}")
    loaded: list[tuple[str, list]] = []
    tapes: list[dict[str, Any]] = []
    problems: list[str] = []
    bar = _progress_bar(args)
    try:
        read = _advance(bar, "reading tapes", len(paths))
        for p in paths:
            try:
                tape = load_tape(p, cfg, columns)
            except TapeError as err:
                problems.append(str(err))
                continue
            finally:
                if read is not None:
                    read(1)
            loaded.append((str(p), tape.events))
            tapes.append({"path": str(p), "format": tape.format, "report": tape.report})
        if loaded:
            return _backtest(args, cfg, loaded, tapes, problems, bar)
    finally:
        if bar is not None:
            bar.stop()
    why = problems[0] if len(problems) == 1 else f"{len(problems)} tapes unreadable, first: {problems[0]}"
    return _fail(args, EXIT_FEED, f"nothing read: {why}")


def _backtest(args: argparse.Namespace, cfg: config_mod.Config, loaded: list[tuple[str, list]],
              tapes: list[dict[str, Any]], problems: list[str], bar: Any) -> int:
    for why in problems:  # some tapes were read: say which were not, one line each
        print(f"backtest: skipped: {why}", file=sys.stderr)

    by_ticker = group_days(loaded)
    loaded.clear()  # the day groups hold the events now; the per-tape lists can go
    for ticker in by_ticker:  # every contract known before any work (ConfigError -> exit 2)
        require_spec(ticker, cfg.execution)
    total = sum(d.trades for days in by_ticker.values() for d in days)
    advance = _advance(bar, "running", total)
    t0 = time.perf_counter()
    results: list[DayResult] = []
    for days in by_ticker.values():
        results.extend(run_ticker(cfg, days, args.fresh_each_day, advance))
    if bar is not None:
        bar.stop()
    elapsed = time.perf_counter() - t0

    lanes = lane_names(cfg)
    summary = summarise(results, lanes)
    meta = {"tapes": [t["path"] for t in tapes], "mode": "fresh each day" if args.fresh_each_day else
            "walk-forward (learned state carried from day to day)", "skipped_tapes": problems}
    if args.report:
        write_report(args.report, results, summary, meta)
    if args.json:
        doc = {"meta": meta, "tape_reports": tapes, "lane_descriptions": describe_lanes(cfg), "notes": NOTES,
               **summary}
        print(json.dumps(doc, indent=1, sort_keys=False))
    else:
        print(render_text(summary, meta))
        print(f"\n{total:,} trades in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f} trades/s)"
              + (f"; report written to {args.report}" if args.report else ""))
    return EXIT_OK
