"""Routing scenarios against the real stand-in, each in a process of its own (the DLL initializes once a process).

Run as `python -m tests.feed.routing.scenarios NAME [JSON-ARGS]`; prints one JSON line with what it observed.
"""
from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import sys
import time
from typing import Any, Callable

from app import config as config_mod
from app.events import OrderUpdate, State, TradingResult
from app.feed.profitdll import abi
from app.feed.profitdll import routing_abi as rabi
from app.feed.profitdll.routing import Account, RoutingError
from app.feed.simulator.feed import SimulatorFeed

ACC = Account(1, "SIM-0001")
TICKER = "WDOFUT"


class Sinks:
    def __init__(self) -> None:
        self.routing: list[Any] = []
        self.states: list[State] = []

    def market(self, batch: list) -> None:
        self.states.extend(e for e in batch if type(e) is State)

    def updates(self, local_id: int) -> list[OrderUpdate]:
        return [e for e in self.routing if type(e) is OrderUpdate and e.local_id == local_id]

    def results(self, local_id: int) -> list[TradingResult]:
        return [e for e in self.routing if type(e) is TradingResult and e.local_id == local_id]

    def statuses(self, local_id: int) -> list[int]:
        return [u.status for u in self.updates(local_id)]


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def start(**overrides: Any) -> tuple[SimulatorFeed, Sinks]:
    base = {"feed.routing": True, "feed.book": "none", "feed.tickers": [TICKER], "simulator.rate": 2000.0,
            "simulator.bursts": False}
    base.update(overrides)
    feed = SimulatorFeed(config_mod.load(None, base))
    sinks = Sinks()
    feed.set_routing_sink(sinks.routing.extend)
    await feed.start(sinks.market)
    assert await until(lambda: feed.session is not None and feed.session.conn_state.get(1) == 5)
    return feed, sinks


def done(sinks: Sinks, local_id: int) -> bool:
    return any(s in (2, 4, 8) for s in sinks.statuses(local_id))


