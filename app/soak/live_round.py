"""One live run on the stand-in's broker, in a process of its own (the DLL initializes once a process): the unit of
the live fault soak (app.soak.live_faults) and of tests/live.

`python -m app.soak.live_round '{"seconds": 6, "flatten": true, "overrides": {...}}'` prints one JSON line: what was
sent, refused and filled, our position and the broker's per ticker, reconciliations, ignored updates, orders no
intent of ours explains, and the stand-in's injected routing faults. Options (all optional):
  seconds      trading time (default 5)             flatten     kill switch + flatten at the end, then settle
  overrides    dotted config keys                   resting     place this many resting 1-lot limits of ours
  kill_child   process isolation: kill the child N times, waiting for each reconciliation
  child_faults process isolation: per child incarnation, the feed-child faults (route-exit:N:W ...)
  crash        os._exit(9) after `seconds` (kill -9 in the middle of trading)
  hold / stranger   put an order that is not ours at the broker (tests of the refusal paths)
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile

from app import config as config_mod
from app import app as app_module
from app.app import App
from app.execution.live_guard import ENV_CONFIRM

LIVE = {"execution.mode": "live", "feed.kind": "simulator", "feed.routing": True, "execution.account": "SIM-0001",
        "execution.broker": 1, "risk.max_order_qty": 2, "risk.price_band_ticks": 40.0, "risk.max_position": 3,
        "valkey.enabled": False, "zmq.enabled": False, "journal.enabled": False, "feed.book": "depth",
        "simulator.rate": 400.0, "coordination.entry_threshold": 0.05}


async def wait_reconciled(app: App, timeout: float) -> None:
    """Until the live link reconciled with the current child's routing (or the timeout)."""
    link, loop = app.live, asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await asyncio.sleep(0.3)
    while loop.time() < deadline and not (app.feed.router.connected and link.epoch == app.feed.router.epoch):
        await asyncio.sleep(0.05)


