"""Paper executor: market orders filled at the touch, or at a touch estimated from the tape when there is no book.

With a book: a buy fills at the best ask, a sell at the best bid, now.

Without a book (most Times & Trades exports) the order waits for the next trade, because the tape alone does not
show the quote the order would have met. Filling at that trade's price would be optimistic exactly there: when the
next print is a sell at the bid, a buy "fills" at the bid (seen on 45 % of such fills on a real tape). So a no-book
order never fills on the favourable side; it pays the touch implied by the tape:
- A trade's implied ask is its price when its aggressor bought (it printed at the ask), its price plus the spread
  estimate when the aggressor sold (printed at the bid), its price plus half the estimate otherwise (cross,
  auction, unknown: taken as the mid). The implied bid mirrors it. The spread estimate is `MarketState.spread`
  (the tape's bid-ask bounce, floored at `execution.min_spread_ticks` ticks; see MarketState).
- A buy fills at max(ask implied by the last trade before the decision, ask implied by the next trade) + slippage;
  a sell at min(the two implied bids) - slippage. Both sides of the wait are plausible quotes for an order sent in
  between; without a book we cannot tell which it met, so it gets the worse one. Every no-book fill therefore pays
  at least half the estimated spread from the mid, and exactly the ask (bid) on a tape whose quotes stand still.
- If a book appeared while the order waited, the book's touch replaces the next trade's implied one.

Position accounting per ticker in contracts, average price in points, P&L in R$ (net of fees) and in ticks (gross).
A round trip is counted when the position returns to zero or flips; its net P&L feeds the hit rate.
"""
from __future__ import annotations

from typing import Any

from app.agents.base import MarketState
from app.events import Fill, Order, Position, Trade
from app.execution.contracts import ContractSpec

_INF = float("inf")


def implied_touch(side: str, price: float, sign: int, spread: float) -> float:
    """The quote a market order of `side` would pay, inferred from a trade at `price` whose aggressor sign is
    `sign` (+1 buy, -1 sell, 0 other): the ask for a buy, the bid for a sell."""
    if side == "buy":
        return price + spread * 0.5 * (1 - sign)
    return price - spread * 0.5 * (1 + sign)


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
        self._pending: list[tuple[Order, float]] = []  # (order, touch implied by the last trade at decision time)
        self._market: MarketState | None = None  # the ticker's state, read again when the next trade fills

    live = False

    @property
    def committed(self) -> int:
        """The position decisions start from: paper fills are immediate or on the next trade, so it is the position."""
        return self.qty

    def execute(self, order: Order, market: MarketState) -> Fill | None:
        """Fill now at the touch; without a book the order waits for the next trade (None), see the module doc."""
        if not market.has_book:
            if market.n_trades:
                before = implied_touch(order.side, market.last_price, market.last_sign, market.spread)
            else:  # nothing traded yet: only the next trade can say
                before = -_INF if order.side == "buy" else _INF
            self._pending.append((order, before))
            self._market = market
            return None
        ref = market.ask if order.side == "buy" else market.bid
        return self._fill(order, ref, order.ts)

    def on_trade(self, t: Trade) -> list[Fill]:
        """Fill the orders that waited for a trade (no book) at the worse of the touches implied before and by `t`.

        Call it after the ticker's MarketState has taken `t` (the hierarchy does), so the spread estimate counts it.
        """
        if not self._pending:
            return []
        orders, self._pending = self._pending, []
        m = self._market
        assert m is not None  # execute() sets it with every order it leaves pending
        a = t.aggressor
        sign = 1 if a == "buy" else -1 if a == "sell" else 0
        book = m.has_book
        out = []
        for o, before in orders:
            if o.side == "buy":
                after = m.ask if book else implied_touch("buy", t.price, sign, m.spread)
                ref = after if after > before else before
            else:
                after = m.bid if book else implied_touch("sell", t.price, sign, m.spread)
                ref = after if after < before else before
            out.append(self._fill(o, ref, t.ts, t.trade_id))
        return out

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