async def basic() -> dict:
    feed, sinks = await start()
    r = feed.router
    assert r is not None and feed.session is not None
    out: dict[str, Any] = {"accounts": [(a.broker, a.account, a.broker_name, a.owner) for a in await r.accounts()],
                           "account_events": sorted({e.account for e in sinks.routing if type(e).__name__ == "RoutingAccount"})}
    m1 = await r.send_order(ACC, TICKER, "F", "buy", "market", 1)
    await until(lambda: done(sinks, m1))
    out["market"] = sinks.statuses(m1)
    fill_px = sinks.updates(m1)[-1].avg_price
    big = await r.send_order(ACC, TICKER, "F", "buy", "market", 450)
    await until(lambda: done(sinks, big))
    out["big"] = sinks.statuses(big)
    out["big_traded"] = [u.traded_qty for u in sinks.updates(big)]
    # a limit well below the market rests; a change makes it marketable: Replaced, then fills
    lim = await r.send_order(ACC, TICKER, "F", "buy", "limit", 2, price=fill_px - 20)
    await until(lambda: 0 in sinks.statuses(lim))
    await r.change_order(ACC, lim, fill_px + 10, -1, 3)
    await until(lambda: done(sinks, lim))
    out["limit_change"] = sinks.statuses(lim)
    out["limit_change_qty"] = sinks.updates(lim)[-1].qty
    can = await r.send_order(ACC, TICKER, "F", "sell", "limit", 1, price=fill_px + 30)
    await until(lambda: 0 in sinks.statuses(can))
    await r.cancel_order(ACC, can)
    await until(lambda: done(sinks, can))
    out["cancel"] = sinks.statuses(can)
    # a resting limit one tick below the touch fills when the tape trades through it
    rest = await r.send_order(ACC, TICKER, "F", "buy", "limit", 1, price=fill_px - 0.5)
    t0 = time.monotonic()
    out["rest_filled"] = await until(lambda: done(sinks, rest), 30.0)  # the tape decides when: no hurry under load
    out["rest_s"] = time.monotonic() - t0
    out["rest"] = sinks.statuses(rest)
    out["rest_px"] = sinks.updates(rest)[-1].avg_price - (fill_px - 0.5)
    # stop-limit: triggers on a trade at or through the stop
    stop = await r.send_order(ACC, TICKER, "F", "sell", "stop_limit", 1, price=fill_px - 6, stop_price=fill_px - 0.5)
    out["stop_filled"] = await until(lambda: done(sinks, stop), 30.0)
    out["stop"] = sinks.statuses(stop)
    # rejects
    rej: dict[str, Any] = {}
    for name, args in {"qty": ("market", 501, -1, -1), "band": ("limit", 1, fill_px * 1.2, -1),
                       "stop_band": ("stop_limit", 1, fill_px, fill_px * 0.8)}.items():
        lid = await r.send_order(ACC, TICKER, "F", "buy", args[0], args[1], price=args[2], stop_price=args[3])
        # the trading result is an event of its own: it may reach the loop after the final order update
        await until(lambda: done(sinks, lid) and bool(sinks.results(lid)))
        rej[name] = (sinks.statuses(lid), sinks.updates(lid)[-1].text, [x.code_name for x in sinks.results(lid)])
    lid = await r.send_order(ACC, "WDOF30", "F", "buy", "market", 1)  # a real contract with no market running
    await until(lambda: done(sinks, lid) and bool(sinks.results(lid)))
    rej["closed"] = (sinks.statuses(lid), sinks.updates(lid)[-1].text, [x.code_name for x in sinks.results(lid)])
    try:
        await r.send_order(ACC, "PETR4X", "F", "buy", "market", 1)
    except RoutingError as exc:
        rej["invalid_ticker"] = exc.name
    out["rejects"] = rej
    # positions: the broker's against the fills seen
    fills = {u.local_id: (u.traded_qty if u.side == "buy" else -u.traded_qty) for u in sinks.routing
             if type(u) is OrderUpdate and u.ticker == TICKER}
    pos = await r.position(ACC, TICKER, "F")
    out["position"] = (pos.qty, sum(fills.values()))
    z = await r.zero_position(ACC, TICKER, "F")
    await until(lambda: done(sinks, z))
    out["flat"] = (await r.position(ACC, TICKER, "F")).qty
    out["orders"] = sorted(o.local_id for o in await r.orders(ACC))
    out["sent"] = sorted({u.local_id for u in sinks.routing if type(u) is OrderUpdate})
    # GetOrderDetails outside the order callback: refused and counted
    control = feed.control()
    assert control is not None
    before = control.stat("accessor_misuse")
    o = rabi.TConnectorOrderOut()
    o.OrderID.LocalOrderID = m1
    rc = await feed.session.owner.call(feed.session.lib.GetOrderDetails, ctypes.byref(o))
    out["details_outside"] = (rc, control.stat("accessor_misuse") - before)
    # struct version 0: the old enums (type 2 market, side 1 sell)
    def send_v0() -> int:
        s = rabi.TConnectorSendOrder(0, rabi.TConnectorAccountIdentifier(0, 1, "SIM-0001", "", 0),
                                     abi.TConnectorAssetIdentifier(0, TICKER, "F", 0), "simulator", 2, 1, -1, -1, 1)
        return feed.session.lib.SendOrder(ctypes.byref(s))
    v0 = await feed.session.owner.call(send_v0)
    await until(lambda: done(sinks, v0))
    u = sinks.updates(v0)[-1]
    out["v0"] = (u.order_type, u.side, u.status)
    out["callback_errors"] = feed.session.stats()["routing_callback_errors"]
    await feed.stop(finalize=True)
    return out


