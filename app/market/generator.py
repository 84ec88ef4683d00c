"""Pure-Python planted-signal market: Trade and Book events for one or more tickers, deterministic per seed.

The background is a martingale: trades hit the bid or lift the ask with equal probability and lognormal sizes, and
the quotes move one tick up or down at random times (probability `vol` per trade, independent of the trades), so
nothing observable predicts the next mid move. On top of it the generator paints four patterns, one per
specialist, each built to trigger its own specialist and to stay neutral for the others' triggers:

- orderflow sweep (direction d): 5 aggressions on side d through 3 price levels (quote move d after trades 1
  and 3), quick.
- liquidity imbalance (d): the d-side top level shows 4x its usual size, the other side 0.4x, for 6 trades
  alternating sides (starting on the -d side); the big level is refilled after every hit. No price move.
- tape cluster (d): 3 ordinary trades, then a large print on side d that moves the quotes one tick d, an ordinary
  trade, another large print on side d (large = median x exp(sigma x U(3.3, 4.0))), quick.
- footprint stacked imbalance (d): a quote move d, then three stages at three fresh levels; each stage is
  d, d, -d, d, d, -d, d (the d trades 2x the median size, the -d trades 0.6x) with a quote move d between stages.
  Aggression on d dominates at three consecutive levels, without the long same-side runs of a sweep.
Every mechanical quote move of a pattern happens before the earliest trade at which its specialist can detect it,
so nothing about the pattern itself is predictable from the detection point on. After the pattern's last trade, the
quotes jump by round(edge x round-trip cost in ticks) ticks (randomised rounding) at once, after a trade drawn
uniformly among the next drift_trades trades: in the pattern's direction when the regime's informative specialist is
the pattern's, otherwise in a random direction (so every pattern is followed by the same volatility). A single jump
rather than a drift: a move spread over several trades would be momentum that any specialist could ride, which would
plant a signal in the null scenario.
"""
from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from datetime import datetime, timezone
from typing import Iterator

import numpy as np

from app.agents.base import B3_UTC_OFFSET_NS, NS, root_of
from app.events import Book, InputEvent, Trade
from app.market.scenarios import PATTERNS, Regime, ScenarioParams, TickerModel, schedule

_BLOCK = 4096


