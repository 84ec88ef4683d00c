"""`bench floor`: how fast can ctypes call Python from the stand-in's native thread at all (the ceiling).

Every point floods the stand-in at full speed (`pace` = 0, `max_trades` = N) with one ticker subscribed and a V1
(default) trade callback that does nothing but what its name says, then counts:
- `empty`: pin the thread state (a no-op when the default is measured) and count;
- `tuple`: stamp `received_ns`, pin, copy every field of the trade into a tuple, count;
- `event`: the same copy into the msgspec `Tick` the bridge designs hand off;
- `native`: no Python callback at all: the stand-in's own cost per trade (generation, dates, poisoning).
Each body runs with the ctypes default (a new Python thread state per callback: PyGILState_Ensure finds none,
creates one, Release destroys it) and with one thread state kept alive on the connector thread (the binding's
ThreadStatePinner, feed.keep_thread_state). Rate = (N - 1) / (time of the N-th callback - time of the first),
both stamped inside the callback; the main thread sleeps on an Event (GIL released) meanwhile.
The ceiling every bridge figure is compared with is `tuple` with the kept thread state.
"""
from __future__ import annotations

import ctypes
import threading
import time
from typing import Any

from app.feed.clock import now_ns
from app.bench.worker import CpuWindow, Options, Source, Tick, WorkerError, spawn_median
from app.feed.profitdll import abi

CEILING = "tuple_kept"


# ------------------------------------------------------------------------------------------------ child side
def _callback(api: str, body: str, source: Source, target: int, stamps: list[int], done: threading.Event,
              errors: list[str]) -> Any:
    now, pin = now_ns, source.pinner.pin_current
    n = 0
    if api == "v1":
        if body == "empty":
            def on_trade(asset: Any, date_s: str, number: int, price: float, volume: float, qty: int, buyer: int,
                         seller: int, trade_type: int, edit: int) -> None:
                nonlocal n
                try:
                    pin()
                    n += 1
                    if n == 1:
                        stamps[0] = now()
                    elif n == target:
                        stamps[1] = now()
                        done.set()
                except BaseException as exc:
                    errors.append(repr(exc))
        elif body == "tuple":
            def on_trade(asset: Any, date_s: str, number: int, price: float, volume: float, qty: int, buyer: int,
                         seller: int, trade_type: int, edit: int) -> None:
                nonlocal n
                received = now()
                try:
                    pin()
                    ev = (asset.pwcTicker, asset.pwcBolsa, date_s, number, price, volume, qty, buyer, seller,
                          trade_type, edit, received)
                    n += 1
                    if n == 1:
                        stamps[0] = received
                    elif n == target:
                        stamps[1] = received
                        done.set()
                    del ev
                except BaseException as exc:
                    errors.append(repr(exc))
        else:
            def on_trade(asset: Any, date_s: str, number: int, price: float, volume: float, qty: int, buyer: int,
                         seller: int, trade_type: int, edit: int) -> None:
                nonlocal n
                received = now()
                try:
                    pin()
                    ev = Tick(asset.pwcTicker, asset.pwcBolsa, date_s, number, price, volume, qty, buyer, seller,
                              trade_type, edit, received)
                    n += 1
                    if n == 1:
                        stamps[0] = received
                    elif n == target:
                        stamps[1] = received
                        done.set()
                    del ev
                except BaseException as exc:
                    errors.append(repr(exc))
        return abi.TNewTradeCallback(on_trade)

    translate = source.lib.TranslateTrade
    buf = abi.TConnectorTrade()
    ref = ctypes.byref(buf)
    d = buf.TradeDate

    def on_trade_v2(asset: Any, handle: int, flags: int) -> None:
        nonlocal n
        received = now()
        try:
            pin()
            if body != "empty":
                buf.Version = 0
                translate(handle, ref)
                fields = (asset.Ticker, asset.Exchange,
                          (d.wYear, d.wMonth, d.wDay, d.wHour, d.wMinute, d.wSecond, d.wMilliseconds),
                          buf.TradeNumber, buf.Price, buf.Volume, buf.Quantity, buf.BuyAgent, buf.SellAgent,
                          buf.TradeType, flags & 1, received)
                if body == "event":
                    Tick(*fields)
            n += 1
            if n == 1:
                stamps[0] = received
            elif n == target:
                stamps[1] = received
                done.set()
        except BaseException as exc:
            errors.append(repr(exc))
    return abi.TConnectorTradeCallback(on_trade_v2)


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    body, target = cfg["body"], int(cfg["events"])
    timeout = float(cfg.get("timeout", 120))
    source = Source(cfg)
    stamps = [0, 0]
    done = threading.Event()
    errors: list[str] = []
    if body == "native":  # no trade callback: the stand-in generates and "delivers" to nobody
        source.start(abi.TNewTradeCallback())
        window = CpuWindow()
        source.subscribe()
        t0 = now_ns()
        deadline = time.monotonic() + timeout
        while source.delivered() < target:
            if time.monotonic() > deadline:
                raise WorkerError(f"the stand-in delivered {source.delivered()} of {target} in {timeout:g}s")
            time.sleep(0.002)
        stamps[:] = [t0, now_ns()]
        delivered = source.finalize()
        received = delivered
    else:
        cb = _callback(source.api, body, source, target, stamps, done, errors)
        source.start(cb)
        window = CpuWindow()
        source.subscribe()
        if not done.wait(timeout):
            raise WorkerError(f"{cfg.get('label')}: {source.delivered()} of {target} callbacks in {timeout:g}s")
        delivered = source.finalize()
        received = target
    cpu = window.close()
    if errors or source.errors:
        raise WorkerError(f"callback raised: {(errors + source.errors)[0]}")
    if source.rule_breaks():
        raise WorkerError(f"the stand-in counted {source.rule_breaks()}")
    if delivered != target:
        raise WorkerError(f"the stand-in made {delivered} trade callbacks, expected {target}")
    span = (stamps[1] - stamps[0]) / 1e9
    if span <= 0:
        raise WorkerError("no time between the first and the last callback")
    return {"body": body, "keep_thread_state": bool(cfg.get("keep_thread_state", True)), "api": source.api,
            "events": target, "received": received, "seconds": round(span, 4), "rate": (target - 1) / span,
            "ns_per_event": round(span * 1e9 / (target - 1), 1), **cpu, "sim": source.sim_stats()}


