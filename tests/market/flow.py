"""Helpers for the market tests: one pass over a market through the real hierarchy, recording the mid each trade met
and the specialists' signals, and forward mid moves measured in round-trip costs."""
from __future__ import annotations

from dataclasses import dataclass

from app import config
from app.events import Book, Signal
from app.hierarchy import Hierarchy
from app.market.generator import PlantedMarket

HORIZON = 15  # trades: the specialists' default signal horizon


@dataclass
class Run:
    market: PlantedMarket
    ticker: str
    mids: dict[int, float]  # trade_id -> mid (points) the trade met, before its own book updates
    imbalance: dict[int, float]  # trade_id -> top-of-book (bid qty - ask qty) / (bid qty + ask qty) the trade met
    signals: list[Signal]
    cost: float  # one round trip, in points of mid move

    def forward(self, trade_id: int, direction: int, horizon: int = HORIZON) -> float | None:
        """Mid move in `direction` over `horizon` trades from `trade_id`, in round-trip costs (None past the end)."""
        end = self.mids.get(trade_id + horizon)
        return None if end is None else direction * (end - self.mids[trade_id]) / self.cost


def run(market: PlantedMarket, with_signals: bool = True) -> Run:
    """One ticker's market (the first), through the hierarchy when with_signals."""
    ticker = market.tickers[0]
    h = Hierarchy(config.load(), clock=lambda: 0) if with_signals else None
    mids: dict[int, float] = {}
    imbalance: dict[int, float] = {}
    signals: list[Signal] = []
    bid = ask = 0.0
    qb = qa = 1.0
    for ev in market.events():
        if ev.ticker != ticker:
            continue
        if isinstance(ev, Book):
            if ev.side == "bid":
                bid, qb = ev.levels[0][0], ev.levels[0][1]
            else:
                ask, qa = ev.levels[0][0], ev.levels[0][1]
        else:
            mids[ev.trade_id] = (bid + ask) / 2
            imbalance[ev.trade_id] = (qb - qa) / (qb + qa)
        if h is not None:
            signals.extend(o for o in h.on_event(ev) if isinstance(o, Signal))
    stream = market.streams[ticker]
    return Run(market, ticker, mids, imbalance, signals, stream.cost_ticks * stream.m.tick)
