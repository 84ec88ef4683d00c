"""Order-flow specialist: who is aggressing, how hard, and whether they are walking the book.

Features (all O(1) per trade):
- delta: signed size of the last trade (+ aggressive buy, - aggressive sell, 0 cross/auction/unknown).
- cum_delta: sum of delta since the session opened (reset at 09:00 B3 local).
- ofi_<w>: order-flow imbalance over the last w trades = sum(signed size) / sum(size), in [-1, 1].
- sweep_trades / sweep_levels: the current run of same-side aggressions and how many price levels it traded at,
  counted only when the price moves in the run's direction.
Signal: a sweep (>= sweep_min_trades in a row through >= sweep_min_levels) in its direction, once per run; or,
alone, |ofi| at ofi_trigger_window >= ofi_trigger once that window is full (re-armed below half of that).
"""
from __future__ import annotations

from app.agents.base import BaseSpecialist, MarketState
from app.config import OrderFlowConfig
from app.events import Signal, Trade


class OrderFlow(BaseSpecialist):
    name = "orderflow"

    def __init__(self, market: MarketState, cfg: OrderFlowConfig) -> None:
        super().__init__(market, cfg.horizon)
        self.cfg = cfg
        self.windows = sorted(set(cfg.ofi_windows))
        size = self.windows[-1]
        # the last `size` trades' signed and absolute sizes, slot = trade count % size: plain lists, as the sums per
        # window are kept here and no Ring total is ever read (floats in, the same floats out)
        self._size = size
        self._signed = [0.0] * size
        self._abs = [0.0] * size
        self._pos = 0
        self._count = 0
        self._wi = tuple(enumerate(self.windows))
        self._sum_s = [0.0] * len(self.windows)
        self._sum_a = [0.0] * len(self.windows)
        self._trig_i = self.windows.index(cfg.ofi_trigger_window)
        self._trig_w = cfg.ofi_trigger_window
        self._short_i = 0
        self.delta = 0.0
        self.cum_delta = 0.0
        self._run_side = 0
        self.run_len = 0
        self.run_levels = 0
        self._run_extreme = 0.0
        self._run_fired = False
        self._ofi_armed = True
        self._eps = market.tick * 1e-6

    def ofi(self, window: int) -> float:
        i = self.windows.index(window)
        a = self._sum_a[i]
        return self._sum_s[i] / a if a > 0 else 0.0

    def on_trade(self, t: Trade) -> Signal | None:
        a = t.aggressor  # sign_of inlined
        s = 1 if a == "buy" else -1 if a == "sell" else 0
        q = float(t.qty)
        xs = s * q
        xa = q if s else 0.0  # crosses and auctions carry no aggression: they do not dilute the imbalance
        self.delta = xs
        self.cum_delta += xs
        signed, absolute = self._signed, self._abs
        sum_s, sum_a = self._sum_s, self._sum_a
        pos = self._pos
        for i, w in self._wi:  # pos - w: the slot of the trade leaving window w (a negative index wraps)
            sum_s[i] += xs - signed[pos - w]
            sum_a[i] += xa - absolute[pos - w]
        signed[pos] = xs
        absolute[pos] = xa
        pos += 1
        self._pos = 0 if pos == self._size else pos
        if self._count < pos:
            self._count = pos
        if s == 0:
            return None

        price = t.price
        if s == self._run_side:
            self.run_len += 1
            if (price - self._run_extreme) * s > self._eps:
                self.run_levels += 1
                self._run_extreme = price
        else:
            self._run_side = s
            self.run_len = 1
            self.run_levels = 1
            self._run_extreme = price
            self._run_fired = False

        cfg = self.cfg
        if (not self._run_fired and self.run_len >= cfg.sweep_min_trades
                and self.run_levels >= cfg.sweep_min_levels):
            self._run_fired = True
            a0 = sum_a[self._short_i]
            ofi_short = sum_s[self._short_i] / a0 if a0 > 0 else 0.0
            agree = ofi_short * s
            conf = 0.6 + 0.1 * (self.run_levels - cfg.sweep_min_levels) + 0.3 * (agree if agree > 0 else 0.0)
            return self.signal(t, float(s), conf, self.features())

        if self._count < self._trig_w:  # not enough trades for the window yet
            return None
        a = sum_a[self._trig_i]
        ofi = sum_s[self._trig_i] / a if a > 0 else 0.0
        mag = ofi if ofi >= 0 else -ofi
        if self._ofi_armed:
            if mag >= cfg.ofi_trigger:
                self._ofi_armed = False
                return self.signal(t, 1.0 if ofi > 0 else -1.0, mag, self.features())
        elif mag < 0.5 * cfg.ofi_trigger:
            self._ofi_armed = True
        return None

    def features(self) -> dict[str, float]:
        f = {"delta": self.delta, "cum_delta": self.cum_delta}
        for i, w in enumerate(self.windows):
            a = self._sum_a[i]
            f[f"ofi_{w}"] = self._sum_s[i] / a if a > 0 else 0.0
        f["sweep_trades"] = float(self.run_len * self._run_side)
        f["sweep_levels"] = float(self.run_levels)
        return f

    def reset_day(self) -> None:
        self.cum_delta = 0.0
