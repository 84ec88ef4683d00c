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
uniformly among the next drift_trades trades: in the pattern's direction x Regime.sign when the regime's informative
specialist is the pattern's (sign -1 in reversed: against it), otherwise in a random direction (so every pattern is
followed by the same volatility). A single jump rather than a drift: a move spread over several trades would be
momentum that any specialist could ride, which would plant a signal in the null scenario.

In the latent scenario nothing is planted on the patterns; instead an informed trader (scenarios.LatentParams) works
in episodes of a few dozen trades, each ending with a jump of round(edge x cost) ticks in its direction D. During an
episode it takes a share of the background trades: aggressive (D-side orders somewhat larger than usual, now and then
a block, sometimes moving the quotes D) or passive (a heavy D-side top level that refills after every hit, sellers
hitting it, adverse background quote moves mostly held off). No pattern is painted on its behalf: its flow shifts
the odds of the detectors' triggers (order-flow imbalance, large prints, book imbalance, absorption) without making
any of them certain, while their triggers on the background and on the random-direction patterns go on as in null.
`PlantedMarket.informed(ticker, trade_id)` is the hidden state (D inside an episode, 0 outside), for bookkeeping.
"""
from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

import numpy as np

from app.agents.base import NS, root_of
from app.events import Book, InputEvent, Trade
from app.feed.b3time import local_to_ns
from app.market.draws import Draws
from app.market.scenarios import PATTERNS, LatentParams, Regime, ScenarioParams, TickerModel, schedule

# a pattern step: (side, qty, quote move after it, dt multiplier)
Step = tuple[int, int, int, float]


@dataclass(frozen=True)
class Episode:
    """One informed-trader episode of the latent scenario."""

    first: int  # first trade number of the episode
    last: int  # last trade number; the jump follows it at once, even inside a painted pattern
    direction: int  # D: the way the quotes will jump, and the informed trader's side
    passive: bool  # resting on D (absorbing) rather than aggressing on D
    share: float  # of the background trades that are the informed trader's
    jump: int  # ticks


class TickerStream:
    """The event stream of one ticker."""

    def __init__(self, model: TickerModel, regimes: list[Regime], params: ScenarioParams, cost_ticks: float,
                 point_value: float, rng: np.random.Generator, informed: LatentParams | None = None) -> None:
        self.m = model
        self.regimes = regimes
        self.params = params
        self.cost_ticks = cost_ticks
        self.pv = point_value
        self.r = Draws(rng)
        try:
            local = datetime.strptime(params.start_local, "%Y-%m-%d %H:%M")
        except ValueError:
            raise ValueError(f"start_local {params.start_local!r} is not 'YYYY-MM-DD HH:MM' (B3 local time)") from None
        self.ts = local_to_ns(local.year, local.month, local.day, local.hour, local.minute, 0)
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
        # the informed trader (latent scenario only)
        self.latent = informed is not None
        self.lp = informed if informed is not None else LatentParams()
        self.episode: Episode | None = None
        self.episodes: list[Episode] = []
        self.episode_starts: list[int] = []
        self._next_episode = 0
        self.lean_b = self.lean_a = 1.0  # top-level size multipliers: the passive informed trader's resting order
        self._hold = 0  # passive episode: background quote moves against this direction are mostly held off
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
        self.qb = self._size(self._shown(self.lean_b))
        self.qa = self._size(self._shown(self.lean_a))
        self._deep()
        self._book("bid")
        self._book("ask")

    def _shown(self, lean: float) -> float:
        """The passive informed trader shows its size only now and then (it hides the rest, like an iceberg)."""
        if lean == 1.0 or self.r.u() < self.lp.show:
            return lean
        return 1.0

    def _after_hit(self, side: int, qty: int) -> None:
        """The hit level loses the traded size and drifts back toward its usual size (a leaned level, the passive
        informed trader's, is topped up faster and toward its larger size)."""
        base = self.m.book_mean
        if side > 0:
            lean = self._shown(self.lean_a)
            mean, k = (base, 0.2) if self.lean_a == 1.0 else (base * lean, 0.6)
            q = self.qa - qty + k * (mean - self.qa) + 0.05 * base * self.r.normal()
            self.qa = q if q >= 1.0 else self._size(lean)
            self._book("ask")
        else:
            lean = self._shown(self.lean_b)
            mean, k = (base, 0.2) if self.lean_b == 1.0 else (base * lean, 0.6)
            q = self.qb - qty + k * (mean - self.qb) + 0.05 * base * self.r.normal()
            self.qb = q if q >= 1.0 else self._size(lean)
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
            s = self.r.sign()
            if not (s == -self._hold and self.r.u() < self.lp.hold):
                self._shift(s)

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
            if self.episode is not None and self.n >= self.episode.last:  # the news does not wait for a pattern
                self._end_episode()
        self.painted.append((first, self.n, kind, d))
        if kind == "liquidity":  # the imbalance goes away with the pattern
            self.qb, self.qa = self._size(self._shown(self.lean_b)), self._size(self._shown(self.lean_a))
            self._book("bid")
            self._book("ask")
        # the move that follows: planted for the informative pattern, random otherwise
        n_moves = self.r.rounded(regime.edge * self.cost_ticks)
        if regime.informative == kind:
            direction = d * regime.sign
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

    # ----------------------------------------------------------------------------------------- informed trader
    def _end_episode(self) -> None:
        """Right after the episode's last trade: the informed trader stops and the news comes out (the jump)."""
        ep = self.episode
        assert ep is not None
        self.episode = None
        self._hold = 0
        self.lean_b = self.lean_a = 1.0
        for _ in range(ep.jump):
            self._shift(ep.direction)
        self._next_episode = self.n + 1 + self.r.count(*self.lp.gap)

    def _episode_step(self) -> None:
        """Before the next trade: start an episode when one is due."""
        lp = self.lp
        lo, hi = lp.length
        if self.episode is None and self.n + 1 >= self._next_episode and self.params.trades - self.n > hi + 1:
            d = self.r.sign()
            first = self.n + 1
            ep = Episode(first=first, last=first + self.r.count(lo, hi) - 1, direction=d,
                         passive=self.r.u() < lp.passive, share=self.r.between(*lp.share),
                         jump=self.r.rounded(self.r.between(*lp.edge) * self.cost_ticks))
            self.episode = ep
            self.episodes.append(ep)
            self.episode_starts.append(first)
            if ep.passive:
                self._hold = d
                if d > 0:
                    self.lean_b = lp.lean
                    self.qb = self._size(lp.lean)
                    self._book("bid")
                else:
                    self.lean_a = lp.lean
                    self.qa = self._size(lp.lean)
                    self._book("ask")

    def _informed_trade(self, ep: Episode) -> None:
        lp = self.lp
        d = ep.direction
        if ep.passive:  # a seller hits the informed trader's resting order, which tops itself up
            qty = self._qty()
            self._trade(-d, qty)
            self._after_hit(-d, qty)
            return
        if self.r.u() < lp.block:
            qty = max(1, int(round(self.m.median_qty * math.exp(self.m.qty_sigma * self.r.between(2.5, 3.5)))))
        else:
            qty = self._qty(lp.size_mult)
        self._trade(d, qty)
        self._after_hit(d, qty)
        if self.r.u() < lp.impact:
            self._shift(d)

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
        latent = self.latent
        if latent:
            self._next_episode = self.n + 1 + self.r.count(*self.lp.gap)
        while self.n < total:
            while regime.end < self.n + 1 and ri + 1 < len(self.regimes):
                ri += 1
                regime = self.regimes[ri]
            if latent:
                self._episode_step()
            if self.n + 1 >= next_pattern and total - self.n > 30:
                kind = PATTERNS[int(self.r.u() * len(PATTERNS))]
                self._paint(kind, self.r.sign(), regime)
                next_pattern = self.n + gap_lo + int(self.r.u() * (gap_hi - gap_lo + 1))
            elif (ep := self.episode) is not None and self.r.u() < ep.share:
                self._informed_trade(ep)
            else:
                side = self.r.sign()
                qty = self._qty()
                self._trade(side, qty)
                self._after_hit(side, qty)
            self._moves(regime.vol)
            if self.episode is not None and self.n >= self.episode.last:
                self._end_episode()
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
            latent = self.params.latent if scenario == "latent" else None
            spec = spec_for(model.ticker, exec_cfg)
            if spec is None:
                raise ValueError(f"no contract spec for {model.ticker}")
            cost_ticks = spec.round_trip_cost() / spec.tick_value
            rng = np.random.Generator(np.random.PCG64([seed, k + 1]))
            self.streams[model.ticker] = TickerStream(model, regimes, self.params, cost_ticks, spec.point_value, rng,
                                                      latent)
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
        """The specialist whose pattern predicts at this trade (None: nobody's, as everywhere in null and latent)."""
        return self.regime_at(ticker, trade_id).informative

    def direction(self, ticker: str, trade_id: int) -> int:
        """+1: the informative pattern's move follows its direction; -1 inside a reversed regime: goes against it."""
        return self.regime_at(ticker, trade_id).sign

    def informed(self, ticker: str, trade_id: int) -> int:
        """Latent scenario: the informed trader's direction at this trade (the coming jump's), 0 outside an episode.
        Known for trades already generated (the stream is lazy): ask about trades the events have reached."""
        s = self.streams[ticker]
        k = bisect_right(s.episode_starts, trade_id) - 1
        if k < 0:
            return 0
        ep = s.episodes[k]
        return ep.direction if trade_id <= ep.last else 0
