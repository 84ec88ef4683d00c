"""Live executor: the same interface and accounting as the paper one, with orders sent through the DLL's routing.

`execute` does not fill: it registers the order in the OrderBook (a client id before anything is sent) and hands it
to `submit`, which the app wires to the owner thread (the only caller of SendOrder). Fills arrive later as the
DLL's order updates (`on_update`) and become the same Fill events paper fills are, booked by the same
`PaperExecutor._apply`, so P&L, rewards, the learner, the journal, Valkey and ZMQ see no difference.

The position the hierarchy decides from is `committed`: what is filled plus what our working orders will add if
they fill. Deciding from the filled position alone would send the same step again while the first order works.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.agents.base import MarketState
from app.events import Fill, Order, OrderUpdate, Trade
from app.execution.contracts import ContractSpec
from app.execution.order_book import LiveOrder, OrderBook
from app.execution.paper import PaperExecutor

Submit = Callable[[LiveOrder, Order], None]


class LiveExecutor(PaperExecutor):
    live = True

    def __init__(self, ticker: str, spec: ContractSpec, book: OrderBook, submit: Submit) -> None:
        super().__init__(ticker, spec, 0.0)
        self.book = book
        self.submit = submit

    @property
    def committed(self) -> int:
        working = 0
        for o in self.book.working():
            if o.ticker == self.ticker:
                working += o.leaves if o.side == "buy" else -o.leaves
        return self.qty + working

    def execute(self, order: Order, market: MarketState) -> Fill | None:
        o = self.book.new(self.ticker, order.side, order.qty, order.trade_id)
        self.submit(o, order)
        return None

    def on_trade(self, t: Trade) -> list[Fill]:
        return []  # fills come from the broker, never from the tape

    def on_update(self, u: OrderUpdate) -> Fill | None:
        f = self.book.apply(u, self.spec.fee)
        if f is not None:
            self.book_fill(f)
        return f

    def book_fill(self, f: Fill) -> None:
        """Book a fill into the position (live updates, and fills caught up by reconciliation)."""
        self._apply(f.qty if f.side == "buy" else -f.qty, f.price, f.fee)

    def adopt(self, qty: int, avg_price: float) -> None:
        """Reconciliation took the broker's position as ours (fills of an earlier run of ours we did not see)."""
        self.qty, self.avg_price = qty, avg_price

    def snapshot(self, mark: float) -> dict[str, Any]:
        out = super().snapshot(mark)
        out["committed"] = self.committed
        out["working"] = [w for w in self.book.snapshot()["working"] if w["ticker"] == self.ticker]  # type: ignore
        return out
