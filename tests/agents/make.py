"""Hand-made trades and book updates for specialist tests (B3 local 10:00 on 2024-03-04 unless told)."""
from __future__ import annotations

from datetime import datetime, timezone

from app.agents.base import MarketState
from app.events import Book, Trade

NS = 1_000_000_000
T0 = int(datetime(2024, 3, 4, 13, 0, tzinfo=timezone.utc).timestamp()) * NS  # 10:00 B3 local (UTC-3)


class Feed:
    """Feeds a MarketState and specialists the way the hierarchy does: state first, then the specialists."""

    def __init__(self, *specialists, market: MarketState) -> None:
        self.market = market
        self.specialists = specialists
        self.n = 0
        self.ts = T0
        self.signals = []

    def trade(self, side: str, price: float, qty: int = 1, dt: float = 1.0, ts: int | None = None):
        self.n += 1
        self.ts = ts if ts is not None else self.ts + int(dt * NS)
        t = Trade(ticker=self.market.ticker, exchange="F", ts=self.ts, trade_id=self.n, price=price, qty=qty,
                  volume=price * qty, buyer=1, seller=2, aggressor=side, received_ns=0)
        self.market.on_trade(t)
        out = []
        for s in self.specialists:
            sig = s.on_trade(t)
            if sig is not None:
                out.append(sig)
        self.signals.extend(out)
        return out

    def book(self, side: str, levels: list[tuple[float, int]]):
        b = Book(ticker=self.market.ticker, ts=self.ts, side=side,
                 levels=tuple((p, q, 1) for p, q in levels), received_ns=0)
        self.market.on_book(b)
        for s in self.specialists:
            s.on_book(b)

    def quote(self, bid: float, bid_qty: int, ask: float, ask_qty: int):
        self.book("bid", [(bid, bid_qty)])
        self.book("ask", [(ask, ask_qty)])
