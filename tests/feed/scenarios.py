"""Simulator scenarios that need a process of their own (the DLL is initialized once per process).

Run as `python -m tests.feed.scenarios NAME [JSON-ARGS]`; prints one JSON line with what it measured.
"""
from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import sys
import threading
import time
from typing import Any

from app import config as config_mod
from app.continuity import Continuity
from app.feed.simulator import SimControl, library_path
from app.feed.simulator.feed import SimulatorFeed


def _cfg(**overrides: Any) -> config_mod.Config:
    base = {"feed.book": "none", "simulator.pace": False, "simulator.bursts": False}
    base.update(overrides)
    return config_mod.load(None, base)


class Counter:
    def __init__(self) -> None:
        self.continuity = Continuity()
        self.batches = 0

    def __call__(self, batch: list) -> None:
        self.batches += 1
        self.continuity.observe(batch)


async def flood(total: int = 1_000_000, trade_api: str = "v2", keep_thread_state: bool = True) -> dict:
    cfg = _cfg(**{"simulator.max_trades": total, "feed.trade_api": trade_api,
                  "feed.keep_thread_state": keep_thread_state})
    feed = SimulatorFeed(cfg)
    sink = Counter()
    stop_gc = threading.Event()
    collections = [0]

    def collector() -> None:  # hostile: full collections on another Python thread during the flood
        while not stop_gc.is_set():
            gc.collect()
            collections[0] += 1
            time.sleep(0.002)

    gc_thread = threading.Thread(target=collector, daemon=True)
    gc_thread.start()
    t0 = time.perf_counter()
    await feed.start(sink)
    control = feed.control()
    assert control is not None
    deadline = time.monotonic() + 300
    while sink.continuity.counts["trade"] < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    stop_gc.set()
    gc_thread.join()
    stats = feed.stats()
    await feed.stop(finalize=True)
    return {"received": sink.continuity.counts["trade"], "seconds": elapsed, "rate": sink.continuity.counts["trade"] / elapsed,
            "continuity": sink.continuity.stats(), "sim": control.stats(), "gc_collections": collections[0],
            "bridge": stats["bridge"], "dll": stats["dll"], "sim_stats": stats["simulator"]}


async def finalize_during_flood(after: float = 0.5) -> dict:
    feed = SimulatorFeed(_cfg(**{"feed.book": "depth"}))
    sink = Counter()
    await feed.start(sink)
    control = feed.control()
    assert control is not None
    await asyncio.sleep(after)
    t0 = time.perf_counter()
    await feed.stop(finalize=True)
    stop_seconds = time.perf_counter() - t0
    callbacks_at_stop = control.stat("callbacks")
    received_at_stop = sink.continuity.counts["trade"]
    await asyncio.sleep(0.3)
    return {"stop_seconds": stop_seconds, "received": received_at_stop,
            "callbacks_after": control.stat("callbacks") - callbacks_at_stop,
            "received_after": sink.continuity.counts["trade"] - received_at_stop,
            "sim": control.stats(), "continuity": sink.continuity.stats(), "dll": feed.stats()["dll"]}


async def churn_during_flood(seconds: float = 2.0) -> dict:
    feed = SimulatorFeed(_cfg(**{"feed.book": "depth"}))
    sink = Counter()
    await feed.start(sink)
    control = feed.control()
    assert control is not None
    ticker = feed.tickers[0]
    cycles = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await feed.unsubscribe(ticker)
        await asyncio.sleep(0.005)
        await feed.subscribe(ticker)
        await asyncio.sleep(0.005)
        cycles += 1
    t0 = time.perf_counter()
    await feed.stop(finalize=True)
    return {"cycles": cycles, "stop_seconds": time.perf_counter() - t0, "sim": control.stats(),
            "continuity": sink.continuity.stats(), "dll": feed.stats()["dll"]}


async def restart_twice() -> dict:
    from app.app import App
    from app.feed.base import FeedError

    cfg = _cfg(**{"simulator.pace": True, "simulator.rate": 500.0})
    trades = []
    app = None
    for _ in range(2):
        app = App(cfg)
        await app.start()
        await asyncio.sleep(0.5)
        await app.stop()
        trades.append(app.summary()["trades"])
    assert app is not None and app.feed is not None
    control = app.feed.control()  # type: ignore[attr-defined]
    sim_after_restarts = control.stats()
    session_stats = app.feed.stats()["dll"]
    # now finalize for good, then try a third start: must be a clear error, not a crash
    await app.feed.session.finalize()  # type: ignore[attr-defined]
    error = ""
    try:
        third = App(cfg)
        await third.start()
    except FeedError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"trades": trades, "sim": sim_after_restarts, "session": session_stats, "third_start_error": error}


def poison_probe() -> dict:
    """A deliberately wrong consumer: keeps the ticker pointer and the trade handle past the callback."""
    from app.feed.profitdll import abi
    from app.feed.profitdll.library import load

    lib = load(str(library_path()))
    control = SimControl(lib.handle)
    control.set("pace", 0)
    control.set("max_trades", 2000)
    kept: dict[str, Any] = {}
    connected = threading.Event()

    def on_state(kind: int, result: int) -> None:
        if (kind, result) == (2, 4):
            connected.set()

    def on_trade(asset: Any, handle: int, flags: int) -> None:
        if "asset" not in kept:
            kept["asset"] = asset  # WRONG: a by-value struct whose c_wchar_p fields point into DLL memory
            kept["ticker_inside"] = asset.Ticker
            kept["handle"] = handle  # WRONG: valid only inside this callback
            raw = ctypes.cast(ctypes.c_void_p.from_buffer(asset, abi.TConnectorAssetIdentifier.Ticker.offset).value,
                              ctypes.c_wchar_p)
            kept["raw_ptr"] = raw

    state_cb = abi.TStateCallback(on_state)
    trade_cb = abi.TConnectorTradeCallback(on_trade)
    rc = lib.DLLInitializeMarketLogin("k", "u", "p", state_cb, abi.TNewTradeCallback(), None, None, None, None,
                                      None, abi.TTinyBookCallback())
    assert rc == 0, rc
    lib.SetTradeCallbackV2(trade_cb)
    connected.wait(10)
    assert lib.SubscribeTicker("WDOZ26", "F") == 0
    deadline = time.monotonic() + 10
    while "asset" not in kept and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    trade = abi.TConnectorTrade()
    late_rc = lib.TranslateTrade(kept["handle"], ctypes.byref(trade))
    result = {"ticker_inside": kept["ticker_inside"], "ticker_after": kept["asset"].Ticker,
              "raw_after": kept["raw_ptr"].value, "late_translate_rc": late_rc,
              "accessor_misuse": control.stat("accessor_misuse")}
    lib.DLLFinalize()
    return result


def exports() -> dict:
    return {"path": str(library_path())}


SCENARIOS = {"flood": flood, "finalize_during_flood": finalize_during_flood,
             "churn_during_flood": churn_during_flood, "restart_twice": restart_twice,
             "poison_probe": poison_probe, "exports": exports}


def main() -> None:
    name = sys.argv[1]
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    fn = SCENARIOS[name]
    result = asyncio.run(fn(**kwargs)) if asyncio.iscoroutinefunction(fn) else fn(**kwargs)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
