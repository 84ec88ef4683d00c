"""Process-isolation scenarios, each in a process of its own so the thread and library checks see only it.

Run as `python -m tests.feed.process.scenarios NAME [JSON-ARGS]`; prints one JSON line with what it measured.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from app import config as config_mod
from app.continuity import Continuity
from app.events import State, Trade
from app.feed.process.feed import ProcessFeed
from app.loops import run


def _cfg(**overrides: Any) -> config_mod.Config:
    base = {"feed.isolation": "process", "feed.book": "none", "simulator.pace": False, "simulator.bursts": False,
            "feed.restart_backoff": 0.2}
    base.update(overrides)
    return config_mod.load(None, base)


class Recorder:
    """The sink: continuity, every trade number per ticker (to catch any repeat), and the threads seen."""

    def __init__(self) -> None:
        self.continuity = Continuity()
        self.ids: dict[str, set[int]] = {}
        self.max_seen: dict[str, int] = {}
        self.repeats_in_sink = 0
        self.batches = 0
        self.threads: set[str] = set()
        self.max_id_at_drop: dict[str, int] | None = None

    def __call__(self, batch: list) -> None:
        self.batches += 1
        self.continuity.observe(batch)
        for ev in batch:
            if type(ev) is Trade and not ev.edit:
                seen = self.ids.setdefault(ev.ticker, set())
                if ev.trade_id in seen:
                    self.repeats_in_sink += 1
                seen.add(ev.trade_id)
                if ev.trade_id > self.max_seen.get(ev.ticker, 0):
                    self.max_seen[ev.ticker] = ev.trade_id
            elif type(ev) is State and ev.conn_type == 2 and ev.result == 0 and self.max_id_at_drop is None:
                self.max_id_at_drop = {t: max(s) for t, s in self.ids.items()}
        if self.batches % 16 == 1:
            self.threads.update(t.name for t in threading.enumerate())

    @property
    def unique(self) -> int:
        return sum(len(s) for s in self.ids.values())

    def summary(self) -> dict[str, Any]:
        return {"continuity": self.continuity.stats(), "repeats_in_sink": self.repeats_in_sink,
                "unique": {t: len(s) for t, s in self.ids.items()},
                "span": {t: max(s) - min(s) + 1 for t, s in self.ids.items()},
                "max_id": {t: max(s) for t, s in self.ids.items()},
                "max_id_at_drop": self.max_id_at_drop, "threads": sorted(self.threads)}


async def _until(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _native_state() -> dict[str, Any]:
    with open("/proc/self/maps") as f:
        maps = f.read()
    return {"profitsim_mapped": "_profitsim" in maps or "ProfitDLL" in maps,
            "dll_modules": sorted(m for m in sys.modules
                                  if m.startswith(("app.feed.simulator", "app.feed.profitdll", "app.feed.owner"))),
            "python_threads": [t.name for t in threading.enumerate()]}


async def flow(total: int = 200_000) -> dict:
    feed = ProcessFeed(_cfg(**{"simulator.max_trades": total}))
    rec = Recorder()
    t0 = time.perf_counter()
    await feed.start(rec)
    t1 = time.perf_counter()
    complete = await _until(lambda: rec.continuity.counts["trade"] >= total, 60)
    t2 = time.perf_counter()
    native = _native_state()
    stats = feed.stats()
    await feed.stop()
    return {"complete": complete, "start_seconds": t1 - t0, "rate": rec.continuity.counts["trade"] / (t2 - t1),
            "stop_seconds": time.perf_counter() - t2, "native": native, "stats": stats, **rec.summary()}


async def child_abort(total: int = 100_000, after: int = 20_000) -> dict:
    cfg = _cfg(**{"simulator.max_trades": total, "simulator.reinit": "abort"})
    feed = ProcessFeed(cfg, faults=[f"reinit-after:{after}"])
    rec = Recorder()
    await feed.start(rec)
    first_pid = feed.stats()["process"]["child_pid"]
    # the first child may deliver the whole market before it aborts (the native ring is that fast): wait for the
    # second one to have replayed what the first delivered, too
    complete = await _until(lambda: (p := feed.stats()["process"])["restarts"] >= 1 and rec.unique >= total
                            and p["child_pid"] != first_pid and p["duplicates_dropped"] >= after, 60)
    stats = feed.stats()
    await feed.stop()
    return {"complete": complete, "first_pid": first_pid, "stats": stats, **rec.summary()}


async def dropped_connection(total: int = 100_000, drop_after: int = 20_000) -> dict:
    cfg = _cfg(**{"simulator.max_trades": total, "feed.reconnect_grace": 0.5})
    feed = ProcessFeed(cfg, faults=[f"sim:drop_after={drop_after}", "sim:drop_ms=-1"])
    rec = Recorder()
    await feed.start(rec)
    complete = await _until(lambda: feed.stats()["process"]["restarts"] >= 1 and rec.unique >= total, 60)
    stats = feed.stats()
    await feed.stop()
    return {"complete": complete, "stats": stats, **rec.summary()}


async def hung_child(run_for: float = 3.0) -> dict:
    """A paced stand-in with books; the child is frozen (SIGSTOP) after `run_for` seconds."""
    cfg = _cfg(**{"simulator.pace": True, "simulator.rate": 300.0, "feed.book": "depth",
                  "feed.heartbeat_timeout": 1.0})
    feed = ProcessFeed(cfg)
    rec = Recorder()
    await feed.start(rec)
    await asyncio.sleep(run_for)
    pid = feed.stats()["process"]["child_pid"]
    before = dict(rec.max_seen)
    os.kill(pid, signal.SIGSTOP)
    t_stop = time.monotonic()
    restarted = await _until(lambda: feed.stats()["process"]["restarts"] >= 1, 20)
    t_restart = time.monotonic()
    flowing = await _until(lambda: all(rec.max_seen[t] > before[t] for t in before), 20)
    t_flow = time.monotonic()
    await asyncio.sleep(1.0)
    stats = feed.stats()
    await feed.stop()
    return {"restarted": restarted, "flowing": flowing, "stall_to_restart": t_restart - t_stop,
            "restart_to_new_trades": t_flow - t_restart, "first_child_alive": _alive(pid), "stats": stats,
            **rec.summary()}


async def churn() -> dict:
    """Unsubscribe one ticker through the control socket, then subscribe it again."""
    feed = ProcessFeed(_cfg(**{"simulator.pace": True, "simulator.rate": 300.0}))
    rec = Recorder()
    await feed.start(rec)
    ticker = feed.tickers[-1]
    await _until(lambda: len(rec.ids.get(ticker, ())) > 0, 10)
    await feed.unsubscribe(ticker)
    await asyncio.sleep(0.2)  # what was already on its way
    during = len(rec.ids[ticker])
    await asyncio.sleep(0.5)
    after_pause = len(rec.ids[ticker])
    await feed.subscribe(ticker)
    resumed = await _until(lambda: len(rec.ids[ticker]) > after_pause, 10)
    subscribed = feed.stats()
    await feed.stop()
    return {"ticker": ticker, "quiet_while_unsubscribed": after_pause == during, "resumed": resumed,
            "stats": subscribed, **rec.summary()}


async def give_up() -> dict:
    cfg = _cfg(**{"simulator.pace": True, "simulator.rate": 100.0, "feed.max_restarts": 1})
    feed = ProcessFeed(cfg)
    rec = Recorder()
    await feed.start(rec)
    first = feed.supervisor.child
    feed.kill_child()

    def second_ready() -> bool:
        child = feed.supervisor.child
        return child is not None and child is not first and child.ready.done()

    second = await _until(second_ready, 20)
    feed.kill_child()
    done = await _until(feed.done.is_set, 20)
    stats = feed.stats()
    await feed.stop()
    return {"second_child": second, "done": done, "stats": stats}


async def orphan() -> dict:
    """Prints the child's pid, then waits to be killed (the test kills this process with SIGKILL)."""
    feed = ProcessFeed(_cfg(**{"simulator.pace": True, "simulator.rate": 100.0}))
    await feed.start(Recorder())
    print(json.dumps({"child_pid": feed.stats()["process"]["child_pid"], "directory": feed.supervisor.directory}),
          flush=True)
    await asyncio.sleep(120)
    return {}


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


if __name__ == "__main__":
    name = sys.argv[1]
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = run(lambda: globals()[name](**kwargs))
    print(json.dumps(result, default=str))
