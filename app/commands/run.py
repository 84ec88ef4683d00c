"""`python -m app run`: the live job (simulator by default)."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from typing import Any

from app import config as config_mod
from app.app import App
from app.cli import EXIT_FEED, EXIT_OK, EXIT_STORAGE, setup_logging
from app.feed.base import FeedError
from app.io.journal import JournalError
from app.io.valkey_server import ValkeyServerError
from app.io.valkey_writer import ValkeyUnavailable
from app.loops import loop_factory, run as run_loop
from app.pipeline import LearnedStateError

# journal, Valkey, ZMQ and stored-state failures at start: exit code 4
OUTPUT_ERRORS = (OSError, JournalError, ValkeyServerError, ValkeyUnavailable, LearnedStateError)

NAME = "run"
HELP = "run the live pipeline on the configured feed (the built-in simulated DLL by default)"
log = logging.getLogger("app.run")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feed", choices=["simulator", "profitdll"], help="override feed.kind")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this long")
    p.add_argument("--json", action="store_true", help="print one JSON summary line at exit")
    p.add_argument("--loop", choices=["auto", "uvloop", "winloop", "asyncio"], default="auto")
    p.add_argument("--no-monitor", action="store_true", help="plain status lines instead of the live screen")
    p.add_argument("--fresh", action="store_true", help="start with fresh learned state (ignore Valkey's)")


SIGNAL_BURST_S = 0.5  # one keypress can reach the process twice (process-group delivery by `timeout`, shells)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """First Ctrl-C / SIGTERM: orderly stop. Second (not within the same burst): exit now."""
    loop = asyncio.get_running_loop()
    first = [0.0]

    def on_signal(signame: str) -> None:
        now = time.monotonic()
        if stop.is_set() and now - first[0] < SIGNAL_BURST_S:
            return  # the same keypress delivered twice: it counts once
        if stop.is_set():
            print(f"\n{signame} again: forcing exit", file=sys.stderr)
            os._exit(130)
        print(f"\n{signame}: stopping (press Ctrl-C again to force)", file=sys.stderr)
        first[0] = now
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError):  # Windows loops: fall back to the signal module
            signal.signal(sig, lambda *_a, _n=sig.name: loop.call_soon_threadsafe(on_signal, _n))


def status_line(app: App, prev: dict[str, Any], interval: float) -> str:
    snap = app.snapshot()
    cont = snap.get("continuity", {})
    bridge = snap.get("feed", {}).get("bridge", {})
    parts = []
    for ticker, n in sorted(cont.get("trades", {}).items()):
        rate = (n - prev.get(ticker, 0)) / interval
        prev[ticker] = n
        last = app.pipeline.continuity.last_price.get(ticker) if app.pipeline else None
        parts.append(f"{ticker} {n} trades {rate:,.0f}/s last {last}")
    lat = bridge.get("latency", {})
    parts.append(f"bridge depth {bridge.get('depth', 0)} max {bridge.get('max_depth', 0)} "
                 f"p50 {lat.get('p50_us', 0)}us p99 {lat.get('p99_us', 0)}us")
    parts.append(f"gaps {cont.get('gaps', 0)}")
    pos = []
    for ticker, h in sorted(snap.get("hierarchy", {}).get("tickers", {}).items()):
        p = h.get("position") or {}
        pos.append(f"{ticker} target {h.get('target', 0):+d} pos {p.get('qty', 0):+d} "
                   f"pnl R$ {p.get('realized', 0.0) + p.get('unrealized', 0.0):,.2f}")
    if pos:
        parts.append(f"decisions {snap.get('decisions', 0)}; " + "; ".join(pos))
    return " | ".join(parts)


async def _main(args: argparse.Namespace, cfg: config_mod.Config) -> tuple[int, App]:
    app = App(cfg, fresh=args.fresh)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        await app.start()
    except FeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FEED, app
    except OUTPUT_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORAGE, app
    deadline = time.monotonic() + args.duration if args.duration else None
    prev: dict[str, Any] = {}
    interval = cfg.run.status_interval
    monitor_task = None
    if use_monitor(args):
        from app.monitor import Monitor

        monitor_stop = asyncio.Event()
        monitor_task = asyncio.get_running_loop().create_task(Monitor(app).run(monitor_stop))
    try:
        while not stop.is_set():
            timeout = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            await app.wait(timeout, stop)
            if not args.json and monitor_task is None:
                print(status_line(app, prev, interval), file=sys.stderr, flush=True)
            if app.feed is not None and app.feed.done.is_set():
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        if monitor_task is not None:
            monitor_stop.set()
            await monitor_task
        await app.stop(finalize=True)
    gave_up = app.snapshot().get("feed", {}).get("process", {}).get("gave_up")
    if gave_up:
        print("error: the DLL process kept failing and feed.max_restarts was reached; see the log above",
              file=sys.stderr)
        return EXIT_FEED, app
    return EXIT_OK, app


def use_monitor(args: argparse.Namespace) -> bool:
    """The live screen only on a real terminal; pipes, CI and --json get plain lines."""
    return not args.no_monitor and not args.json and sys.stderr.isatty()


def check_duration(value: float | None) -> None:
    """0, negative, nan and inf would each mean "run forever" or "never start": say so instead."""
    if value is not None and not (0.0 < value < 1e9):
        raise config_mod.ConfigError(f"--duration {value!r}: give a positive number of seconds, or leave it out to "
                                     "run until Ctrl-C")


def run(args: argparse.Namespace) -> int:
    check_duration(args.duration)
    overrides = {"feed.kind": args.feed} if args.feed else {}
    cfg = config_mod.load(args.config, overrides)
    setup_logging(cfg.run.log_level)
    loop_name, _ = loop_factory(args.loop)
    log.info("loop: %s, feed: %s", loop_name, cfg.feed.kind)
    code, app = run_loop(lambda: _main(args, cfg), args.loop)  # type: ignore[misc]
    if args.json:
        summary = app.summary()
        summary["loop"] = loop_name
        print(json.dumps(summary), flush=True)
    return code
