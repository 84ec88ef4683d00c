"""`python -m app replay PATH`: a journal or a tape (Profit "Times & Trades" CSV, B3 TradeIntraday file, any CSV
through `--columns`) through the full pipeline, on the loop, with no DLL thread; `--trace` runs it on one thread in
asyncio debug mode and writes the causality trace.

A replay that reads nothing is a failure, not an empty success: unreadable input or zero trades exits 3
(EXIT_FEED) with one line on stderr and the same line in the --json summary's "error" field."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from app import config as config_mod
from app.feed.clock import now_ns
from app.app import App, recorded_config
from app.cli import EXIT_FEED, EXIT_OK, setup_logging
from app.commands.run import install_signal_handlers
from app.feed.base import FeedError
from app.loops import run as run_loop

NAME = "replay"
HELP = "replay a journal or a tape (Profit CSV, B3 TradeIntraday, generic CSV) through the pipeline (deterministic)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a run's journal directory or file, a Profit CSV export, a B3 TradeIntraday file, "
                   "or a CSV read with --columns")
    p.add_argument("--columns", default=None, metavar="MAP",
                   help="read PATH as a generic CSV: role=column pairs, e.g. ts=Time,price=Price,qty=Volume,"
                   "side=Aggressor,ticker=Symbol (roles: ts or date+time, price, qty, side, ticker, bid, ask, "
                   "bid_qty, ask_qty, buyer, seller; a column is a header name or a 1-based number)")
    p.add_argument("--speed", default="max", help="1 = real time, 10 = ten times faster, max = as fast as possible")
    p.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    p.add_argument("--trace", nargs="?", const="-", default=None, metavar="FILE",
                   help="single-thread tracing: write the causality trace to FILE (default: <path>.trace.jsonl)")
    p.add_argument("--slow-ms", type=float, default=5.0, help="tracing: report batches slower than this")
    p.add_argument("--use-config", action="store_true",
                   help="use --config / ./config.toml instead of the settings the recorded run kept beside its journal")
    p.add_argument("--outputs", action="store_true",
                   help="also publish on ZMQ and write Valkey (off by default: replay only computes)")


def parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if speed <= 0:
        raise config_mod.ConfigError(f"--speed {text!r}: use a positive number (1, 10) or max")
    return speed


def trace_path(path: str, option: str) -> Path:
    if option != "-":
        return Path(option)
    p = Path(path.rstrip("/"))
    return p.with_name(p.name + ".trace.jsonl")


async def _main(args: argparse.Namespace, cfg: config_mod.Config,
                speed: float | None) -> tuple[int, App, Any, str]:
    tracer = None
    out_ctx: Any = nullcontext()
    if args.trace is not None:
        from app.trace import Tracer

        out_ctx = open(trace_path(args.path, args.trace), "w", encoding="utf-8", newline="\n")
        asyncio.get_running_loop().slow_callback_duration = args.slow_ms / 1000.0
    with out_ctx as out:
        if out is not None:
            tracer = Tracer(out, args.slow_ms)
        # the trace must not depend on time: decisions get a constant clock, so latency is 0 there
        clock = (lambda: 0) if tracer is not None else now_ns
        app = App(cfg, replay_path=args.path, speed=speed, tracer=tracer, clock=clock)
        stop = asyncio.Event()
        install_signal_handlers(stop)
        try:
            await app.start()
        except FeedError as exc:  # App.start has already stopped what it started
            return EXIT_FEED, app, tracer, _one_line(str(exc))
        progress = _progress(app, args)
        try:
            with progress:
                while not stop.is_set() and not app.feed.done.is_set():  # type: ignore[union-attr]
                    await app.wait(0.2, stop)
                    progress.update(app)
        finally:
            await app.stop()
    error = (app.feed.stats().get("error") if app.feed is not None else None) or ""
    return (EXIT_FEED if error else EXIT_OK), app, tracer, _one_line(error)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _NoProgress:
    def __enter__(self) -> "_NoProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, app: App) -> None:
        return None


class _Progress(_NoProgress):
    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                                 TextColumn("{task.fields[trades]} trades, {task.fields[decisions]} decisions"),
                                 TimeElapsedColumn(), transient=True)
        self.task = self.progress.add_task("replay", total=1.0, trades=0, decisions=0)

    def __enter__(self) -> "_Progress":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, app: App) -> None:
        stats = app.feed.stats() if app.feed is not None else {}
        pipe = app.pipeline
        self.progress.update(self.task, completed=float(stats.get("progress", 0.0)),
                             trades=pipe.continuity.counts["trade"] if pipe else 0,
                             decisions=pipe.decisions if pipe else 0)


def _progress(app: App, args: argparse.Namespace) -> _NoProgress:
    return _Progress() if sys.stderr.isatty() and not args.json else _NoProgress()


def run(args: argparse.Namespace) -> int:
    speed = parse_speed(args.speed)
    overrides: dict[str, Any] = {"feed.kind": "replay"}
    if args.columns:
        from app.feed.replay.tapes import parse_columns

        overrides["replay.columns"] = parse_columns(args.columns)  # ConfigError (exit 2) for a bad mapping
    if not args.outputs or args.trace is not None:
        # replay computes; tracing runs on one thread, so no ZMQ I/O threads and no Valkey
        overrides.update({"zmq.enabled": False, "valkey.enabled": False})
    recorded = None if args.use_config else recorded_config(args.path, overrides)
    cfg = recorded or config_mod.load(args.config, overrides)
    if not Path(args.path).exists():
        error = f"{args.path}: no such file or directory; give a journal directory or a tape file"
        print(f"error: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps({"path": args.path, "error": error}), flush=True)
        return EXIT_FEED
    setup_logging(cfg.run.log_level)
    tracing = args.trace is not None
    code, app, tracer, error = run_loop(lambda: _main(args, cfg, speed),  # type: ignore[misc]
                                        "asyncio" if tracing else "auto", debug=tracing)
    summary = replay_summary(app)
    summary["error"] = error or None
    if error:
        print(f"error: {error}", file=sys.stderr)
    if tracer is not None:
        summary["trace"] = {"path": str(trace_path(args.path, args.trace)), "decisions": tracer.decisions,
                            "slow_batches": tracer.slow_batches}
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        print(f"replayed {sum(summary['trades'].values())} trades ({summary['lines_skipped']} lines skipped), "
              f"{summary['decisions']} decisions, digest {summary['decision_digest']}", file=sys.stderr)
    return code


def replay_summary(app: App) -> dict[str, Any]:
    feed = app.feed.stats() if app.feed is not None else {}
    pipe = app.pipeline
    elapsed = (app.stopped_at - app.started_at) if app.started_at and app.stopped_at else 0.0
    events = sum(pipe.continuity.counts.values()) if pipe else 0
    return {
        "path": app.replay_path,
        "trades": dict(pipe.continuity.trades) if pipe else {},
        "lines_skipped": feed.get("lines_skipped", 0),
        "decisions": pipe.decisions if pipe else 0,
        "decision_digest": pipe.digest.hexdigest() if pipe else None,
        "gaps": pipe.continuity.gaps if pipe else 0,
        "seconds": round(elapsed, 3),
        "events_per_s": round(events / elapsed, 1) if elapsed else 0.0,
        **({"live": app.live.snapshot()} if app.live is not None else {}),
    }
