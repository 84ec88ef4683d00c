"""What every specialist shares: the protocol, the per-ticker market state it reads, and an O(1) ring buffer.

A specialist sees every trade and book update of one ticker, keeps incremental state (ring buffers with running
sums, never a recomputation of a whole window), and on a trade either emits one `Signal` or abstains (returns None,
building nothing). Book updates only change state; decisions happen on trades.

Ring buffers are numpy arrays (the storage the issue asks for, and cheap bulk reads for snapshots and tests), but
per-event reads and writes go through a `memoryview` of the array: indexing a memoryview returns a plain Python
float, which is several times faster than numpy scalar access on the hot path.
"""
from __future__ import annotations

from datetime import date
from typing import Protocol

import numpy as np

from app.events import Book, Signal, Trade
from app.feed.b3time import DAY_NS, NS, SESSION_OPEN_NS, local_minute, session_day  # noqa: F401  (re-exported)
from app.feed.b3time import local_to_ns


def root_of(ticker: str) -> str:
    """WDOZ26, WDOFUT, WDO -> WDO."""
    return ticker[:3]


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _open_ns(day: int) -> int:
    d = date.fromordinal(_EPOCH_ORDINAL + day)
    return local_to_ns(d.year, d.month, d.day, 9, 0, 0)


def session_span(day: int) -> tuple[int, int]:
    """[first, last + 1) ns of session day `day`, so a trade needs one range check instead of `session_day`.

    Each bound is checked against `session_day` itself: (0, 0), which matches nothing and so falls back to
    `session_day` on every trade, if either disagrees. Inside the bounds `session_day` is `day` because it never
    decreases (B3's clocks change at local midnight, hours away from the 09:00 open)."""
    try:
        lo, hi = _open_ns(day), _open_ns(day + 1)
    except (ValueError, OverflowError, OSError):
        return 0, 0
    if session_day(lo - 1) == day - 1 and session_day(lo) == day and session_day(hi - 1) == day \
            and session_day(hi) == day + 1:
        return lo, hi
    return 0, 0


class Ring:
    """Fixed-size numpy ring buffer with a running sum; push is O(1).

    The running sum is recomputed exactly from the array each time the write position wraps (O(size) once every
    size pushes, so still O(1) amortized) so float error cannot accumulate over a long session.
    """

    __slots__ = ("data", "_mv", "size", "pos", "count", "total")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("ring size must be >= 1")
        self.data = np.zeros(size, dtype=np.float64)
        self._mv = memoryview(self.data)
        self.size = size
        self.pos = 0
        self.count = 0
        self.total = 0.0

    def push(self, x: float) -> float:
        """Append x; return the value that fell out of the window (0.0 while not yet full)."""
        mv = self._mv
        pos = self.pos
        old = mv[pos]
        mv[pos] = x
        pos += 1
        if pos == self.size:
            self.pos = 0
            self.count = pos
            self.total = float(self.data.sum())
            return old
        self.pos = pos
        if self.count < pos:  # the first lap: count is the write position
            self.count = pos
        self.total += x - old
        return old

    def ago(self, k: int) -> float:
        """The value pushed k pushes ago (0 = the last one); 0.0 before anything was pushed there."""
        try:  # a negative index in [-size, -1] is the modulo's slot: no modulo for any k in the window
            return self._mv[self.pos - 1 - k]
        except IndexError:
            return self._mv[(self.pos - 1 - k) % self.size]

    @property
    def full(self) -> bool:
        return self.count == self.size

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def values(self) -> np.ndarray:
        """Contents oldest first (a copy)."""
        if self.count < self.size:
            return self.data[: self.count].copy()
        return np.concatenate((self.data[self.pos:], self.data[: self.pos]))

    def clear(self) -> None:
        self.data[:] = 0.0
        self.pos = 0
        self.count = 0
        self.total = 0.0


_SPREAD_ALPHA = 0.05  # tape spread EWMA weight per flip: about the last 20 bounces, seconds of a liquid B3 future