class _Draws:
    """Random numbers drawn from numpy in blocks and handed out one by one as Python floats (fast, deterministic)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._u: list[float] = []
        self._n: list[float] = []
        self._e: list[float] = []
        self._iu = self._in = self._ie = 0

    def u(self) -> float:
        if self._iu >= len(self._u):
            self._u = self.rng.random(_BLOCK).tolist()
            self._iu = 0
        self._iu += 1
        return self._u[self._iu - 1]

    def normal(self) -> float:
        if self._in >= len(self._n):
            self._n = self.rng.standard_normal(_BLOCK).tolist()
            self._in = 0
        self._in += 1
        return self._n[self._in - 1]

    def exp(self) -> float:
        if self._ie >= len(self._e):
            self._e = self.rng.standard_exponential(_BLOCK).tolist()
            self._ie = 0
        self._ie += 1
        return self._e[self._ie - 1]

    def sign(self) -> int:
        return 1 if self.u() < 0.5 else -1


# a pattern step: (side, qty, quote move after it, dt multiplier)
Step = tuple[int, int, int, float]


class TickerStream:
    """The event stream of one ticker."""

    def __init__(self, model: TickerModel, regimes: list[Regime], params: ScenarioParams, cost_ticks: float,
                 point_value: float, rng: np.random.Generator) -> None:
        self.m = model
        self.regimes = regimes
        self.params = params
        self.cost_ticks = cost_ticks
        self.pv = point_value
        self.r = _Draws(rng)
        local = datetime.strptime(params.start_local, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
        self.ts = int(local.timestamp()) * NS - B3_UTC_OFFSET_NS
        self.bid = int(round(model.start_price / model.tick))
        self.qb = model.book_mean
        self.qa = model.book_mean
        self.deep_b: tuple = ()
        self.deep_a: tuple = ()
        self.n = 0
        self.events: list[InputEvent] = []
        self.drift: dict[int, int] = {}  # trade number -> net quote moves to apply after it
        self.patterns = {p: 0 for p in PATTERNS}  # how many of each were painted
        self.planted = 0  # how many patterns were followed by moves in their direction on purpose
        self.painted: list[tuple[int, int, str, int]] = []  # (first trade, last trade, kind, direction)
        self._deep()

    # ----------------------------------------------------------------------------------------------- the book
    def _size(self, scale: float = 1.0) -> float:
        return max(1.0, self.m.book_mean * scale * math.exp(0.15 * self.r.normal()))

    def _deep(self) -> None:
        mean = self.m.book_mean
        tick = self.m.tick
        self.deep_b = tuple(((self.bid - j) * tick, int(mean * (1 + 0.3 * j)), 1 + j) for j in range(1, 5))
        self.deep_a = tuple(((self.bid + 1 + j) * tick, int(mean * (1 + 0.3 * j)), 1 + j) for j in range(1, 5))

    def _book(self, side: str) -> None:
        tick = self.m.tick
        if side == "bid":
            q = int(self.qb)
            lv = ((self.bid * tick, q, 1 + q // 5),) + self.deep_b
        else:
            q = int(self.qa)
            lv = (((self.bid + 1) * tick, q, 1 + q // 5),) + self.deep_a
        self.events.append(Book(ticker=self.m.ticker, ts=self.ts, side=side, levels=lv, received_ns=0))

    def _shift(self, d: int) -> None:
        self.bid += d
        self.qb = self._size()
        self.qa = self._size()
        self._deep()
        self._book("bid")
        self._book("ask")

    def _after_hit(self, side: int, qty: int) -> None:
        """The hit level loses the traded size and drifts back toward its usual size."""
        mean = self.m.book_mean
        if side > 0:
            q = self.qa - qty + 0.2 * (mean - self.qa) + 0.05 * mean * self.r.normal()
            self.qa = q if q >= 1.0 else self._size()
            self._book("ask")
        else:
            q = self.qb - qty + 0.2 * (mean - self.qb) + 0.05 * mean * self.r.normal()
            self.qb = q if q >= 1.0 else self._size()
            self._book("bid")

    # ------------------------------------------------------------------------------------------------ trading
    def _qty(self, mult: float = 1.0, sigma: float | None = None) -> int:
        s = self.m.qty_sigma if sigma is None else sigma
        return max(1, int(round(self.m.median_qty * mult * math.exp(s * self.r.normal()))))

    def _trade(self, side: int, qty: int, dt_mult: float = 1.0) -> None:
        self.n += 1
        self.ts += 1 + int(self.r.exp() / self.m.rate * dt_mult * NS)
        tick = self.m.tick
        price = (self.bid + 1) * tick if side > 0 else self.bid * tick
        n = self.n
        self.events.append(Trade(ticker=self.m.ticker, exchange="F", ts=self.ts, trade_id=n, price=price, qty=qty,
                                 volume=price * qty * self.pv, buyer=1 + (n * 31) % 60, seller=1 + (n * 17) % 60,
                                 aggressor="buy" if side > 0 else "sell", received_ns=0))

    def _moves(self, vol: float) -> None:
        """Background and scheduled quote moves after the current trade."""
        d = self.drift.pop(self.n, 0)
        step = 1 if d > 0 else -1
        for _ in range(abs(d)):
            self._shift(step)
        if self.r.u() < vol:
            self._shift(self.r.sign())

    # ----------------------------------------------------------------------------------------------- patterns
    def _pattern_steps(self, kind: str, d: int) -> list[Step]:
        q = self._qty
        if kind == "orderflow":
            return [(d, q(), d, 0.3), (d, q(), 0, 0.3), (d, q(), d, 0.3), (d, q(), 0, 0.3), (d, q(), 0, 0.3)]
        if kind == "tape":
            sig = self.m.qty_sigma
            big = [max(1, int(round(self.m.median_qty * math.exp(sig * (3.3 + 0.7 * self.r.u()))))) for _ in "ab"]
            return [(self.r.sign(), q(), 0, 0.5), (self.r.sign(), q(), 0, 0.5), (self.r.sign(), q(), 0, 0.5),
                    (d, big[0], d, 0.5), (self.r.sign(), q(), 0, 0.5), (d, big[1], 0, 0.5)]
        if kind == "footprint":
            stage = [(d, 2.0), (d, 2.0), (-d, 0.6), (d, 2.0), (d, 2.0), (-d, 0.6), (d, 2.0)]
            steps: list[Step] = []
            for k in range(3):
                for j, (side, mult) in enumerate(stage):
                    move = d if (k < 2 and j == len(stage) - 1) else 0
                    steps.append((side, q(mult, 0.3), move, 1.0))
            return steps
        # liquidity: alternate sides starting against the heavy side
        return [((-d if j % 2 == 0 else d), q(), 0, 1.0) for j in range(6)]

    def _paint(self, kind: str, d: int, regime: Regime) -> None:
        self.patterns[kind] += 1
        first = self.n + 1
        if kind == "footprint":
            self._shift(d)
        heavy = big = small = 0.0
        if kind == "liquidity":
            heavy = d
            big, small = 4.0 * self.m.book_mean, 0.4 * self.m.book_mean
            self._liq_book(heavy, big, small)
        for side, qty, move, dt_mult in self._pattern_steps(kind, d):
            self._trade(side, qty, dt_mult)
            if kind == "liquidity":
                self._liq_book(heavy, big, small)
            else:
                if kind == "tape" and qty > 5 * self.m.median_qty:  # a large print: the level is replenished
                    if side > 0:
                        self.qa = self._size()
                        self._book("ask")
                    else:
                        self.qb = self._size()
                        self._book("bid")
                else:
                    self._after_hit(side, qty)
            if move:
                self._shift(move)
        self.painted.append((first, self.n, kind, d))
        if kind == "liquidity":  # the imbalance goes away with the pattern
            self.qb, self.qa = self._size(), self._size()
            self._book("bid")
            self._book("ask")
        # the move that follows: planted for the informative pattern, random otherwise
        total = regime.edge * self.cost_ticks
        n_moves = int(total) + (1 if self.r.u() < total - int(total) else 0)
        if regime.informative == kind:
            direction = d
            self.planted += 1
        else:
            direction = self.r.sign()
        if n_moves:  # one jump, so no momentum is left to catch once it has started
            at = self.n + 1 + int(self.r.u() * self.params.drift_trades)
            self.drift[at] = self.drift.get(at, 0) + direction * n_moves

    def _liq_book(self, heavy: int, big: float, small: float) -> None:
        if heavy > 0:
            self.qb, self.qa = big, small
        else:
            self.qb, self.qa = small, big
        self._book("bid")
        self._book("ask")

    # ------------------------------------------------------------------------------------------------- driver
    def run(self) -> Iterator[InputEvent]:
        """Yield the stream's events in time order, generating them lazily."""
        total = self.params.trades
        gap_lo, gap_hi = self.params.gap
        self._book("bid")
        self._book("ask")
        ri = 0
        regime = self.regimes[0]
        next_pattern = self.n + gap_lo + int(self.r.u() * (gap_hi - gap_lo + 1))
        while self.n < total:
            while regime.end < self.n + 1 and ri + 1 < len(self.regimes):
                ri += 1
                regime = self.regimes[ri]
            if self.n + 1 >= next_pattern and total - self.n > 30:
                kind = PATTERNS[int(self.r.u() * len(PATTERNS))]
                self._paint(kind, self.r.sign(), regime)
                next_pattern = self.n + gap_lo + int(self.r.u() * (gap_hi - gap_lo + 1))
            else:
                side = self.r.sign()
                qty = self._qty()
                self._trade(side, qty)
                self._after_hit(side, qty)
            self._moves(regime.vol)
            if self.events:
                yield from self.events
                self.events = []


