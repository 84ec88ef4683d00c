"""Tape-reading specialist: the pace of the tape, unusually large prints, and one side printing in clusters.

Features (O(1) per trade):
- rate_short / rate_long: trades per second over the last rate_short / rate_long trades (exchange time).
- accel: rate_short / rate_long - 1 (> 0: the tape is speeding up).
- size_z: z-score of log(size) of the last trade against the rolling size distribution (size_window trades,
  running sums of log size and its square); a print is large when size_z >= large_z.
- large_buy / large_sell: large prints per side within the last cluster_window trades.
- same_side_run: signed length of the current run of same-side trades; same_side_10: mean side of the last 10.
Signal: a cluster (>= cluster_min large prints on one side within cluster_window trades), in its direction, at most
once per cluster_window trades.
"""
from __future__ import annotations

import math
from collections import deque

from app.agents.base import NS, BaseSpecialist, MarketState, Ring
from app.config import TapeConfig
from app.events import Signal, Trade


class Tape(BaseSpecialist):
    name = "tape"

    def __init__(self, market: MarketState, cfg: TapeConfig) -> None:
        super().__init__(market, cfg.horizon)
        self.cfg = cfg
        self._t0: int | None = None
        # exchange times of the last rate_long + 1 trades (slot = trade count % size) for the rates; no total read,
        # so a plain list
        self._tsize = max(cfg.rate_short, cfg.rate_long) + 1
        self._times = [0.0] * self._tsize
        self._logs = Ring(cfg.size_window)
        self._logs2 = Ring(cfg.size_window)
        self._sides10 = Ring(10)
        self.rate_short = 0.0
        self.rate_long = 0.0
        self.accel = 0.0
        self.size_z = 0.0
        self._large = {1: deque(), -1: deque()}
        self._run = 0
        self._n = 0
        self._last_fire = -(10**9)

    def on_trade(self, t: Trade) -> Signal | None:
        cfg = self.cfg
        self._n += 1
        n = self._n
        if self._t0 is None:
            self._t0 = t.ts
        now = (t.ts - self._t0) / NS
        times = self._times
        size = self._tsize
        pos = (n - 1) % size  # n - 1 earlier pushes
        times[pos] = now
        if n > cfg.rate_short:
            dt = now - times[pos - cfg.rate_short]
            self.rate_short = cfg.rate_short / dt if dt > 0 else self.rate_short
        if n > cfg.rate_long:
            dt = now - times[pos - cfg.rate_long]
            self.rate_long = cfg.rate_long / dt if dt > 0 else self.rate_long
            if self.rate_long > 0:
                self.accel = self.rate_short / self.rate_long - 1.0

        x = math.log(t.qty) if t.qty > 0 else 0.0
        logs, logs2 = self._logs, self._logs2
        c = logs.count
        if c:
            mean = logs.total / c
            var = logs2.total / c - mean * mean
            self.size_z = (x - mean) / math.sqrt(var) if var > 1e-12 else 0.0
        logs.push(x)
        logs2.push(x * x)

        a = t.aggressor  # sign_of inlined, as is float(s)
        s = 1 if a == "buy" else -1 if a == "sell" else 0
        self._sides10.push(1.0 if s > 0 else -1.0 if s < 0 else 0.0)
        if s == 0:
            self._run = 0
            return None
        self._run = self._run + s if self._run * s > 0 else s

        if c < cfg.min_samples or self.size_z < cfg.large_z:
            return None
        large = self._large[s]
        large.append(n)
        horizon = n - cfg.cluster_window
        while large and large[0] <= horizon:
            large.popleft()
        if len(large) >= cfg.cluster_min and n - self._last_fire >= cfg.cluster_window:
            self._last_fire = n
            over = self.size_z - cfg.large_z
            conf = 0.5 + 0.1 * (len(large) - cfg.cluster_min) + 0.1 * (over if over < 2.0 else 2.0)
            if self.accel > 0:
                conf += 0.1
            return self.signal(t, float(s), conf, self.features())
        return None

    def _recent_large(self, s: int) -> float:
        cutoff = self._n - self.cfg.cluster_window
        return float(sum(1 for i in self._large[s] if i > cutoff))

    def features(self) -> dict[str, float]:
        return {
            "rate_short": self.rate_short,
            "rate_long": self.rate_long,
            "accel": self.accel,
            "size_z": self.size_z,
            "large_buy": self._recent_large(1),
            "large_sell": self._recent_large(-1),
            "same_side_run": float(self._run),
            "same_side_10": self._sides10.total / self._sides10.count if self._sides10.count else 0.0,
        }