class MarketState:
    """The book and trade facts of one ticker that every specialist reads; the desk updates it before they run.

    `mid` and `spread` are from the book when there is one. Without a book `mid` is the last trade price and
    `spread` is `tape_spread`: the bid-ask bounce read from the tape, an EWMA of |price change| between consecutive
    trades whose aggressor flipped (a buy lifts the ask, the next sell hits the bid: the gap is the spread when the
    quotes stood still; quote moves in between add noise of either sign that averages out), floored at
    `min_spread_ticks` ticks because a market on a tick grid cannot quote tighter. The learner's cost model and the
    paper executor's no-book fills read it. O(1) per trade: a few float operations.
    """

    __slots__ = ("ticker", "tick", "bid", "ask", "bid_qty", "ask_qty", "bids", "asks", "has_book", "last_price",
                 "last_sign", "mid", "spread", "tape_spread", "bounce", "flips", "min_spread", "n_trades", "day",
                 "mean_qty", "_qty_alpha")

    def __init__(self, ticker: str, tick: float, min_spread_ticks: float = 1.0) -> None:
        self.ticker = ticker
        self.tick = tick
        self.bid = 0.0
        self.ask = 0.0
        self.bid_qty = 0
        self.ask_qty = 0
        self.bids: tuple[tuple[float, int, int], ...] = ()
        self.asks: tuple[tuple[float, int, int], ...] = ()
        self.has_book = False
        self.last_price = 0.0
        self.last_sign = 0  # aggressor of the last trade: +1 buy (printed at the ask), -1 sell (at the bid), 0 other
        self.mid = 0.0
        self.min_spread = min_spread_ticks * tick
        self.bounce = 0.0  # raw EWMA of the bid-ask bounce, points
        self.flips = 0  # aggressor flips seen: the first one seeds the EWMA
        self.tape_spread = self.min_spread  # max(bounce, min_spread)
        self.spread = self.tape_spread
        self.n_trades = 0
        self.day = -1
        self.mean_qty = 0.0  # EWMA of trade size, the unit of "thick" and "thin" in contracts
        self._qty_alpha = 0.01

    def on_book(self, b: Book) -> None:
        levels = b.levels
        if b.side == "bid":
            self.bids = levels
            if levels:
                self.bid, self.bid_qty = levels[0][0], levels[0][1]
            else:
                self.bid_qty = 0
        else:
            self.asks = levels
            if levels:
                self.ask, self.ask_qty = levels[0][0], levels[0][1]
            else:
                self.ask_qty = 0
        if self.bid_qty > 0 and self.ask_qty > 0 and self.ask > self.bid:
            self.has_book = True
            self.mid = 0.5 * (self.bid + self.ask)
            self.spread = self.ask - self.bid
        else:
            self.has_book = False
            self.spread = self.tape_spread  # a book side emptied: back to what the tape says

    def on_trade(self, t: Trade) -> None:
        price = t.price
        a = t.aggressor
        sign = 1 if a == "buy" else -1 if a == "sell" else 0
        if sign and sign + self.last_sign == 0:  # a flip: buy then sell or sell then buy
            d = price - self.last_price
            if d < 0.0:
                d = -d
            if self.flips:
                b = self.bounce
                d = b + _SPREAD_ALPHA * (d - b)
            self.bounce = d
            self.flips += 1
            m = self.min_spread
            self.tape_spread = d if d > m else m
        self.last_price = price
        self.last_sign = sign
        self.n_trades += 1
        q = float(t.qty)
        mq = self.mean_qty
        self.mean_qty = q if mq == 0.0 else mq + self._qty_alpha * (q - mq)
        if not self.has_book:
            self.mid = price
            self.spread = self.tape_spread


def sign_of(aggressor: str) -> int:
    """+1 aggressive buy, -1 aggressive sell, 0 anything else (cross, auction, unknown)."""
    if aggressor == "buy":
        return 1
    if aggressor == "sell":
        return -1
    return 0


class Specialist(Protocol):
    """One source of trading signals for one ticker."""

    name: str
    horizon: int  # trades the signal is meant for; the learner scores it at this horizon

    def on_trade(self, t: Trade) -> Signal | None:
        """Update state with t (the MarketState is already updated); return a Signal or None (abstain)."""

    def on_book(self, b: Book) -> None:
        """Update state with a book side (the MarketState is already updated)."""

    def features(self) -> dict[str, float]:
        """Current feature values, for snapshots."""

    def reset_day(self) -> None:
        """Called at the first event of a new trading day (09:00 B3 local)."""


class BaseSpecialist:
    """The base of every specialist, built-in or your own: the market state, the horizon, Signal construction.

    To write your own (see examples/my_specialist.py) subclass it and enable it in config.toml as
    `agents.enabled = [..., "mypkg.signals:MySpecialist"]`:
    - class attributes `name` (short, lower case: it becomes expert names such as "momentum@20:fade", ZMQ topics
      and Valkey keys) and `default_horizon` (trades its signal is meant for, when config gives none);
    - `__init__(self, market, params)`: call `super().__init__(market, params.horizon)`; `params` is a
      SimpleNamespace of the `[agents.params.<name>]` table, `horizon` always set;
    - `on_trade(t)`: the MarketState (`self.market`: book, mid, spread, last price, trade count) is already updated
      with t; update your state in O(1) (see `Ring`) and return `self.signal(t, direction, confidence, features)`
      (direction in [-1, 1], confidence in [0, 1]) or None to abstain. Never look at anything after t;
    - optional: `on_book(b)`, `reset_day()` (09:00 B3 local), `features()` (current values, for snapshots).
    The coordinator then treats it like the built-in ones: it is scored at every configured horizon, with a
    contrarian twin, on its counterfactual P&L net of costs, and earns or loses weight accordingly.
    """

    name = "base"
    default_horizon = 15

    def __init__(self, market: MarketState, horizon: int) -> None:
        self.market = market
        self.horizon = horizon
        self.fired = 0
        self.last: Signal | None = None

    def signal(self, t: Trade, direction: float, confidence: float, features: dict[str, float]) -> Signal:
        if confidence > 1.0:
            confidence = 1.0
        elif confidence < 0.0:
            confidence = 0.0
        s = Signal(agent=self.name, ticker=t.ticker, ts=t.ts, direction=direction, confidence=confidence,
                   horizon=self.horizon, features=features, trade_id=t.trade_id, received_ns=t.received_ns)
        self.fired += 1
        self.last = s
        return s

    def on_book(self, b: Book) -> None:
        pass

    def reset_day(self) -> None:
        pass

    def features(self) -> dict[str, float]:
        return {}
