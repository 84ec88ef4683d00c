import hashlib

import msgspec
import numpy as np

from app import config
from app.events import Book, Signal, Trade
from app.hierarchy import Hierarchy
from app.market.generator import PlantedMarket
from app.market.scenarios import PATTERNS, ScenarioParams, schedule


def digest(market: PlantedMarket) -> str:
    enc = msgspec.msgpack.Encoder()
    h = hashlib.sha256()
    for ev in market.events():
        h.update(enc.encode(ev))
    return h.hexdigest()


def test_same_seed_same_market_other_seed_other_market():
    p = ScenarioParams(trades=3000)
    assert digest(PlantedMarket("planted", 1, params=p)) == digest(PlantedMarket("planted", 1, params=p))
    assert digest(PlantedMarket("planted", 1, params=p)) != digest(PlantedMarket("planted", 2, params=p))


def test_null_has_no_informative_specialist_and_planted_exactly_one_per_regime():
    p = ScenarioParams(trades=50_000, regime_trades=(5000, 8000))
    rng = np.random.Generator(np.random.PCG64(0))
    assert all(r.informative is None for r in schedule("null", rng, p))
    planted = schedule("planted", rng, p)
    assert all(r.informative in PATTERNS for r in planted)
    assert all(a.informative != b.informative for a, b in zip(planted, planted[1:]))
    assert planted[0].start == 1 and planted[-1].end == p.trades
    assert all(a.end + 1 == b.start for a, b in zip(planted, planted[1:]))
    assert all(p.edge_range[0] <= r.edge <= p.edge_range[1] for r in planted)
    mixed = schedule("mixed", np.random.Generator(np.random.PCG64(1)), ScenarioParams(trades=200_000))
    assert None in {r.informative for r in mixed} and len({r.informative for r in mixed}) > 2


def test_events_come_in_time_order_with_increasing_trade_ids_per_ticker():
    market = PlantedMarket("mixed", 3, params=ScenarioParams(trades=3000))
    last_ts = 0
    last_id = {}
    for ev in market.events():
        assert ev.ts >= last_ts
        last_ts = ev.ts
        if isinstance(ev, Trade):
            assert ev.trade_id == last_id.get(ev.ticker, 0) + 1
            last_id[ev.ticker] = ev.trade_id
            assert ev.aggressor in ("buy", "sell")
        else:
            assert isinstance(ev, Book) and ev.levels[0][1] >= 1
    assert last_id == {"WDOJ24": 3000, "WINJ24": 3000}


def test_each_pattern_triggers_its_own_specialist_and_rarely_another():
    market = PlantedMarket("null", 4, tickers=("WDO",), params=ScenarioParams(trades=12_000))
    h = Hierarchy(config.load(), clock=lambda: 0)
    signals = [o for ev in market.events() for o in h.on_event(ev) if isinstance(o, Signal)]
    painted = market.streams["WDOJ24"].painted
    hits = {(a, p): 0 for a in PATTERNS for p in PATTERNS}
    k = 0
    for s in signals:
        while k + 1 < len(painted) and painted[k + 1][0] <= s.trade_id:
            k += 1
        first, last, kind, d = painted[k]
        if first <= s.trade_id <= last and s.direction == d:
            hits[(s.agent, kind)] += 1
    count = {p: sum(1 for x in painted if x[2] == p) for p in PATTERNS}
    for agent in PATTERNS:
        assert hits[(agent, agent)] >= 0.7 * count[agent], agent
        for other in PATTERNS:
            if other != agent:
                assert hits[(agent, other)] <= 0.05 * count[other], (agent, other)


def _move_after(market: PlantedMarket, ticker: str, informative_only: bool) -> float:
    """Mean mid move (ticks) in the pattern's direction over 15 trades after each pattern's last trade."""
    mids = {}
    bid = ask = 0.0
    n = 0
    for ev in market.events():
        if isinstance(ev, Book):
            if ev.side == "bid":
                bid = ev.levels[0][0]
            else:
                ask = ev.levels[0][0]
        else:
            n = ev.trade_id
        mids[n] = (bid + ask) / 2
    stream = market.streams[ticker]
    moves = []
    for first, last, kind, d in stream.painted:
        if last + 15 in mids and (not informative_only or market.informative(ticker, last) == kind):
            moves.append(d * (mids[last + 15] - mids[last]) / stream.m.tick)
    return float(np.mean(moves))


def test_planted_patterns_are_followed_by_moves_worth_their_edge_and_null_ones_are_not():
    p = ScenarioParams(trades=20_000, regime_trades=(20_000, 20_000), edge_range=(3.0, 3.0))
    planted = PlantedMarket("planted", 5, tickers=("WDO",), params=p)
    assert _move_after(planted, "WDOJ24", informative_only=True) > 0.7 * 3.0 * 1.4  # 3 round trips of 1.4 ticks
    null = PlantedMarket("null", 5, tickers=("WDO",), params=p)
    assert abs(_move_after(null, "WDOJ24", informative_only=False)) < 0.5