class PlantedMarket:
    """A scenario for several tickers, merged in time order; knows which specialist is informative when."""

    def __init__(self, scenario: str, seed: int, tickers: tuple[str, ...] = ("WDO", "WIN"),
                 params: ScenarioParams | None = None, contracts: dict | None = None) -> None:
        from app.config import ExecutionConfig
        from app.execution.contracts import spec_for

        self.scenario = scenario
        self.seed = seed
        self.params = params or ScenarioParams()
        exec_cfg = ExecutionConfig() if contracts is None else ExecutionConfig(contracts=contracts)
        master = np.random.Generator(np.random.PCG64(seed))
        self.streams: dict[str, TickerStream] = {}
        self.regimes: dict[str, list[Regime]] = {}
        for k, root in enumerate(tickers):
            model = self.params.models[root_of(root)]
            regimes = schedule(scenario, master, self.params)
            spec = spec_for(model.ticker, exec_cfg)
            if spec is None:
                raise ValueError(f"no contract spec for {model.ticker}")
            cost_ticks = spec.round_trip_cost() / spec.tick_value
            rng = np.random.Generator(np.random.PCG64([seed, k + 1]))
            self.streams[model.ticker] = TickerStream(model, regimes, self.params, cost_ticks, spec.point_value, rng)
            self.regimes[model.ticker] = regimes
        self._starts = {t: [r.start for r in rs] for t, rs in self.regimes.items()}

    @property
    def tickers(self) -> list[str]:
        return list(self.streams)

    def events(self) -> Iterator[InputEvent]:
        """All tickers' events merged by exchange time (ties: ticker order, then generation order)."""
        return heapq.merge(*(s.run() for s in self.streams.values()), key=lambda e: e.ts)

    def regime_at(self, ticker: str, trade_id: int) -> Regime:
        rs = self.regimes[ticker]
        return rs[max(0, bisect_right(self._starts[ticker], trade_id) - 1)]

    def informative(self, ticker: str, trade_id: int) -> str | None:
        return self.regime_at(ticker, trade_id).informative
