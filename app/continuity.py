"""Trade-number continuity per ticker: the check that nothing was lost, repeated or reordered on the way in.

The DLL numbers trades per ticker and session; the stand-in numbers them consecutively, so any jump is a trade
that did not reach the loop and any number not above the last one is a duplicate or a reorder.
"""
from __future__ import annotations

from typing import Any

from app.events import Book, InvalidTicker, State, Trade


class Continuity:
    def __init__(self) -> None:
        self.last_id: dict[str, int] = {}
        self.trades: dict[str, int] = {}
        self.last_price: dict[str, float] = {}
        self.missing = 0
        self.repeated = 0
        self.edits = 0
        self.counts = {"trade": 0, "book": 0, "state": 0, "invalid_ticker": 0}
        self.invalid_tickers: list[InvalidTicker] = []

    def observe(self, batch: list[Any]) -> None:
        last_id, trades, last_price = self.last_id, self.trades, self.last_price
        n_trades = 0
        for ev in batch:
            if type(ev) is Trade:
                n_trades += 1
                t = ev.ticker
                trades[t] = trades.get(t, 0) + 1
                last_price[t] = ev.price
                if ev.edit:
                    self.edits += 1
                    continue
                prev = last_id.get(t)
                tid = ev.trade_id
                if prev is not None:
                    if tid > prev + 1:
                        self.missing += tid - prev - 1
                    elif tid <= prev:
                        self.repeated += 1
                        continue
                last_id[t] = tid
            elif type(ev) is Book:
                self.counts["book"] += 1
            elif type(ev) is State:
                self.counts["state"] += 1
            elif type(ev) is InvalidTicker:
                self.counts["invalid_ticker"] += 1
                self.invalid_tickers.append(ev)
        self.counts["trade"] += n_trades

    @property
    def gaps(self) -> int:
        return self.missing + self.repeated

    def stats(self) -> dict[str, Any]:
        return {"events": dict(self.counts), "trades": dict(self.trades), "gaps": self.gaps,
                "missing": self.missing, "repeated": self.repeated, "edits": self.edits}
