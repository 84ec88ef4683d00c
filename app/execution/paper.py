"""Paper executor: market orders filled at the touch (or the next trade when there is no book) plus slippage.

Position accounting per ticker in contracts, average price in points, P&L in R$ (net of fees) and in ticks (gross).
A round trip is counted when the position returns to zero or flips; its net P&L feeds the hit rate.
"""
from __future__ import annotations

from typing import Any

from app.agents.base import MarketState
from app.events import Fill, Order, Position, Trade
from app.execution.contracts import ContractSpec


class PaperExecutor:
    def __init__(self, ticker: str, spec: ContractSpec, slippage_ticks: float = 0.0) -> None:
        self.ticker = ticker
        self.spec = spec
        self.slip = slippage_ticks * spec.tick
        self.qty = 0
        self.avg_price = 0.0
        self.realized = 0.0  # R$, net of fees
        self.realized_points = 0.0  # gross, points x contracts
        self.fees = 0.0
        self.fills = 0
        self.turnover = 0  # contracts traded
        self.round_trips = 0
        self.wins = 0
        self._rt_start = 0.0
        self._pending: list[Order] = []

    def execute(self, order: Order, market: MarketState) -> Fill | None:
        """Fill now at the touch; without a book the order waits for the next trade (None)."""
        if not market.has_book:
            self._pending.append(order)
            return None
        ref = market.ask if order.side == "buy" else market.bid
        return self._fill(order, ref, order.ts)

    def on_trade(self, t: Trade) -> list[Fill]:
        """Fill orders that waited for a trade (no book) at that trade's price."""
        if not self._pending:
            return []
        orders, self._pending = self._pending, []
        return [self._fill(o, t.price, t.ts, t.trade_id) for o in orders]

    def _fill(self, o: Order, ref: float, ts: int, trade_id: int | None = None) -> Fill:
        buy = o.side == "buy"
        price = ref + self.slip if buy else ref - self.slip
        fee = self.spec.fee * o.qty
        self._apply(o.qty if buy else -o.qty, price, fee)
        return Fill(order_id=o.order_id, ticker=o.ticker, ts=ts, side=o.side, qty=o.qty, price=price, fee=fee,
                    slippage_ticks=self.slip / self.spec.tick, trade_id=o.trade_id if trade_id is None else trade_id)

    def _apply(self, dq: int, price: float, fee: float) -> None:
        pv = self.spec.point_value
        q = self.qty
        if q == 0:
            self._rt_start = self.realized
        self.fees += fee
        self.realized -= fee
        self.fills += 1
        self.turnover += abs(dq)
        new = q + dq
        if q == 0 or (q > 0) == (dq > 0):  # opening or adding
            self.avg_price = (self.avg_price * abs(q) + price * abs(dq)) / abs(new)
        else:  # reducing, closing or flipping
            closed = min(abs(dq), abs(q))
            pts = (price - self.avg_price) * closed * (1 if q > 0 else -1)
            self.realized_points += pts
            self.realized += pts * pv
            if new == 0 or (new > 0) != (q > 0):
                self.round_trips += 1
                if self.realized - self._rt_start > 0:
                    self.wins += 1
                self._rt_start = self.realized
                self.avg_price = price if new != 0 else 0.0
        self.qty = new

    def unrealized_points(self, mark: float) -> float:
        return (mark - self.avg_price) * self.qty if self.qty else 0.0

    def unrealized(self, mark: float) -> float:
        return self.unrealized_points(mark) * self.spec.point_value

    def equity(self, mark: float) -> float:
        """Realized (net of fees) plus unrealized at the mark, R$."""
        return self.realized + self.unrealized(mark)

    def position_event(self, ts: int, mark: float, trade_id: int = 0) -> Position:
        return Position(ticker=self.ticker, ts=ts, qty=self.qty, avg_price=self.avg_price, realized=self.realized,
                        unrealized=self.unrealized(mark), fees=self.fees, trade_id=trade_id)

    def snapshot(self, mark: float) -> dict[str, Any]:
        tick = self.spec.tick
        return {
            "qty": self.qty,
            "avg_price": self.avg_price,
            "realized": self.realized,
            "unrealized": self.unrealized(mark),
            "realized_ticks": self.realized_points / tick,
            "unrealized_ticks": self.unrealized_points(mark) / tick,
            "fees": self.fees,
            "fills": self.fills,
            "turnover": self.turnover,
            "round_trips": self.round_trips,
            "hit_rate": self.wins / self.round_trips if self.round_trips else 0.0,
        }

    def state(self) -> dict[str, Any]:
        return {"qty": self.qty, "avg_price": self.avg_price, "realized": self.realized,
                "realized_points": self.realized_points, "fees": self.fees, "fills": self.fills,
                "turnover": self.turnover, "round_trips": self.round_trips, "wins": self.wins}

    def restore(self, s: dict[str, Any]) -> None:
        self.qty = int(s.get("qty", 0))
        self.avg_price = float(s.get("avg_price", 0.0))
        self.realized = float(s.get("realized", 0.0))
        self.realized_points = float(s.get("realized_points", 0.0))
        self.fees = float(s.get("fees", 0.0))
        self.fills = int(s.get("fills", 0))
        self.turnover = int(s.get("turnover", 0))
        self.round_trips = int(s.get("round_trips", 0))
        self.wins = int(s.get("wins", 0))
        self._rt_start = self.realized
