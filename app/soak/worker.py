"""The soaked process: the real App on the simulator plus a chaos schedule; one JSON line per sample on stdout.

Run by `python -m app soak` (the parent samples this process's RSS and CPU from outside, so a crash here is seen
and counted there).
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from app import config as config_mod
from app.app import App
from app.commands.run import install_signal_handlers
from app.loops import run as run_loop


FAULT = os.environ.get("HMARL_SOAK_FAULT", "")


def _emit(kind: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"kind": kind, **data}) + "\n")
    sys.stdout.flush()


SETTLE_S = 8.0  # storage chaos ends this long before the soak does, so the outputs can catch up before the check


class Chaos:
    """Subscribe churn, Valkey restarts and (process mode) child aborts on a fixed schedule (every `every` seconds,
    in turn); with `storage`, also a full disk and a Valkey refusing writes (app.soak.storage_chaos), none of them
    in the last SETTLE_S seconds before `until`."""

    def __init__(self, app: App, every: float, storage: bool = False, until: float | None = None) -> None:
        self.app = app
        self.every = every
        self.storage = storage
        self.until = until
        self.done: dict[str, int] = {"churn": 0, "valkey_restart": 0, "child_abort": 0}
        if storage:
            self.done.update(disk_full=0, valkey_refuses=0)
        self.errors: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        step = 0
        actions = [self.churn, self.valkey_restart, self.child_abort]
        if self.storage:
            actions = [self.disk_full, self.valkey_refuses, self.churn, self.valkey_restart, self.child_abort]
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.every)
                return
            except asyncio.TimeoutError:
                pass
            if self.storage and self.until is not None and time.monotonic() > self.until - SETTLE_S:
                continue
            step += 1
            try:
                await actions[(step - 1) % len(actions)]()
            except Exception as exc:  # chaos must not hide a failure: report it and count it
                self.errors.append(f"{type(exc).__name__}: {exc}")
                _emit("chaos_error", error=self.errors[-1])

    async def churn(self) -> None:
        feed: Any = self.app.feed
        if not hasattr(feed, "unsubscribe") or not feed.tickers:
            return
        for ticker in feed.tickers:
            await feed.unsubscribe(ticker)
            await asyncio.sleep(0.2)
            await feed.subscribe(ticker)
        self.done["churn"] += 1
        _emit("chaos", action="churn")

    async def valkey_restart(self) -> None:
        pipe = self.app.pipeline
        if pipe is None or pipe.server is None or not pipe.server.embedded:
            return
        pipe.server.kill()
        await asyncio.sleep(2.0)  # the writer backs off; the journal keeps everything
        await pipe.server.start()
        self.done["valkey_restart"] += 1
        _emit("chaos", action="valkey_restart")

    async def disk_full(self) -> None:
        from app.soak.storage_chaos import disk_full

        if await disk_full(self.app):
            self.done["disk_full"] += 1
            _emit("chaos", action="disk_full")

    async def valkey_refuses(self) -> None:
        from app.soak.storage_chaos import valkey_refuses

        if await valkey_refuses(self.app):
            self.done["valkey_refuses"] += 1
            _emit("chaos", action="valkey_refuses")

    async def child_abort(self) -> None:
        feed: Any = self.app.feed
        kill = getattr(feed, "kill_child", None)
        if kill is None:  # thread mode: nothing to abort
            return
        kill()
        self.done["child_abort"] += 1
        _emit("chaos", action="child_abort")


def sample(app: App, t0: float) -> dict[str, Any]:
    snap = app.snapshot()
    bridge = snap.get("feed", {}).get("bridge", {})
    cont = snap.get("continuity", {})
    vk = snap.get("valkey", {})
    return {"t": round(time.monotonic() - t0, 3), "trades": sum(cont.get("trades", {}).values()),
            "missing": cont.get("missing", 0), "repeated": cont.get("repeated", 0),
            "bridge_depth": bridge.get("depth", 0), "bridge_max_depth": bridge.get("max_depth", 0),
            "callback_to_loop_us": bridge.get("latency", {}),
            "callback_to_decision_us": snap.get("decision_latency", {}),
            "decisions": snap.get("decisions", 0),
            "valkey_connected": vk.get("connected"), "valkey_backlog": vk.get("backlog", 0),
            "valkey": {k: vk.get(k) for k in ("written", "inputs_written", "caught_up", "spilled", "lost", "dropped",
                                              "reconnects", "acked_seq", "enqueued_seq", "catchup_pending")},
            "journal": {k: snap.get("journal", {}).get(k) for k in ("frames", "files", "refused", "buffered_bytes")},
            "process": snap.get("feed", {}).get("process", {})}


async def journal_vs_valkey(app: App) -> dict[str, Any] | None:
    """After the stop: every journal frame of the run looked up in Valkey (the embedded server started again on
    the run's data directory), streamed (a market day is millions of frames). None when the run had no journal or
    no embedded Valkey. HMARL_SOAK_FAULT=lose-frame deletes one frame first: the check must then fail."""
    from pathlib import Path

    from app.io.valkey_server import ValkeyServer
    from app.soak.market_day import missing_frames_streamed

    cfg, pipe = app.cfg, app.pipeline
    if pipe is None or pipe.journal is None or not cfg.valkey.enabled or cfg.valkey.url != "embedded":
        return None
    server = ValkeyServer(cfg.valkey, Path(cfg.run.data_dir))
    url = await server.start()
    t0 = time.monotonic()
    try:
        compared, missing, examples = await missing_frames_streamed(url, pipe.journal.path, cfg.valkey.prefix,
                                                                    plant_loss=FAULT == "lose-frame")
    finally:
        await server.stop()
    return {"compared": compared, "missing": missing, "examples": examples,
            "seconds": round(time.monotonic() - t0, 1)}


SETTLE_MAX_S = 900.0  # after the close, how long the outputs may take to catch up (beyond the soak's ceiling)


async def close_and_settle(app: App, stop: asyncio.Event, until: float) -> dict[str, Any]:
    """The session's close: every ticker unsubscribed, then wait until Valkey holds every journal frame (the
    catch-up after the last Valkey restart can outlast a saturated session; the soak then checks that it ends,
    not that it ended before the close). Returns how long that took and whether it completed."""
    t0 = time.monotonic()
    feed: Any = app.feed
    for ticker in list(getattr(feed, "tickers", []) if hasattr(feed, "unsubscribe") else []):
        await feed.unsubscribe(ticker)
    settled = False
    while not stop.is_set() and time.monotonic() < until:
        vk = app.snapshot().get("valkey", {})
        settled = not vk or (vk.get("connected") and not vk.get("backlog") and not vk.get("catchup_pending")
                             and vk.get("acked_seq", 0) >= vk.get("enqueued_seq", 0))
        if settled:
            break
        await app.wait(0.5, stop)
    return {"seconds": round(time.monotonic() - t0, 1), "settled": bool(settled)}


def trades_seen(app: App) -> int:
    return sum(app.snapshot().get("continuity", {}).get("trades", {}).values())


async def main(seconds: float, every: float, sample_every: float, cfg: config_mod.Config,
               storage_chaos: bool = False, compare: bool = False, target: int = 0) -> int:
    """Soak for `seconds`, or (target > 0) until `target` trades reached the app, `seconds` being the ceiling."""
    app = App(cfg, fresh=True)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await app.start()
    t0 = time.monotonic()
    deadline = t0 + seconds
    # with a trade target the end is not known in advance: storage chaos then settles only after the stop
    chaos = Chaos(app, every, storage=storage_chaos, until=None if target else deadline)
    chaos_stop = asyncio.Event()  # chaos ends with the session (the market day's close), before the settle
    chaos_task = asyncio.get_running_loop().create_task(chaos.run(chaos_stop))
    poll = min(sample_every, 0.5) if target else sample_every  # overshoot the target by at most ~0.5 s of trades
    next_sample = t0 + sample_every
    reached = False
    settle: dict[str, Any] | None = None
    elapsed = 0.0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            await app.wait(min(poll, max(0.0, deadline - time.monotonic())), stop)
            reached = target > 0 and trades_seen(app) >= target
            if time.monotonic() >= next_sample or reached:
                next_sample += sample_every
                _emit("sample", **sample(app, t0))
            if FAULT == "crash":  # injected by the soak's own smoke test: the parent must report a crash
                os.abort()
            if reached:
                break
        elapsed = time.monotonic() - t0  # the session's length: rates are per second of market, not of settle
        chaos_stop.set()
        await chaos_task
        settle = await close_and_settle(app, stop, time.monotonic() + SETTLE_MAX_S) if reached else None
    finally:
        stop.set()
        chaos_stop.set()
        await chaos_task
        await app.stop(finalize=True)
    snap = app.snapshot()
    vk = snap.get("valkey", {})
    final = sample(app, t0)
    final.update(chaos=chaos.done, chaos_errors=chaos.errors, summary=app.summary(),
                 valkey_unacked=(vk.get("enqueued_seq", 0) - vk.get("acked_seq", 0)) if vk else 0,
                 violations=app.summary().get("violations", 0), target=target, target_reached=reached, settle=settle,
                 elapsed_s=round(elapsed or time.monotonic() - t0, 2))
    if storage_chaos or compare:
        final["journal_vs_valkey"] = await journal_vs_valkey(app)
    _emit("final", **final)
    return 0


def entry() -> None:
    seconds, every, sample_every = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    cfg = config_mod.load(sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None,
                          json.loads(sys.argv[5]) if len(sys.argv) > 5 else {})
    flags = set(sys.argv[6].split(",")) if len(sys.argv) > 6 else set()
    target = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    raise SystemExit(run_loop(lambda: main(seconds, every, sample_every, cfg, "storage" in flags,
                                           "compare" in flags, target), sched_batch=cfg.run.sched_batch))


if __name__ == "__main__":
    entry()
