"""bench routing: decision -> SendOrder returned on the DLL owner thread, with the market data flowing.

One process per point (the DLL initializes once a process): the real App in live mode on the stand-in's broker
(execution.mode = "live", feed.routing, account SIM-0001), thread isolation, the hierarchy and the journal on,
Valkey and ZMQ off. The market flows paced at 1k or 5k trades/s across both tickers (bursts off), or not at all
(the stand-in stops after a few hundred trades: its book stays up to fill against, nothing else reaches the loop).

The orders. The hierarchy decides when its signals say so, at no rate one can set, so a pacer task on the loop
emits ORDERS_PER_S market orders of 1 contract through the live executors' own `execute` (the call the hierarchy
makes when it decides), alternating tickers and, per ticker, buy then sell, so the paced orders add at most one
contract to a position. What is timed is what LiveLink times on every live order
(`snapshot()["send_latency"]`): from `LiveLink.submit` (`decided_ns`: the executor emitting the order on the loop)
to the stamp the owner thread takes right after the DLL's SendOrder returned (`sent_ns`), before the answer goes
back to the loop. In between: the loop reaching LiveLink's sending task, the hop to the owner thread, the send
ledger's intent line (flushed to the OS), and SendOrder itself. The hierarchy keeps deciding meanwhile (many of
its orders answer the paced orders' fills, which move the position it targets); its orders, decided in the middle
of a batch of market events and so also waiting for the rest of that batch, are timed the same way and reported
apart.

Checks (the point fails instead of reporting): every paced order reached the order book and got an answer (sent
or refused), no trade gap, no DLL rule violation. The bench's own fault "gap" loses one paced order in 100
before it reaches LiveLink; "crash" aborts the worker once the App is up.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from statistics import median
from typing import Any

from app.bench.worker import CpuWindow, Options, WorkerError, active_fault, spawn

ORDERS_PER_S = 200
POINTS: tuple[tuple[str, int | None], ...] = (("none", None), ("1000", 1000), ("5000", 5000))
PACED = -1  # trade_id of the pacer's orders: no trade decided them, and it tells them from the hierarchy's
NO_FLOW_TRADES = 300  # "none": trades the stand-in makes before it stops (a last price and a book to fill from)
DRAIN_S = 5.0


def _overrides(data_dir: str, rate: int | None) -> dict[str, Any]:
    return {
        "run.data_dir": data_dir, "feed.kind": "simulator", "feed.isolation": "thread", "feed.routing": True,
        "execution.mode": "live", "execution.account": "SIM-0001", "execution.broker": 1,
        "risk.max_order_qty": 2, "risk.price_band_ticks": 40.0, "risk.max_position": 3,
        "valkey.enabled": False, "zmq.enabled": False,
        "simulator.bursts": False, "simulator.pace": True,
        "simulator.rate": rate / 2.0 if rate else 1000.0,  # per ticker
        "simulator.max_trades": 0 if rate else NO_FLOW_TRADES,
    }


async def _pace(app: Any, orders_per_s: float, stop: asyncio.Event, fault: str, counts: dict[str, int]) -> None:
    """Emit paced orders until `stop`, on an absolute schedule (a late loop catches up instead of lowering the
    rate)."""
    from app.events import Order
    from app.feed.clock import now_ns

    tickers = list(app.feed.tickers)
    desks = [app.pipeline.hierarchy.desk(t) for t in tickers]  # builds each ticker's live executor
    loop = asyncio.get_running_loop()
    interval, due, i = 1.0 / orders_per_s, loop.time(), 0
    while not stop.is_set():
        d = desks[i % len(desks)]
        side = "buy" if (i // len(desks)) % 2 == 0 else "sell"
        order = Order(order_id=0, ticker=d.ticker, ts=now_ns(), side=side, qty=1, kind="market",
                      price=d.market.last_price, reason="bench routing", trade_id=PACED)
        counts["decided"] += 1
        if not (fault == "gap" and i % 100 == 99):
            d.main.executor.execute(order, d.market)
        i += 1
        due += interval
        await asyncio.sleep(max(0.0, due - loop.time()))


async def _until(cond: Any, timeout: float, step: float = 0.02) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(step)
    return True


async def _market_ready(app: Any, rate: int | None) -> None:
    """A rate point: trades are reaching the loop. No flow: the stand-in made its trades and went quiet."""
    counts = app.pipeline.continuity.counts
    if rate:
        if not await _until(lambda: counts["trade"] > 0, 15.0):
            raise WorkerError("no trade reached the loop within 15 s")
        return
    if not await _until(lambda: counts["trade"] >= NO_FLOW_TRADES, 15.0):
        raise WorkerError(f"the stand-in made {counts['trade']} of {NO_FLOW_TRADES} trades within 15 s")
    await asyncio.sleep(0.3)  # the last batches drain


def _latency(spans: Any) -> dict[str, Any]:
    from app.metrics import LatencyHistogram

    h = LatencyHistogram()
    for ns in spans:
        h.record(ns)
    return h.summary_us()


def _stage_stamps(router: Any, now_ns: Any) -> dict[str, list[int]]:
    """Bench-only stamps between the two ends LiveLink times, to say where the time goes: client id -> [LiveLink's
    task calls send_order, the owner thread starts the call]. Wrappers on this Router instance (~1 us each)."""
    stamps: dict[str, list[int]] = {}
    send, dll_send = router.send_order, router._dll_send

    async def send_order(*args: Any, **kw: Any) -> Any:
        stamps[kw.get("client_id", "")] = [now_ns(), 0]
        return await send(*args, **kw)

    def dll_send_stamped(*args: Any) -> Any:
        s = stamps.get(args[8])  # client_id: send_order passes every argument positionally
        if s is not None:
            s[1] = now_ns()
        return dll_send(*args)

    router.send_order, router._dll_send = send_order, dll_send_stamped
    return stamps


def _stages(sent: list[Any], stamps: dict[str, list[int]]) -> dict[str, Any]:
    got = [(o, stamps[o.client_id]) for o in sent if o.client_id in stamps]
    return {"queue": _latency(s[0] - o.decided_ns for o, s in got),  # the loop reaching LiveLink's sending task
            "hop": _latency(s[1] - s[0] for o, s in got),  # the command reaching the owner thread
            "call": _latency(o.sent_ns - s[1] for o, s in got)}  # ledger intent line + SendOrder


async def point(cfg: dict[str, Any]) -> dict[str, Any]:
    from app import config as config_mod
    from app.app import App
    from app.execution.live_guard import ENV_CONFIRM

    rate, seconds, warmup = cfg.get("rate"), float(cfg["seconds"]), float(cfg.get("warmup", 1.0))
    fault = active_fault(cfg)
    os.environ[ENV_CONFIRM] = "yes"  # this worker only, and only ever on the stand-in (feed.kind above)
    data_dir = tempfile.mkdtemp(prefix="hmarl-bench-routing-")
    try:
        app = App(config_mod.load(None, _overrides(data_dir, rate)), fresh=True)
        await app.start()
        if fault == "crash":
            os.abort()  # as a native crash with the DLL and routing up would
        try:
            return await _measure(app, rate, seconds, warmup, fault, float(cfg.get("orders_per_s", ORDERS_PER_S)))
        finally:
            await app.stop(finalize=True)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def _measure(app: Any, rate: int | None, seconds: float, warmup: float, fault: str,
                   orders_per_s: float) -> dict[str, Any]:
    from app.feed.clock import now_ns

    link, counts = app.live, app.pipeline.continuity.counts
    if not link.reconciled:
        raise WorkerError(f"live link not reconciled at start: {link.last.line if link.last else '?'}")
    await _market_ready(app, rate)
    stop, paced = asyncio.Event(), {"decided": 0}
    stamps = _stage_stamps(app.feed.router, now_ns)
    pacer = asyncio.get_running_loop().create_task(_pace(app, orders_per_s, stop, fault, paced))
    await asyncio.sleep(warmup)  # first sends open the ledger file, first thread-state and allocation costs
    t0, trades0, events0, cpu = now_ns(), counts["trade"], sum(counts.values()), CpuWindow()
    await asyncio.sleep(seconds)
    t1, trades1, events1 = now_ns(), counts["trade"], sum(counts.values())
    window = cpu.close()
    stop.set()
    await pacer
    if not await _until(lambda: link.book.in_flight == 0, DRAIN_S):
        raise WorkerError(f"{link.book.in_flight} orders still waiting for SendOrder's answer {DRAIN_S:g} s after "
                          "the last decision")
    book = list(link.book.by_client.values())
    mine = [o for o in book if o.trade_id == PACED]
    if len(mine) != paced["decided"]:
        raise WorkerError(f"lost orders: {paced['decided'] - len(mine)} of {paced['decided']} paced decisions "
                          "never reached the order book")
    in_window = [o for o in book if t0 <= o.decided_ns < t1]
    sent = [o for o in in_window if o.sent_ns]
    wall = (t1 - t0) / 1e9
    states: dict[str, int] = {}
    for o in in_window:
        states[o.state] = states.get(o.state, 0) + 1
    snap, summary = link.snapshot(), app.summary()
    sim = app.feed.stats().get("simulator", {})
    return {
        "rate": rate, "seconds": round(wall, 3), "orders_per_s_offered": orders_per_s,
        "trades": trades1 - trades0, "trades_per_s": (trades1 - trades0) / wall,
        "events_per_s": (events1 - events0) / wall,
        "decision_to_send": _latency(o.sent_ns - o.decided_ns for o in sent if o.trade_id == PACED),
        "hierarchy_decision_to_send": _latency(o.sent_ns - o.decided_ns for o in sent if o.trade_id != PACED),
        "stages": _stages([o for o in sent if o.trade_id == PACED], stamps),
        "orders": len(in_window), "orders_paced": sum(o.trade_id == PACED for o in in_window),
        "sent": len(sent), "sent_per_s": len(sent) / wall, "states": states,
        "refused": states.get("unsent", 0), "rejected": states.get("rejected", 0),
        "run_send_latency": snap["send_latency"], "run_sent": snap["sent"], "run_refused": snap["refused"],
        "broker_orders": sim.get("routing_orders"), "broker_rejects": sim.get("routing_rejects"),
        "positions": {t: ex.qty for t, ex in link.executors.items()},
        **window,
        "gaps": summary.get("gaps"), "violations": summary.get("violations", 0),
    }


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    """worker.main's entry: one point on its own loop."""
    from app.loops import run as run_loop

    out = run_loop(lambda: point(cfg), cfg.get("loop", "auto"))
    assert isinstance(out, dict)
    if out.get("gaps"):
        raise WorkerError(f"routing point {cfg.get('label')}: trades lost or repeated (gaps {out['gaps']})")
    if out.get("violations"):
        raise WorkerError(f"routing point {cfg.get('label')}: {out['violations']} DLL rule violations")
    return out


