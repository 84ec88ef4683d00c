"""The loop's side of live routing: live executors' orders to the DLL's Router, reconciliation, flatten.

One task on the loop sends the orders the live executors hand over, in order, each through `Router.send_order`
(which runs on the DLL owner thread). Nothing is sent before reconciliation agreed with the broker: at start and
again whenever the routing connection comes back (state (1,5) after anything else). A disagreement turns the kill
switch on and says what differs in one line; a refused send marks the order `unsent` (never retried: the next
decision sends what is still needed, from the position the broker confirms).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Literal

from app.config import Config
from app.events import KillSwitch, Order, OrderSent, OrderUpdate
from app.execution.contracts import ContractSpec, spec_for
from app.execution.live import LiveExecutor
from app.execution.order_book import TAKEN_OVER, LiveOrder, OrderBook
from app.execution.reconcile import Reconciliation, compare_positions, reconcile
from app.execution.routing_journal import RoutingJournal
from app.feed.clock import now_ns
from app.feed.routing_types import Account, RoutingError, SendUnknown
from app.metrics import LatencyHistogram

log = logging.getLogger("app.execution.live")

POLL_S = 0.2


class LiveLink:
    def __init__(self, cfg: Config, run_id: str) -> None:
        self.cfg = cfg
        self.book = OrderBook(run_id)
        self.account = Account(cfg.execution.broker, cfg.execution.account)
        self.exchange = cfg.feed.exchange
        self.executors: dict[str, LiveExecutor] = {}
        self._queue: deque[tuple[LiveOrder, Order]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.feed: Any = None
        self.pipeline: Any = None
        self.reconciled = False
        self.journal: RoutingJournal | None = None
        self.last: Reconciliation | None = None
        self.reconciliations = 0
        self.first_line = ""  # the start's reconciliation, which says what a restart found
        self.sent = 0
        self.refused = 0
        self.unknown = 0  # sends whose answer was lost with the DLL's process (resolved by reconciliation)
        self.last_refusal = ""
        self.epoch = -1  # the router's epoch at the last reconciliation
        # the broker's position per ticker as last read (reconciliation, flatten, the monitor's refresh): what the
        # monitor and the summary set against ours
        self.broker_positions: dict[str, int] = {}
        self.send_latency = LatencyHistogram()  # decision (submit) -> SendOrder returned, on the owner thread

    # -- wiring ---------------------------------------------------------------------------------------------------
    def executor(self, ticker: str, spec: ContractSpec) -> LiveExecutor:
        """The hierarchy's LiveFactory: the coordinator's executor of `ticker`."""
        ex = self.executors[ticker] = LiveExecutor(ticker, spec, self.book, self.submit)
        return ex

    async def open(self, pipeline: Any) -> None:
        """Before the feed starts: the routing journal beside the run's input journal (when there is one)."""
        self.pipeline = pipeline
        if pipeline.journal is not None:
            self.journal = RoutingJournal(pipeline.journal, self.cfg.journal)
            await self.journal.open()

    async def close(self, timeout: float) -> None:
        if self.journal is not None:
            await self.journal.close(timeout)

    def on_routing(self, events: list[Any]) -> None:
        """The feed's routing sink: the broker's order updates are journaled, then booked."""
        if self.journal is not None:
            self.journal.record([e for e in events if type(e) is OrderUpdate])
        self.pipeline.on_routing(events)

    def _record(self, events: list[Any]) -> None:
        if self.journal is not None:
            self.journal.record(events)

    def _sent(self, o: LiveOrder, local_id: int, why: str = "") -> OrderSent:
        return OrderSent(o.n, o.client_id, o.ticker, o.side, o.qty, local_id, why, now_ns())

    def _kill(self, why: str) -> None:
        self.pipeline.hierarchy.kill_switch(True)
        self._record([KillSwitch(True, why, now_ns())])

    def submit(self, o: LiveOrder, order: Order) -> None:
        o.decided_ns = now_ns()
        self._queue.append((o, order))
        self._wake.set()

    async def start(self, feed: Any, pipeline: Any) -> None:
        """After the feed started (the Router exists once the market is connected)."""
        self.feed, self.pipeline = feed, pipeline
        if feed.router is None:
            raise RuntimeError("live routing: the feed has no router (feed.routing must be true)")
        router = feed.router
        router.on_sent = self.book.returned  # a RemoteRouter calls it with the child's owner-thread stamp
        deadline = time.monotonic() + self.cfg.feed.connect_timeout
        while not router.connected and time.monotonic() < deadline:  # routing may log in after the market
            await asyncio.sleep(0.05)
        await self.reconcile()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="live-orders")

    async def stop(self, grace: float = 3.0) -> None:
        """No new send starts; one already on the owner thread is let finish (bounded), so its local id and fills
        are booked as ours instead of being cut off mid-call. Orders still queued are refused."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                pass
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    # -- reconciliation -------------------------------------------------------------------------------------------
    async def reconcile(self) -> Reconciliation:
        router = self.feed.router
        self.epoch = router.epoch  # read first: a reconnect during what follows makes the next send reconcile again
        while self._queue:  # decided against a broker view not confirmed yet; what is left `sending` was dispatched
            self._refuse(self._queue.popleft()[0], "decided before this reconciliation: not sent")
        if not router.connected:
            rec = Reconciliation(["routing is not connected to the broker"])
            self._after(rec)
            return rec
        orders = await router.orders(self.account)
        fees = {t: ex.spec.fee for t, ex in self.executors.items()}
        fills = []
        answers = await router.lookup([o.client_id for o in self.book.sending()])
        earlier, unresolved = await router.earlier_sends()
        unresolved = [x for x in unresolved if x[0] not in self.book.by_client]  # this run's are step 2's
        rec = reconcile(self.book, orders, fees, lambda f: (self._book_fill(f), fills.append(f)), answers, earlier,
                        unresolved)
        for client_id, local_id in rec.settled:
            await router.settle(client_id, local_id)
        tickers = sorted(set(self.feed.tickers) | set(self.executors))
        positions = [await router.position(self.account, t, self.exchange) for t in tickers]
        self.broker_positions.update((p.ticker, p.qty) for p in positions)
        ours = {t: self._ours(t) for t in tickers}
        compare_positions(rec, ours, positions)
        for p in rec.positions_taken:
            ex = self._executor_for(p.ticker)
            if ex is not None:
                ex.adopt(p.qty, p.avg_price)
        by_client, by_local = self.book.by_client, self.book.by_local
        self._record([self._sent(by_client[c], by_client[c].local_id) for c in rec.adopted]
                     + [self._sent(by_client[c], 0, by_client[c].text) for c in rec.unsent]
                     + [self._sent(by_local[u.local_id], u.local_id, TAKEN_OVER) for u in rec.earlier]
                     + [u for lid, u in rec.latest.items() if lid in by_local]
                     + rec.positions_taken)
        self.pipeline.on_routing(list(positions) + fills)
        self._after(rec)
        return rec

    def _after(self, rec: Reconciliation) -> None:
        if not self.reconciliations:
            self.first_line = rec.line
        self.reconciliations += 1
        self.last = rec
        self.reconciled = rec.ok
        if rec.ok:
            log.info("live: %s", rec.line)
        else:
            self._kill(rec.line)
            log.error("live: %s", rec.line)

    def _ours(self, ticker: str) -> int:
        ex = self.executors.get(ticker)
        if ex is not None:
            return ex.qty
        d = self.pipeline.hierarchy.desks.get(ticker)  # restored from the learned state, no executor built yet
        return d.main.executor.qty if d is not None and d.main.executor is not None else 0

    def _executor_for(self, ticker: str) -> LiveExecutor | None:
        ex = self.executors.get(ticker)
        if ex is None and spec_for(ticker, self.cfg.execution) is not None:
            self.pipeline.hierarchy.desk(ticker)  # builds the desk and its live executor
            ex = self.executors.get(ticker)
        return ex

    def _book_fill(self, f: Any) -> None:
        ex = self._executor_for(f.ticker)
        if ex is not None:
            ex.book_fill(f)

    # -- sending --------------------------------------------------------------------------------------------------
    async def _run(self) -> None:
        router = self.feed.router
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if router.epoch != self.epoch and router.connected:
                log.warning("live: routing connection back; reconciling before any new order")
                await self.reconcile()
            while self._queue:
                if self._stopping:
                    self._refuse(self._queue.popleft()[0], "the app is stopping: not sent")
                    continue
                await self._send(self._queue.popleft()[0])
        while self._queue:
            self._refuse(self._queue.popleft()[0], "the app is stopping: not sent")

    async def _send(self, o: LiveOrder, order_type: str = "market", price: float = -1.0) -> None:
        """One order to SendOrder, unless reconciliation disagreed or routing reconnected since it ran."""
        router = self.feed.router
        if not self.reconciled:
            self._refuse(o, "reconciliation with the broker disagreed: trading stopped")
            return
        if router.epoch != self.epoch or not router.connected:
            self._refuse(o, "routing reconnecting: not reconciled yet")
            return
        o.dispatched = True
        try:
            local_id = await router.send_order(self.account, o.ticker, self.exchange, o.side, order_type, o.qty,
                                               price=price, client_id=o.client_id, epoch=self.epoch)
        except SendUnknown as exc:
            # the DLL's process died with the call in flight: the order may exist. It stays `sending` until
            # reconciliation (forced now) finds what SendOrder answered
            log.error("live: order %s: %s; reconciling before anything else is sent", o.client_id, exc)
            self.unknown += 1
            self.epoch = -1
            return
        except RoutingError as exc:  # refused by the DLL, or RoutingMoved: a reconnect raced this send
            self._refuse(o, str(exc))
            return
        early = self.book.sent(o, local_id)
        self._record([self._sent(o, local_id)])
        self.sent += 1
        if o.sent_ns:
            self.send_latency.record(o.sent_ns - o.decided_ns)
        if early:  # what the DLL reported before SendOrder returned, fills included
            self.pipeline.on_routing(early)

    async def place_limit(self, ticker: str, side: Literal["buy", "sell"], qty: int, price: float) -> LiveOrder:
        """A resting limit order of ours outside the hierarchy (tools, the live fault soak): booked, journaled,
        reconciled and counted in `committed` like the hierarchy's own."""
        o = self.book.new(ticker, side, qty, 0)
        o.decided_ns = now_ns()
        await self._send(o, "limit", price)
        return o

    def _refuse(self, o: LiveOrder, why: str) -> None:
        self.book.not_sent(o, why)
        self._record([self._sent(o, 0, why)])
        self.refused += 1
        self.last_refusal = why
        log.warning("live: order %s (%s %d %s) not sent: %s", o.client_id, o.side, o.qty, o.ticker, why)

    # -- kill switch ----------------------------------------------------------------------------------------------
    async def flatten(self) -> str:
        """Cancel every working order and flatten every position at the broker (the kill switch's live half)."""
        router = self.feed.router
        t0 = time.monotonic()
        self._record([KillSwitch(True, "flatten", now_ns())])
        while self._queue:  # decided before the kill switch, not sent yet: they never will be
            self._refuse(self._queue.popleft()[0], "kill switch: not sent")
        deadline = t0 + 2.0
        while self.book.in_flight and time.monotonic() < deadline:  # a send already on the owner thread
            await asyncio.sleep(0.01)
        await router.cancel_all(self.account)
        flattened = []
        for ticker in sorted(set(self.feed.tickers) | set(self.executors)):
            pos = await router.position(self.account, ticker, self.exchange)
            self.broker_positions[ticker] = pos.qty
            if pos.qty:
                # booked as one of ours, working: its fills then move our position, and the kill switch's own
                # flattening order (from the committed position, now zero) is not sent on top of it
                o = self.book.new(ticker, "sell" if pos.qty > 0 else "buy", abs(pos.qty), 0)
                o.dispatched = True
                try:
                    local_id = await router.zero_position(self.account, ticker, self.exchange,
                                                          client_id=o.client_id)
                except RoutingError as exc:  # e.g. a working order filled to flat after the position was read
                    self._refuse(o, str(exc))
                    flattened.append(f"{ticker} {pos.qty:+d} ({exc.name})")
                    continue
                early = self.book.sent(o, local_id)
                self._record([self._sent(o, local_id)])
                if early:
                    self.pipeline.on_routing(early)
                flattened.append(f"{ticker} {pos.qty:+d}")
        return (f"cancelled every working order; flattening at market: {', '.join(flattened) or 'no position'} "
                f"({(time.monotonic() - t0) * 1000:.0f} ms)")

    def snapshot(self) -> dict[str, Any]:
        return {"account": self.account.account, "broker": self.account.broker, "reconciled": self.reconciled,
                "reconciliations": self.reconciliations, "first_reconciliation": self.first_line,
                "last_reconciliation": self.last.line if self.last else "",
                "broker_positions": dict(self.broker_positions),
                "sent": self.sent, "refused": self.refused, "unknown": self.unknown, "last_refusal": self.last_refusal,
                "send_latency": self.send_latency.summary_us(),
                **self.book.snapshot()}
