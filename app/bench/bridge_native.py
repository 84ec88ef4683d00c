"""`bench bridge` design n: the native ring, measured exactly as the feed runs it.

The stand-in calls the ring's C trade callback (V1 or V2 as the other designs); the DLL owner thread - an
app.feed.owner_thread.OwnerThread with the feed's own NativeIntake as its pump - drains batches, converts them into
`Trade` events (full B3 time conversion, more work than the other designs' Tick copies) and hands each batch to an
app.feed.bridge.Bridge on the loop with one call_soon_threadsafe. Every DLL call (initialize, subscribe, finalize)
runs on that owner thread, as in the feed. Counting, gaps and latency as design a (the Bridge records callback ->
drain latency; `received_ns` is stamped by the C callback on the same clock).
"""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from app.bench.worker import CpuWindow, Source, WorkerError, full_speed, warmup_events, window_seconds
from app.feed.bridge import Bridge
from app.feed.native import ring
from app.feed.owner_thread import OwnerThread
from app.feed.profitdll.native_intake import NativeIntake

DEFAULT_NAP_US = 100


async def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    from app.bench.bridge import _result, batch_consumer  # the shared consumer and result (bridge imports this)

    native = ring.get()
    if native is None:
        raise WorkerError("the native ring is not built (no C compiler at install time)")
    loop = asyncio.get_running_loop()
    flood = full_speed(cfg)
    target = int(cfg["events"]) if flood else 0
    done = asyncio.Event()
    bridge_ref: list[Bridge] = []
    sink, tally = batch_consumer(bridge_ref, warmup_events(cfg), target, done.set, number="trade_id")
    bridge = Bridge(loop, sink, warn_depth=1 << 40)
    bridge_ref.append(bridge)
    owner = OwnerThread("bench-dll-owner")
    source: Source = await owner.call(Source, cfg)
    # the feed's intake with the parts of a session it uses: the library (for the accessors), the bridge, state
    session = SimpleNamespace(lib=source.lib, bridge=bridge, on_state=lambda kind, result: None,
                              invalid_tickers=set())
    intake = NativeIntake(session, native, float(cfg.get("nap_us", DEFAULT_NAP_US)) / 1e6)  # type: ignore[arg-type]

    def arm_and_initialize() -> None:
        intake.arm(depth_levels=5, flush_add_ends_bracket=True)
        owner.set_pump(intake)
        # the state callback stays the Source's own (ctypes): it fires a handful of times, before the flow
        source.initialize(native.trade_v1 if source.api == "v1" else native.trade_v2)

    try:
        await owner.call(arm_and_initialize)
        deadline = time.monotonic() + 15
        while not source.connected():
            if time.monotonic() > deadline:
                raise WorkerError(f"no market connection within 15s (states {source.states})")
            await asyncio.sleep(0.002)
        window = CpuWindow()
        await owner.call(source.subscribe)  # resets the stand-in's dwell: the flow's callbacks only
        if flood:
            deadline = time.monotonic() + float(cfg.get("timeout", 120))
            while not done.is_set() and source.delivered() < target and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(done.wait(), 0.01)
                except asyncio.TimeoutError:
                    pass
        else:
            await asyncio.sleep(window_seconds(cfg))
        ring_dwell = native.dwell().get("trade_v1" if source.api == "v1" else "trade_v2")

        def finalize() -> int:
            produced = source.finalize()  # joins the connector thread
            owner.set_pump(None)
            intake.finish()  # what is left in the ring, to the bridge; the ring is freed
            return produced

        produced = await owner.call(finalize)
    finally:
        owner.stop()
    deadline = time.monotonic() + 60
    while tally.count < produced and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    bridge.close()
    stats = bridge.stats()
    tally.hist = bridge.latency
    extra = {"bridge": {k: stats[k] for k in ("wakeups", "mean_batch", "max_batch", "max_depth", "batch_sizes",
                                              "lost_wakeups")},
              "ring_dwell": ring_dwell.summary_us() if ring_dwell is not None else {},
             "ring": {k: native.stat(k) for k in ("pushed", "drained", "overflowed", "max_depth", "wakes")}}
    return _result(cfg, "n", source, produced, tally, [], window.close(), extra)
