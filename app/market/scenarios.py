"""Scenarios of the planted-signal market: which specialist's pattern predicts the next move, when, and by how much.

- null: no pattern predicts anything. Every pattern is still followed by the same number of extra quote moves as in
  the other scenarios, in a random direction, so volatility looks the same and only the predictability is gone.
- planted: regimes that switch (each regime_trades long); in each regime exactly one specialist's pattern is
  followed by quote moves in its direction worth `edge` x the ticker's round-trip cost (edge drawn per regime
  within edge_range); the other three patterns are followed by the same moves in a random direction.
- mixed: like planted, but a regime can also have no informative specialist (a null stretch), drawn with equal
  probability among "none" and the four specialists, never the same twice in a row.
- reversed: like planted (same regimes, same draws), but the informative pattern is followed by a move AGAINST its
  direction (Regime.sign = -1): its specialist is right about when, wrong about which way; a learner has to fade it.
- latent: nobody's pattern predicts (informative None, patterns painted with random-direction moves as in null;
  the regimes still set vol and the size of those moves), but an informed trader trades ahead of moves it knows
  about (LatentParams, generator.py): each move is real and worth LatentParams.edge round-trip costs, yet it shows
  only as partial, noisy footprints in the flow and the book, which the detectors pick up now and then, among their
  triggers on noise. Measured (tests/market/test_hard_scenarios.py): no specialist's signals are worth a round trip
  on their own, a reader of the book who waits for a persistent lean is.
Everything is drawn from numpy Generator(PCG64(seed)): the same seed gives the same market, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCENARIOS = ("null", "planted", "mixed", "reversed", "latent")
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
class LatentParams:
    """The informed trader of the latent scenario. It works in episodes: it learns that the quotes will jump `edge`
    round-trip costs (drawn per episode) in direction D at the end of the episode and, until then, takes a share of
    the background trades, in one of two styles drawn per episode:
    - aggressive: it buys (D) with somewhat larger orders, now and then a block, and its buying sometimes moves the
      quotes D (order-flow imbalance, large prints, a little drift);
    - passive: it rests on the D-side top level, showing a heavy size at some refreshes and hiding it at others, and
      tops it up after every hit; sellers (-D) hit it and the price holds (book imbalance now and then, absorption);
      order flow points the wrong way.
    """

    gap: tuple[int, int] = (30, 120)  # trades between one episode's jump and the next episode's start
    length: tuple[int, int] = (8, 24)  # trades an episode lasts; the jump follows its last trade
    edge: tuple[float, float] = (1.5, 4.0)  # the jump, in round-trip costs (uniform per episode)
    share: tuple[float, float] = (0.25, 0.5)  # of the background trades that are the informed trader's (per episode)
    passive: float = 0.4  # probability that an episode is passive
    size_mult: float = 1.5  # aggressive child orders: median size x this (same lognormal spread)
    block: float = 0.08  # probability that an aggressive child is a block (median x exp(sigma x U(2.5, 3.5)))
    impact: float = 0.06  # probability that an aggressive child moves the quotes one tick D
    lean: float = 2.5  # passive: the D-side top level when the informed trader shows its size, in usual top sizes
    show: float = 0.5  # passive: probability that it shows its size at each refresh of its level
    hold: float = 0.7  # passive: probability that a background quote move against D does not happen


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
    latent: LatentParams = field(default_factory=LatentParams)


@dataclass(frozen=True)
class Regime:
    start: int  # first trade number (trade_id) of the regime, 1-based
    end: int  # last trade number, inclusive
    informative: str | None  # the specialist whose pattern predicts, None = nothing does
    edge: float  # planted move in round-trip costs (also the size of the random moves after other patterns)
    vol: float  # background quote moves per trade
    sign: int = 1  # +1: the informative pattern's move follows its direction; -1 (reversed): goes against it


def schedule(scenario: str, rng: np.random.Generator, params: ScenarioParams) -> list[Regime]:
    """The regimes of one ticker's run."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    out: list[Regime] = []
    start = 1
    prev: str | None = "?"
    lo, hi = params.regime_trades
    sign = -1 if scenario == "reversed" else 1
    while start <= params.trades:
        length = int(rng.integers(lo, hi + 1))
        end = min(params.trades, start + length - 1)
        if params.trades - end < lo // 2:  # no stub regime at the end
            end = params.trades
        if scenario in ("null", "latent"):
            informative = None
        else:
            choices: list[str | None] = [None, *PATTERNS] if scenario == "mixed" else list(PATTERNS)
            choices = [c for c in choices if c != prev]
            informative = choices[int(rng.integers(len(choices)))]
        edge = float(rng.uniform(*params.edge_range))
        vol = float(rng.uniform(*params.vol_range))
        out.append(Regime(start, end, informative, edge, vol, sign))
        prev = informative
        start = end + 1
    return out
