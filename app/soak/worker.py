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


class Chaos:
    """Subscribe churn and Valkey restarts on a fixed schedule (every `every` seconds, alternating)."""

    def __init__(self, app: App, every: float) -> None:
        self.app = app
        self.every = every
        self.done: dict[str, int] = {"churn": 0, "valkey_restart": 0, "child_abort": 0}
        self.errors: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        step = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.every)
                return
            except asyncio.TimeoutError:
                pass
            step += 1
            try:
                actions = [self.churn, self.valkey_restart, self.child_abort]
                await actions[step % len(actions)]()
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


async def main(seconds: float, every: float, sample_every: float, cfg: config_mod.Config) -> int:
    app = App(cfg, fresh=True)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    await app.start()
    t0 = time.monotonic()
    chaos = Chaos(app, every)
    chaos_task = asyncio.get_running_loop().create_task(chaos.run(stop))
    deadline = t0 + seconds
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            await app.wait(min(sample_every, max(0.0, deadline - time.monotonic())), stop)
            _emit("sample", **sample(app, t0))
            if FAULT == "crash":  # injected by the soak's own smoke test: the parent must report a crash
                os.abort()
    finally:
        stop.set()
        await chaos_task
        await app.stop(finalize=True)
    snap = app.snapshot()
    vk = snap.get("valkey", {})
    final = sample(app, t0)
    final.update(chaos=chaos.done, chaos_errors=chaos.errors, summary=app.summary(),
                 valkey_unacked=(vk.get("enqueued_seq", 0) - vk.get("acked_seq", 0)) if vk else 0,
                 violations=app.summary().get("violations", 0))
    _emit("final", **final)
    return 0


def entry() -> None:
    seconds, every, sample_every = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    cfg = config_mod.load(sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None,
                          json.loads(sys.argv[5]) if len(sys.argv) > 5 else {})
    raise SystemExit(run_loop(lambda: main(seconds, every, sample_every, cfg)))


if __name__ == "__main__":
    entry()
