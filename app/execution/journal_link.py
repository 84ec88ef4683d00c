"""Replay of a live run: LiveLink's stand-in that sends nothing and takes what happened from the routing journal.

The replayed hierarchy decides with the same live executors (same `committed` position, same order numbers), but
their orders go nowhere: each one's fate (a local id, or "not sent" and why), the broker's updates with their fills,
and the kill switch come from the run's routing journal, delivered by the replay feed right after the input frame
they followed live. A replayed order whose number, ticker, side or quantity differs from the journaled one means the
replay decided differently: it is counted in `mismatches`, never papered over.
"""
from __future__ import annotations

import logging
from typing import Any

from app.config import Config
from app.events import BrokerPosition, KillSwitch, Order, OrderSent, OrderUpdate
from app.execution.contracts import ContractSpec
from app.execution.live import LiveExecutor
from app.execution.order_book import TAKEN_OVER, LiveOrder, OrderBook

log = logging.getLogger("app.execution.live")


class JournalLink:
    def __init__(self, cfg: Config, run_id: str) -> None:
        self.cfg = cfg
        self.book = OrderBook(run_id)
        self.book.hold_unknown = True
        self.executors: dict[str, LiveExecutor] = {}
        self.pipeline: Any = None
        self.records = 0
        self.taking_over: set[int] = set()  # local ids reconciliation took over; their next update does it here
        self.mismatches = 0
        self.first_mismatch = ""

    def executor(self, ticker: str, spec: ContractSpec) -> LiveExecutor:
        ex = self.executors[ticker] = LiveExecutor(ticker, spec, self.book, self.submit)
        return ex

    def submit(self, o: LiveOrder, order: Order) -> None:
        o.dispatched = True  # as far as this replay knows, it went out; the journal says what came of it

    async def open(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    async def start(self, feed: Any, pipeline: Any) -> None:
        self.pipeline = pipeline

    async def stop(self) -> None:
        pass

    async def close(self, timeout: float) -> None:
        pass

    async def flatten(self) -> str:
        return "replay: nothing to flatten"

    def on_routing(self, events: list[Any]) -> None:
        for ev in events:
            self.records += 1
            t = type(ev)
            if t is OrderUpdate:
                if ev.local_id in self.taking_over:
                    self.taking_over.discard(ev.local_id)
                    self.book.take_over(ev)
                else:
                    self.pipeline.on_routing([ev])
            elif t is BrokerPosition:  # reconciliation took the broker's position as ours
                ex = self.executors.get(ev.ticker)
                if ex is None:
                    self.pipeline.hierarchy.desk(ev.ticker)
                    ex = self.executors.get(ev.ticker)
                if ex is not None:
                    ex.adopt(ev.qty, ev.avg_price)
            elif t is OrderSent:
                self._sent(ev)
            elif t is KillSwitch:
                self.pipeline.hierarchy.kill_switch(ev.on)

    def _sent(self, ev: OrderSent) -> None:
        book = self.book
        if ev.why == TAKEN_OVER:
            self.taking_over.add(ev.local_id)
            return
        o = book.by_client.get(f"{book.run_id}-{ev.n}")
        if o is None and ev.n == book.next_n:  # flatten's own order: made by LiveLink, not by a decision
            o = book.new(ev.ticker, ev.side, ev.qty, 0)
            o.dispatched = True
        if o is None or (o.ticker, o.side, o.qty) != (ev.ticker, ev.side, ev.qty):
            self._mismatch(f"order {ev.n}: live {ev.side} {ev.qty} {ev.ticker}, replay "
                           + (f"{o.side} {o.qty} {o.ticker}" if o else "none"))
            return
        if ev.local_id > 0:
            early = book.sent(o, ev.local_id)
            if early:
                self.pipeline.on_routing(early)
        else:
            book.not_sent(o, ev.why)

    def _mismatch(self, what: str) -> None:
        self.mismatches += 1
        if not self.first_mismatch:
            self.first_mismatch = what
            log.error("replay of a live run: %s (the replay decided differently from here on)", what)

    def snapshot(self) -> dict[str, Any]:
        return {"replayed_from_journal": True, "records": self.records, "mismatches": self.mismatches,
                "first_mismatch": self.first_mismatch, **self.book.snapshot()}
