"""Your own specialist, in a dozen lines: a momentum rule the coordinator weighs like the built-in ones.

Enable it in config.toml (this folder must be importable: run from the project root, or put it on PYTHONPATH):

    [agents]
    enabled = ["orderflow", "liquidity", "tape", "footprint", "examples.my_specialist:Momentum"]

    [agents.params.momentum]
    horizon = 20        # trades the signal is meant for (the learner scores it at 20 and, by default, 40)
    window = 30         # trades the price change is measured over
    min_ticks = 3       # the change, in ticks, that makes a signal

The learner then has experts "momentum@20", "momentum@20:fade", "momentum@40", "momentum@40:fade": it can learn to
follow the rule, to fade it (mean reversion), or to ignore it, from its P&L net of costs.
"""
from __future__ import annotations

from collections import deque

from app.agents.base import BaseSpecialist
from app.events import Signal, Trade


class Momentum(BaseSpecialist):
    name = "momentum"
    default_horizon = 20

    def __init__(self, market, params) -> None:
        super().__init__(market, params.horizon)
        self.window = int(getattr(params, "window", 30))
        self.min_ticks = float(getattr(params, "min_ticks", 3))
        self.prices: deque[float] = deque(maxlen=self.window + 1)
        self.last_dir = 0

    def on_trade(self, t: Trade) -> Signal | None:
        self.prices.append(t.price)
        if len(self.prices) <= self.window:
            return None
        ticks = (self.prices[-1] - self.prices[0]) / self.market.tick
        direction = 1 if ticks >= self.min_ticks else -1 if ticks <= -self.min_ticks else 0
        if direction == 0 or direction == self.last_dir:  # speak when the view changes, not on every trade
            self.last_dir = direction
            return None
        self.last_dir = direction
        return self.signal(t, float(direction), min(1.0, abs(ticks) / (2 * self.min_ticks)), {"ticks": ticks})

    def reset_day(self) -> None:
        self.prices.clear()
        self.last_dir = 0

    def features(self) -> dict[str, float]:
        return {"window": float(self.window), "last_dir": float(self.last_dir)}
