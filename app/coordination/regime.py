"""Regime context: a small, explicit classifier the coordinator conditions its weights on.

Three buckets, each from O(1) running sums over the last `window` trades of the ticker:
- volatility: mean |mid change| per trade, in ticks, against vol_edges -> lo | mid | hi (more edges: v0, v1, ...).
- trend strength: efficiency ratio |net mid change| / sum of |mid changes| -> trend if >= trend_edge, else range.
- time of day (B3 local): before tod_edges[0] -> open, between -> mid, after the last -> close (more edges: t0, ...).
The label is "vol.trend.tod", e.g. "lo.range.mid". Deterministic: it depends only on the trades' mids and times.
"""
from __future__ import annotations

from bisect import bisect_right

from app.agents.base import MarketState, Ring, local_minute
from app.config import RegimeConfig


def _names(n: int, three: tuple[str, str, str], prefix: str) -> list[str]:
    return list(three) if n == 3 else [f"{prefix}{i}" for i in range(n)]


class RegimeClassifier:
    def __init__(self, market: MarketState, cfg: RegimeConfig) -> None:
        self.market = market
        self.cfg = cfg
        self._abs = Ring(cfg.window)
        self._net = Ring(cfg.window)
        self._prev_mid = 0.0
        self._inv_tick = 1.0 / market.tick
        self._vol_names = _names(len(cfg.vol_edges) + 1, ("lo", "mid", "hi"), "v")
        self._tod_edges = [int(e[:2]) * 60 + int(e[3:]) for e in cfg.tod_edges]
        self._tod_names = _names(len(self._tod_edges) + 1, ("open", "mid", "close"), "t")
        self._labels: dict[tuple[int, int, int], str] = {}
        self._key = (-1, -1, -1)
        self.label = ""
        self.vol = 0.0
        self.efficiency = 0.0

    def on_trade(self, ts: int) -> str:
        mid = self.market.mid
        if self._prev_mid:
            d = (mid - self._prev_mid) * self._inv_tick
            self._net.push(d)
            self._abs.push(d if d >= 0 else -d)
        self._prev_mid = mid
        c = self._abs.count
        path = self._abs.total
        self.vol = path / c if c else 0.0
        net = self._net.total
        self.efficiency = (net if net >= 0 else -net) / path if path > 1e-9 else 0.0
        key = (bisect_right(self.cfg.vol_edges, self.vol),
               1 if self.efficiency >= self.cfg.trend_edge else 0,
               bisect_right(self._tod_edges, local_minute(ts)))
        if key != self._key:
            self._key = key
            label = self._labels.get(key)
            if label is None:
                label = self._labels[key] = (f"{self._vol_names[key[0]]}.{'trend' if key[1] else 'range'}."
                                             f"{self._tod_names[key[2]]}")
            self.label = label
        return self.label

    def features(self) -> dict[str, float]:
        return {"vol_ticks_per_trade": self.vol, "efficiency": self.efficiency}
