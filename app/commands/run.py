"""`python -m app run`: the live job (simulator by default)."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from app import config as config_mod
from app.app import App
from app.cli import EXIT_FEED, EXIT_OK, EXIT_STORAGE, setup_logging
from app.feed.base import FeedError
from app.io.journal import JournalError
from app.io.unpersisted import describe
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


def install_signal_handlers(stop: asyncio.Event, on_first: Callable[[], None] | None = None,
                            on_force: Callable[[], None] | None = None) -> None:
    """First Ctrl-C / SIGTERM: orderly stop (`on_first` arms the stop bound). Second (not within the same burst):
    `on_force` reports what is lost, then exit now."""
    loop = asyncio.get_running_loop()
    first = [0.0]

    def on_signal(signame: str) -> None:
        now = time.monotonic()
        if stop.is_set() and now - first[0] < SIGNAL_BURST_S:
            return  # the same keypress delivered twice: it counts once
        if stop.is_set():
            print(f"\n{signame} again: forcing exit", file=sys.stderr)
            if on_force is not None:
                on_force()
            os._exit(130)
        print(f"\n{signame}: stopping (press Ctrl-C again to force)", file=sys.stderr)
        first[0] = now
        stop.set()
        if on_first is not None:
            on_first()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
        except (NotImplementedError, RuntimeError):  # Windows loops: fall back to the signal module
            signal.signal(sig, lambda *_a, _n=sig.name: loop.call_soon_threadsafe(on_signal, _n))


class StopGuard:
    """The stop bound. Armed by the first stop request (signal, --duration, a failure); the orderly stop is given
    until `deadline()`, and if the process is still alive `timeout` seconds after arming (a write blocked in a
    thread, a DLL call that never returns, interpreter exit joining such a thread) a daemon timer reports what was
    not persisted and ends the process with exit code 4."""

    def __init__(self, timeout: float, report: Callable[[str], None]) -> None:
        self.timeout = timeout
        self.report = report
        self.armed_at: float | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        with self._lock:
            if self.armed_at is not None:
                return
            self.armed_at = time.monotonic()
            self._timer = threading.Timer(self.timeout, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        """The stop is over and reported (a stop that abandoned work has already ended the process)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()

    def deadline(self) -> float:
        """When the orderly stop must be done: a reserve before the hard bound for the summary and the exit."""
        self.arm()
        assert self.armed_at is not None
        return self.armed_at + self.timeout - min(2.0, 0.2 * self.timeout)

    def _fire(self) -> None:
        try:
            self.report(f"the stop did not finish within run.stop_timeout = {self.timeout:g} s")
        finally:
            os._exit(EXIT_STORAGE)


def final_summary(app: App, loop_name: str, error: str | None) -> dict[str, Any]:
    summary = app.summary()
    summary["loop"] = loop_name
    if error:
        summary["error"] = error
    return summary


def rejected_tickers(app: App) -> list[str] | None:
    """Every subscribed ticker refused by the DLL (InvalidTicker for each, none with a trade): their codes; else
    None (some ticker is live, or the feed has not said yet)."""
    if app.feed is None or app.pipeline is None:
        return None
    subscribed = set(app.feed.stats().get("tickers") or ())
    cont = app.pipeline.continuity
    rejected = {ev.ticker for ev in cont.invalid_tickers}
    if not subscribed or not subscribed <= rejected or any(cont.trades.get(t) for t in subscribed):
        return None
    return sorted(subscribed)


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
    from app.io.alarms import current_alarm

    alarm = current_alarm(snap)
    if alarm:
        parts.append(f"ALARM {alarm}")
    return " | ".join(parts)


async def _main(args: argparse.Namespace, cfg: config_mod.Config, app: App,
                guard: StopGuard) -> tuple[int, str | None]:
    stop = asyncio.Event()
    monitor: Any = None

    def force() -> None:
        if monitor is not None:  # os._exit follows: the monitor's own cleanup never runs
            monitor.restore_terminal()
        lost = describe(app.unpersisted())
        print(f"error: forced exit; {lost or 'nothing was left unpersisted'}", file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(final_summary(app, args.loop_name, f"forced exit; {lost or 'nothing lost'}")),
                  flush=True)

    install_signal_handlers(stop, guard.arm, force)
    try:
        await app.start()
    except FeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FEED, str(exc)
    except OUTPUT_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORAGE, str(exc)
    deadline = time.monotonic() + args.duration if args.duration else None
    prev: dict[str, Any] = {}
    interval = cfg.run.status_interval
    monitor_task = None
    failure: str | None = None
    if use_monitor(args):
        from app.monitor import Monitor

        monitor_stop = asyncio.Event()
        monitor = Monitor(app, keys=sys.stdin.isatty())  # keys: the flatten key, when routing live
        monitor_task = asyncio.get_running_loop().create_task(monitor.run(monitor_stop))
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
            rejected = rejected_tickers(app)
            if rejected:
                failure = (f"every subscribed ticker was rejected by the DLL ({', '.join(rejected)}) and none is "
                           "live; fix feed.tickers (roots like WDO and WIN resolve to the current contract)")
                break
    finally:
        if monitor_task is not None:
            monitor_stop.set()
            await monitor_task
        await app.stop(finalize=True, deadline=guard.deadline())
    code = EXIT_OK
    gave_up = app.snapshot().get("feed", {}).get("process", {}).get("gave_up")
    if gave_up:
        failure = "the DLL process kept failing and feed.max_restarts was reached; see the log above"
    if failure:
        print(f"error: {failure}", file=sys.stderr)
        code = EXIT_FEED
    lost = app.unpersisted()
    line = describe(lost)
    if line and lost.lost_inputs:
        print(f"error: {line}", file=sys.stderr, flush=True)
        code, failure = EXIT_STORAGE, failure or line
    elif line:  # derived events only: best effort by design, said but not a failure
        log.warning("%s", line)
    if app.stop_overran:
        # a step was abandoned at the bound (a write blocked in its thread, a DLL call): leaving the loop would
        # join that thread forever, so the summary goes out now and the process ends here
        log.error("stop: abandoned at the bound: %s; exiting without waiting for them", ", ".join(app.stop_overran))
        if args.json:
            print(json.dumps(final_summary(app, args.loop_name, failure)), flush=True)
        sys.stderr.flush()
        os._exit(code)
    return code, failure


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
    args.loop_name = loop_name
    log.info("loop: %s, feed: %s", loop_name, cfg.feed.kind)
    app = App(cfg, fresh=args.fresh)

    def report_overrun(why: str) -> None:
        try:
            lost = describe(app.unpersisted()) or "nothing was left unpersisted"
        except Exception as exc:  # noqa: BLE001 - the exit must happen even if the counters are mid-update
            lost = f"what was not persisted could not be measured ({type(exc).__name__})"
        print(f"error: {why}; {lost}", file=sys.stderr, flush=True)
        if args.json:
            try:
                summary = final_summary(app, loop_name, f"{why}; {lost}")
            except Exception:  # noqa: BLE001
                summary = {"run_id": app.pipeline.run_id if app.pipeline else None, "error": f"{why}; {lost}"}
            print(json.dumps(summary), flush=True)

    guard = StopGuard(cfg.run.stop_timeout, report_overrun)
    code, error = run_loop(lambda: _main(args, cfg, app, guard), args.loop,  # type: ignore[misc]
                           sched_batch=cfg.run.sched_batch)
    if args.json:
        print(json.dumps(final_summary(app, loop_name, error)), flush=True)
    guard.disarm()
    return code
