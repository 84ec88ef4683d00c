"""Scenarios of the planted-signal market: which specialist's pattern predicts the next move, when, and by how much.

- null: no pattern predicts anything. Every pattern is still followed by the same number of extra quote moves as in
  the other scenarios, in a random direction, so volatility looks the same and only the predictability is gone.
- planted: regimes that switch (each regime_trades long); in each regime exactly one specialist's pattern is
  followed by quote moves in its direction worth `edge` x the ticker's round-trip cost (edge drawn per regime
  within edge_range); the other three patterns are followed by the same moves in a random direction.
- mixed: like planted, but a regime can also have no informative specialist (a null stretch), drawn with equal
  probability among "none" and the four specialists, never the same twice in a row.
Everything is drawn from numpy Generator(PCG64(seed)): the same seed gives the same market, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCENARIOS = ("null", "planted", "mixed")
PATTERNS = ("orderflow", "liquidity", "tape", "footprint")


@dataclass(frozen=True)
class TickerModel:
    """Background market of one ticker."""

    ticker: str
    tick: float  # points
    start_price: float  # points
    median_qty: float  # contracts; sizes are lognormal around it
    qty_sigma: float  # of log size
    book_mean: float  # contracts at the top level of each side
    rate: float  # mean trades per second


DEFAULT_MODELS = {
    "WDO": TickerModel("WDOJ24", tick=0.5, start_price=5000.0, median_qty=2.0, qty_sigma=0.7, book_mean=30.0, rate=4.0),
    "WIN": TickerModel("WINJ24", tick=5.0, start_price=130000.0, median_qty=2.0, qty_sigma=0.8, book_mean=40.0,
                       rate=6.0),
}


@dataclass(frozen=True)
class ScenarioParams:
    trades: int = 40_000  # per ticker
    regime_trades: tuple[int, int] = (8_000, 12_000)  # length of a regime, uniform in this range
    edge_range: tuple[float, float] = (0.5, 4.0)  # expected planted move, in round-trip costs
    vol_range: tuple[float, float] = (0.03, 0.10)  # background quote moves per trade, per regime
    drift_trades: int = 8  # the planted jump happens within this many trades after the pattern's last trade
    gap: tuple[int, int] = (10, 24)  # background trades between patterns
    start_local: str = "2024-03-04 10:00"  # B3 local time of the first trade
    models: dict[str, TickerModel] = field(default_factory=lambda: dict(DEFAULT_MODELS))


@dataclass(frozen=True)
class Regime:
    start: int  # first trade number (trade_id) of the regime, 1-based
    end: int  # last trade number, inclusive
    informative: str | None  # the specialist whose pattern predicts, None = nothing does
    edge: float  # planted move in round-trip costs (also the size of the random moves after other patterns)
    vol: float  # background quote moves per trade


def schedule(scenario: str, rng: np.random.Generator, params: ScenarioParams) -> list[Regime]:
    """The regimes of one ticker's run."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    out: list[Regime] = []
    start = 1
    prev: str | None = "?"
    lo, hi = params.regime_trades
    while start <= params.trades:
        length = int(rng.integers(lo, hi + 1))
        end = min(params.trades, start + length - 1)
        if params.trades - end < lo // 2:  # no stub regime at the end
            end = params.trades
        if scenario == "null":
            informative = None
        else:
            choices: list[str | None] = list(PATTERNS) if scenario == "planted" else [None, *PATTERNS]
            choices = [c for c in choices if c != prev]
            informative = choices[int(rng.integers(len(choices)))]
        edge = float(rng.uniform(*params.edge_range))
        vol = float(rng.uniform(*params.vol_range))
        out.append(Regime(start, end, informative, edge, vol))
        prev = informative
        start = end + 1
    return out