# ------------------------------------------------------------------------------------------------ parent side
LATENCY_KEYS = ("p50_us", "p99_us", "p999_us")


def _median_latency(lats: list[dict[str, Any]]) -> dict[str, Any]:
    """Each percentile the median over the runs that timed anything (each run's percentile taken on its own)."""
    timed = [x for x in lats if x["count"]] or lats
    return {"count": sum(x["count"] for x in lats), **{k: median(x[k] for x in timed) for k in LATENCY_KEYS},
            "max_us": max(x["max_us"] for x in lats)}


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One point from its runs: latencies as _median_latency, counts summed, rates the median; every run's main
    figures kept."""
    out: dict[str, Any] = {"rate": runs[0]["rate"], "runs": len(runs)}
    for key in ("decision_to_send", "hierarchy_decision_to_send"):
        out[key] = _median_latency([r[key] for r in runs])
    out["stages"] = {k: _median_latency([r["stages"][k] for r in runs]) for k in runs[0]["stages"]}
    for key in ("trades_per_s", "events_per_s", "sent_per_s", "others_cores", "busy_cores"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = median(values) if values else None
    for key in ("orders", "orders_paced", "sent", "refused", "rejected"):
        out[key] = sum(r[key] for r in runs)
    out["cpu_percent"] = median(100.0 * r["cpu_seconds"] / r["wall_seconds"] for r in runs)
    out["per_run"] = [{**{k: r["decision_to_send"][k] for k in LATENCY_KEYS},
                       "trades_per_s": round(r["trades_per_s"]), "sent": r["sent"],
                       "others_cores": r.get("others_cores")} for r in runs]
    return out


def run(opts: Options) -> dict[str, Any]:
    seconds = opts.seconds or (0.6 if opts.quick else 10.0)
    warmup = 0.3 if opts.quick else 1.0
    repeats = opts.repeats()
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in POINTS}
    for k in range(repeats):  # interleaved, so a noisy minute on the box spreads over every point
        for label, rate in POINTS:
            cfg = {**opts.base(), "kind": "routing", "label": f"routing {label} run {k + 1}", "rate": rate,
                   "seconds": seconds, "warmup": warmup, "orders_per_s": ORDERS_PER_S}
            out = spawn(cfg, 60.0 + seconds + warmup, opts)
            runs[label].append(out)
            lat = out["decision_to_send"]
            opts.say(f"routing @ {label} trades/s ({out['trades_per_s']:,.0f} achieved), run {k + 1}: "
                     f"{out['sent']} orders sent, decision->SendOrder p50 {lat['p50_us']} p99 {lat['p99_us']} "
                     f"p999 {lat['p999_us']} us")
    return {"points": {label: _combine(rs) for label, rs in runs.items()}, "labels": [label for label, _ in POINTS],
            "orders_per_s": ORDERS_PER_S, "seconds": seconds, "warmup": warmup, "repeat": repeats,
            "note": "rate = market trades/s offered across both tickers; none = no market flow"}
