"""Footprint specialist: volume at price split by aggressor, read for stacked imbalances and absorption.

Two views of the same trades, both O(1) per trade: bars of bar_trades trades (volume at price with the buy/sell split,
delta and point of control per bar), and a rolling window of the last window_trades trades (each trade is added to
its price level and the trade that leaves the window is subtracted), on which imbalances and absorption are read, so
a pattern that straddles a bar boundary is still seen whole. Checks look at a bounded number of levels around the
trade's price.

Features:
- bar_delta: aggressive buy minus sell volume in the current bar.
- level_delta: buy minus sell volume at the last trade's price over the window (delta per level).
- stack_buy / stack_sell: consecutive imbalanced levels at the last check. A level p is buy-imbalanced when buy
  volume at p >= imbalance_ratio x sell volume at p - 1 tick (the diagonal) and >= min_level_volume mean trade sizes;
  sell-imbalanced mirrored (sell at p vs buy at p + 1 tick).
- absorption: +1 when sells kept hitting one price (>= absorb_min_trades trades, >= absorb_share of window volume),
  sells out-traded buys over the window by >= absorb_share of its volume, and nothing traded below that price
  (buyers absorbed them); -1 mirrored; else 0.
- poc / poc_shift_ticks: point of control (price with most volume) of the last closed bar and its move from the bar
  before, in ticks.
Signal: stack_min stacked imbalanced levels in their direction (continuation), or absorption against the absorbed
side (reversal); each direction at most once per window_trades trades.
"""
from __future__ import annotations

from collections import deque

from app.agents.base import BaseSpecialist, MarketState
from app.config import FootprintConfig
from app.events import Signal, Trade

_EMPTY = (0.0, 0.0, 0, 0)