async def hostile(seed: int = 7, rate: float = 0.5, orders: int = 8) -> dict:
    feed, sinks = await start(**{"simulator.seed": seed, "simulator.routing_dup_rate": rate,
                                 "simulator.routing_reorder_rate": rate, "simulator.routing_cancel_race_rate": rate})
    r = feed.router
    assert r is not None
    m = await r.send_order(ACC, TICKER, "F", "buy", "market", 1)
    await until(lambda: done(sinks, m))
    px = max(u.avg_price for u in sinks.updates(m))  # the last update may be a reordered PendingNew
    ids = []
    for _ in range(orders):
        lid = await r.send_order(ACC, TICKER, "F", "buy", "limit", 1, price=px - 30)
        await until(lambda: 0 in sinks.statuses(lid))
        await asyncio.sleep(0.02)
        await r.cancel_order(ACC, lid)
        await until(lambda: done(sinks, lid))
        ids.append(lid)
    await asyncio.sleep(0.1)
    per: dict[str, Any] = {}
    for lid in ids:
        st = sinks.statuses(lid)
        keys = [(u.status, u.traded_qty) for u in sinks.updates(lid)]
        per[str(lid)] = {"statuses": st, "dup": len(keys) != len(set(keys)),
                         "reorder": any(a == 0 and b == 10 for a, b in zip(st, st[1:])),
                         "race": 2 in st and any(x.code_name == "RejectedBroker" for x in sinks.results(lid))}
    control = feed.control()
    assert control is not None
    stats = {k: control.stat(k) for k in ("routing_dups", "routing_reorders", "routing_races")}
    await feed.stop(finalize=True)
    return {"orders": per, "stats": stats}


async def drop(seed: int = 7) -> dict:
    feed, sinks = await start(**{"simulator.seed": seed, "simulator.routing_drop_rate": 1.0,
                                 "simulator.routing_drop_ms": 800.0, "simulator.routing_max_qty": 100000})
    r = feed.router
    assert r is not None and feed.session is not None
    # far more than the visible book: the rest keeps working and fills with the tape while routing is down
    big = await r.send_order(ACC, TICKER, "F", "buy", "market", 20000)
    await until(lambda: feed.session.conn_state.get(1) == 0, 3.0)
    t_down = time.monotonic_ns()
    refused = ""
    try:
        await r.send_order(ACC, TICKER, "F", "buy", "market", 1)
    except RoutingError as exc:
        refused = exc.name
    await until(lambda: feed.session.conn_state.get(1) == 5, 5.0)
    await until(lambda: done(sinks, big), 10.0)
    routing_states = [s.result for s in sinks.states if s.conn_type == 1]
    ups = sinks.updates(big)
    back = max(s.received_ns for s in sinks.states if s.conn_type == 1 and s.result == 5)
    out = {"refused_while_down": refused, "routing_states": routing_states, "final": ups[-1].status,
           "traded": ups[-1].traded_qty, "after_reconnect": sum(1 for u in ups if u.received_ns > back),
           "during_down": sum(1 for u in ups if t_down < u.received_ns < back),
           "drops": feed.control().stat("routing_drops")}  # type: ignore[union-attr]
    await feed.stop(finalize=True)
    return out


async def broker_file(path: str, phase: str) -> dict:
    feed, sinks = await start(**{"simulator.routing_state_file": path})
    r = feed.router
    assert r is not None
    if phase == "first":
        m = await r.send_order(ACC, TICKER, "F", "buy", "market", 2)
        await until(lambda: done(sinks, m))
        px = sinks.updates(m)[-1].avg_price
        rest = await r.send_order(ACC, TICKER, "F", "buy", "limit", 1, price=px - 40)
        await until(lambda: 0 in sinks.statuses(rest))
        print(json.dumps({"market": m, "resting": rest}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no finalize, no atexit: the file is all that is left
    orders = {o.local_id: (o.status_name, o.traded_qty) for o in await r.orders(ACC)}
    pos = await r.position(ACC, TICKER, "F")
    nxt = await r.send_order(ACC, TICKER, "F", "buy", "limit", 1, price=1.0 * 5000)
    await feed.stop(finalize=True)
    return {"orders": {str(k): v for k, v in orders.items()}, "position": pos.qty, "next_id": nxt}


if __name__ == "__main__":
    fn = globals()[sys.argv[1]]
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    print(json.dumps(asyncio.run(fn(**kwargs))), flush=True)