# ------------------------------------------------------------------------------------------------ parent side
def points(opts: Options) -> list[dict[str, Any]]:
    """(label, body, keep thread state, events): the default thread state is ~10x slower, so it gets fewer."""
    if opts.events:
        fast = slow = native = opts.events
    elif opts.quick:
        fast, slow, native = 30_000, 10_000, 100_000
    else:
        fast, slow, native = 2_000_000, 250_000, 5_000_000
    table = [("native", "native", True, native),
             ("empty_default", "empty", False, slow), ("empty_kept", "empty", True, fast),
             ("tuple_default", "tuple", False, slow), (CEILING, "tuple", True, fast),
             ("event_kept", "event", True, fast)]
    base = opts.base()
    return [{**base, "kind": "floor", "label": f"floor {label}", "point": label, "body": body,
             "keep_thread_state": keep, "events": n} for label, body, keep, n in table]


def measure_ceiling(opts: Options) -> dict[str, Any]:
    """Only the ceiling point (the bridge section measures it in its own run, for its ratios)."""
    cfg = next(p for p in points(opts) if p["point"] == CEILING)
    out = spawn_median(cfg, 180, opts.repeats(), "rate", opts)
    opts.say(f"{cfg['label']}: {out['rate']:,.0f}/s (runs {out['runs']})")
    return out


def run(opts: Options) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for cfg in points(opts):
        out = spawn_median(cfg, 180, opts.repeats(), "rate", opts)
        results[cfg["point"]] = out
        opts.say(f"{cfg['label']}: {out['rate']:,.0f}/s ({out['ns_per_event']:.0f} ns/callback, runs {out['runs']})")
    ratios = {
        "tuple_kept_over_default": results[CEILING]["rate"] / results["tuple_default"]["rate"],
        "empty_kept_over_default": results["empty_kept"]["rate"] / results["empty_default"]["rate"],
        "event_over_tuple_kept": results["event_kept"]["rate"] / results[CEILING]["rate"],
        "ceiling_over_native": results[CEILING]["rate"] / results["native"]["rate"],
    }
    return {"api": opts.api, "repeat": opts.repeats(), "points": results, "ceiling": CEILING,
            "ceiling_rate": results[CEILING]["rate"],
            "ratios": ratios}