async def wait_incarnation(app: App, n: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and app.feed.supervisor.incarnations < n:
        await asyncio.sleep(0.05)


def dup_orders(at_broker: list, link, data_dir: str) -> int:
    """Orders at the broker that no intent of ours explains: neither this run's nor in the send ledger (every send
    of every run of this data dir, one local id per client id). A second send of one intent would show here."""
    from pathlib import Path

    from app.feed.profitdll.send_ledger import LEDGER_FILE, SendLedger

    ours = {o.local_id for o in link.book.by_client.values() if o.local_id}
    path = Path(data_dir) / LEDGER_FILE
    ledger = {v for v in SendLedger(path).answers.values() if v > 0} if path.exists() else set()
    return len({u.local_id for u in at_broker} - ours - ledger)


async def place_resting(app: App, n: int, seconds: float) -> None:
    """`n` resting 1-lot limits of ours, 8 ticks away from the last trade, spread over `seconds`: orders that work
    for a while, so the stand-in's routing drops find them (it drops only while an order works)."""
    link = app.live
    for i in range(n):
        await asyncio.sleep(seconds / (n + 1))
        t = app.feed.tickers[i % len(app.feed.tickers)]
        market = app.pipeline.hierarchy.desk(t).market
        ex = link.executors.get(t)
        if not market.last_price or ex is None or not link.reconciled:
            continue
        side = "buy" if i % 2 == 0 else "sell"
        tick = ex.spec.tick
        price = market.last_price + (-8 * tick if side == "buy" else 8 * tick)
        await link.place_limit(t, side, 1, round(price / tick) * tick)


async def main(args: dict) -> dict:
    os.environ[ENV_CONFIRM] = "yes"
    over = {**LIVE, "run.data_dir": tempfile.mkdtemp(prefix="live-"), **args.get("overrides", {})}
    os.makedirs(over["run.data_dir"], exist_ok=True)
    app = App(config_mod.load(None, over), fresh=True)
    plan = args.get("child_faults", [])  # process isolation: test faults per feed child incarnation
    if plan:
        make_feed = app_module.make_feed

        def faulty_feed(*a):
            feed = make_feed(*a)
            feed.faults, feed.later_faults = plan[0], dict(enumerate(plan))
            return feed

        app_module.make_feed = faulty_feed
    await app.start()
    out: dict = {}
    try:
        kills = args.get("kill_child", 0)  # process isolation: the feed child (DLL, broker link) dies N times
        for _ in range(kills):
            await asyncio.sleep(args.get("seconds", 5.0) / (kills + 1))
            app.feed.kill_child()
            await wait_reconciled(app, 30.0)
        for _ in [f for f in plan if f]:  # each faulty child dies on its own: wait for the one after it
            await wait_incarnation(app, app.feed.supervisor.incarnations + 1, 30.0)
            await wait_reconciled(app, 30.0)
        resting = asyncio.get_running_loop().create_task(place_resting(app, args.get("resting", 0),
                                                                       args.get("seconds", 5.0) / (kills + 1)))
        await asyncio.sleep(args.get("seconds", 5.0) / (kills + 1))
        await resting
        if args.get("stranger"):  # another program rests an order on our account; routing then drops and returns
            link = app.live
            t = app.feed.tickers[0]
            last = app.pipeline.hierarchy.desk(t).market.last_price
            await app.feed.router.send_order(link.account, t, link.exchange, "buy", "limit", 1,
                                             price=round(last * 0.97 * 2) / 2)
            await asyncio.sleep(args.get("after", 3.0))
        if args.get("crash"):  # kill -9 in the middle of trading: orders working, position open, nothing saved
            os._exit(9)
        if args.get("hold"):  # leave the broker holding +1 WDO, as a run killed right after an order would
            link = app.live
            t = sorted(link.executors)[0] if link.executors else app.feed.tickers[0]
            pos = (await app.feed.router.position(link.account, t, link.exchange)).qty
            app.pipeline.hierarchy.kill_switch(True)  # no more decisions of ours on top
            if pos != 1:
                await app.feed.router.send_order(link.account, t, link.exchange, "buy" if pos < 1 else "sell",
                                                 "market", abs(1 - pos))
            await asyncio.sleep(0.5)
            os._exit(9)  # no stop, no save: what kill -9 leaves behind
        if args.get("flatten"):
            out["flatten"] = await app.on_control("flatten")
            await asyncio.sleep(args.get("settle", 2.0))
        await asyncio.sleep(0.5)
        link = app.live
        router = app.feed.router
        tickers = sorted(set(app.feed.tickers) | set(link.executors))
        out["broker"] = {t: (await router.position(link.account, t, link.exchange)).qty for t in tickers}
        out["ours"] = {t: (link.executors[t].qty if t in link.executors else 0) for t in tickers}
        snap = link.snapshot()
        out.update({k: snap[k] for k in ("sent", "refused", "reconciled", "reconciliations", "states", "ignored",
                                         "unknown_updates", "unknown", "last_reconciliation")})
        out["first_reconciliation"] = app.live.first_line
        if getattr(app.feed, "supervisor", None) is not None:
            out["children"] = app.feed.supervisor.incarnations
        at_broker = await router.orders(link.account)
        out["dup_orders"] = dup_orders(at_broker, link, over["run.data_dir"])
        status = {u.local_id: u.status_name for u in at_broker}
        out["working"] = [f"{o.client_id} local {o.local_id} {o.side} {o.qty} {o.ticker}: ours {o.state}, broker "
                          f"{status.get(o.local_id, 'absent')}" for o in link.book.by_client.values()
                          if o.state in ("working", "partial", "sending")]
        out["send_latency"] = snap["send_latency"]
        sim = app.feed.stats().get("simulator", {})
        out["injected"] = {k: sim.get(f"routing_{k}", 0) for k in ("dups", "reorders", "drops", "races")}
        out["fills"] = sum(ex.fills for ex in link.executors.values())
        out["orders_at_broker"] = len(await router.orders(link.account))
        out["digest"] = app.pipeline.digest.hexdigest()
        out["decisions"] = app.pipeline.decisions
        out["pnl"] = {t: round(ex.realized, 2) for t, ex in link.executors.items()}
        if app.pipeline.journal is not None:
            out["journal"] = str(app.pipeline.journal.path)
    finally:
        await app.stop(finalize=True)
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}")))))