class Footprint(BaseSpecialist):
    name = "footprint"

    def __init__(self, market: MarketState, cfg: FootprintConfig) -> None:
        super().__init__(market, cfg.horizon)
        self.cfg = cfg
        self._inv_tick = 1.0 / market.tick
        # price key (integer ticks) -> [buy volume, sell volume, buy trades, sell trades]
        self.cur: dict[int, list] = {}  # current bar
        self.win: dict[int, list] = {}  # rolling window
        # the window's trades as (price key, side, qty), oldest first: a deque of tuples costs a tenth of three
        # numpy rings per trade, and holds the same values (ints and float qtys, no rounding either way)
        self._wtrades: deque[tuple[int, int, float]] = deque()
        self._wvol = 0.0
        self._wdelta = 0.0
        self._n_bar = 0
        self.bar_delta = 0.0
        self.level_delta = 0.0
        self.stack_buy = 0
        self.stack_sell = 0
        self.absorption = 0
        self.poc = 0.0
        self.poc_shift_ticks = 0.0
        self._poc_key: int | None = None
        self._n = 0
        self._last_fire = {1: -(10**9), -1: -(10**9)}

    # ------------------------------------------------------------------------------------------------ updates
    def on_trade(self, t: Trade) -> Signal | None:
        # _add and the window update written out in place: this runs on every trade, and calls cost more than the
        # arithmetic (the same operations on the same values; the bar and the window are independent of each other)
        self._n += 1
        a = t.aggressor
        s = 1 if a == "buy" else -1 if a == "sell" else 0
        k = int(round(t.price * self._inv_tick))
        q = float(t.qty)
        win = self.win
        trades = self._wtrades
        if len(trades) == self.cfg.window_trades:  # the oldest trade leaves the window
            ok, os_, oq = trades.popleft()
            old = _add(win, ok, os_, -oq, -1)
            if old[0] <= 0.0 and old[1] <= 0.0 and old[2] <= 0 and old[3] <= 0:
                del win[ok]
            self._wvol -= oq
            self._wdelta -= os_ * oq
        trades.append((k, s, q))
        row = self.cur.get(k)
        if row is None:
            row = self.cur[k] = [0.0, 0.0, 0, 0]
        w = win.get(k)
        if w is None:  # a level can be absent even with trades in the window: crosses add nothing to its row
            w = win[k] = [0.0, 0.0, 0, 0]
        if s > 0:
            row[0] += q
            row[2] += 1
            w[0] += q
            w[2] += 1
        elif s < 0:
            row[1] += q
            row[3] += 1
            w[1] += q
            w[3] += 1
        self.bar_delta += s * q
        self._n_bar += 1
        self._wvol += q
        self._wdelta += s * q

        sig = self._check(t, s, k) if s else None
        if self._n_bar >= self.cfg.bar_trades:
            self._close_bar()
        return sig

    def _close_bar(self) -> None:
        cur = self.cur
        if cur:
            key = max(cur, key=lambda p: (cur[p][0] + cur[p][1], -p))
            if self._poc_key is not None:
                self.poc_shift_ticks = float(key - self._poc_key)
            self._poc_key = key
            self.poc = key * self.market.tick
        self.cur = {}
        self._n_bar = 0
        self.bar_delta = 0.0

    # ------------------------------------------------------------------------------------------------- checks
    def _stack(self, k: int, s: int, min_vol: float) -> int:
        """Consecutive imbalanced levels starting at k and going against s (down for buys, up for sells)."""
        ratio = self.cfg.imbalance_ratio
        limit = self.cfg.stack_min + 3
        n = 0
        level = self.win.get  # with _EMPTY as the default: no call per level
        if s > 0:
            while n < limit:
                v = level(k, _EMPTY)[0]
                if v < min_vol or v < ratio * level(k - 1, _EMPTY)[1]:
                    break
                n += 1
                k -= 1
        else:
            while n < limit:
                v = level(k, _EMPTY)[1]
                if v < min_vol or v < ratio * level(k + 1, _EMPTY)[0]:
                    break
                n += 1
                k += 1
        return n

    def _check(self, t: Trade, s: int, k: int) -> Signal | None:
        cfg = self.cfg
        lv = self.win.get(k, _EMPTY)
        self.level_delta = lv[0] - lv[1]
        min_vol = cfg.min_level_volume * (self.market.mean_qty or 1.0)
        n = self._stack(k, s, min_vol)
        if s > 0:
            self.stack_buy = n
        else:
            self.stack_sell = n
        if n >= cfg.stack_min and self._n - self._last_fire[s] >= cfg.window_trades:
            self._last_fire[s] = self._n
            self.absorption = 0
            aligned = self.poc_shift_ticks * s > 0
            conf = 0.5 + 0.15 * (n - cfg.stack_min) + (0.15 if aligned else 0.0)
            return self.signal(t, float(s), conf, self.features())

        # absorption: one side kept hitting this price, out-traded the other side, and the price did not give way
        side_n = lv[2] if s > 0 else lv[3]
        if side_n >= cfg.absorb_min_trades:
            side_vol = lv[0] if s > 0 else lv[1]
            window = self._wvol
            if window > 0 and side_vol >= cfg.absorb_share * window and self._wdelta * s >= cfg.absorb_share * window:
                held = all(p <= k for p in self.win) if s > 0 else all(p >= k for p in self.win)
                d = -s
                if held and self._n - self._last_fire[d] >= cfg.window_trades:
                    self._last_fire[d] = self._n
                    self.absorption = d
                    conf = 0.4 + 0.4 * (side_vol / window)
                    return self.signal(t, float(d), conf, self.features())
        self.absorption = 0
        return None

    # --------------------------------------------------------------------------------------------- inspection
    def bar(self) -> dict[float, tuple[float, float]]:
        """Current bar: price -> (buy volume, sell volume)."""
        tick = self.market.tick
        return {k * tick: (v[0], v[1]) for k, v in sorted(self.cur.items())}

    def features(self) -> dict[str, float]:
        return {
            "bar_delta": self.bar_delta,
            "level_delta": self.level_delta,
            "stack_buy": float(self.stack_buy),
            "stack_sell": float(self.stack_sell),
            "absorption": float(self.absorption),
            "poc": self.poc,
            "poc_shift_ticks": self.poc_shift_ticks,
        }


def _add(levels: dict[int, list], k: int, s: int, q: float, n: int) -> list:
    row = levels.get(k)
    if row is None:
        row = levels[k] = [0.0, 0.0, 0, 0]
    if s > 0:
        row[0] += q
        row[2] += n
    elif s < 0:
        row[1] += q
        row[3] += n
    return row
