"""The harder scenarios: reversed (the informative pattern's move goes against it) and latent (an informed trader's
flow leaves partial footprints ahead of its move); plus what every scenario shares: determinism and B3 time."""
import hashlib
from statistics import mean

import msgspec
import numpy as np
import pytest

from app.feed.b3time import local_to_ns
from app.market.generator import PlantedMarket
from app.market.scenarios import PATTERNS, SCENARIOS, ScenarioParams, schedule
from tests.market.flow import run


def digest(market: PlantedMarket) -> str:
    enc = msgspec.msgpack.Encoder()
    h = hashlib.sha256()
    for ev in market.events():
        h.update(enc.encode(ev))
    return h.hexdigest()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_gives_the_same_market_bit_for_bit_and_another_seed_another(scenario):
    p = ScenarioParams(trades=2500, regime_trades=(1000, 1500))
    assert digest(PlantedMarket(scenario, 11, params=p)) == digest(PlantedMarket(scenario, 11, params=p))
    assert digest(PlantedMarket(scenario, 11, params=p)) != digest(PlantedMarket(scenario, 12, params=p))


def test_reversed_has_the_planted_regimes_with_the_sign_flipped():
    p = ScenarioParams(trades=60_000)
    planted = schedule("planted", np.random.Generator(np.random.PCG64(3)), p)
    reversed_ = schedule("reversed", np.random.Generator(np.random.PCG64(3)), p)
    assert [(r.start, r.end, r.informative, r.edge, r.vol) for r in reversed_] == \
        [(r.start, r.end, r.informative, r.edge, r.vol) for r in planted]
    assert {r.sign for r in planted} == {1} and {r.sign for r in reversed_} == {-1}
    small = ScenarioParams(trades=1000)
    assert PlantedMarket("reversed", 3, params=small).direction("WDOJ24", 500) == -1
    assert PlantedMarket("planted", 3, params=small).direction("WDOJ24", 500) == 1


def test_reversed_informative_signals_are_followed_by_moves_against_them_worth_more_than_a_round_trip():
    p = ScenarioParams(trades=12_000, regime_trades=(12_000, 12_000), edge_range=(3.0, 3.0))
    r = run(PlantedMarket("reversed", 5, tickers=("WDO",), params=p))
    informative = r.market.informative(r.ticker, 1)
    moves = {a: [m for s in r.signals if s.agent == a and (m := r.forward(s.trade_id, int(s.direction))) is not None]
             for a in PATTERNS}
    assert len(moves[informative]) > 100
    assert mean(moves[informative]) < -1.5  # following it loses; fading it earns more than the round trip
    for other in PATTERNS:
        if other != informative:
            assert abs(mean(moves[other])) < 0.4, other


def test_latent_names_no_informative_specialist_and_the_informed_state_marks_each_episode():
    p = ScenarioParams(trades=8000, regime_trades=(3000, 4000))
    market = PlantedMarket("latent", 2, tickers=("WDO",), params=p)
    assert all(r.informative is None and r.sign == 1 for r in market.regimes["WDOJ24"])
    sum(1 for _ in market.events())
    episodes = market.streams["WDOJ24"].episodes
    lo, hi = p.latent.length
    assert len(episodes) > 40
    assert all(lo <= e.last - e.first + 1 <= hi for e in episodes)
    assert all(a.last < b.first for a, b in zip(episodes, episodes[1:]))
    assert {e.passive for e in episodes} == {True, False}
    e = episodes[3]
    assert market.informed("WDOJ24", e.first) == e.direction == market.informed("WDOJ24", e.last)
    assert market.informed("WDOJ24", e.first - 1) == 0 == market.informed("WDOJ24", e.last + 1)
    assert all(market.informative("WDOJ24", t) is None for t in (1, 4000, 8000))


def test_latent_move_follows_the_informed_flow_while_no_detector_alone_covers_a_round_trip():
    episode_moves: list[float] = []
    per_agent: dict[str, list[float]] = {a: [] for a in PATTERNS}
    lean_reader: list[float] = []
    for seed in (1, 2, 3):
        r = run(PlantedMarket("latent", seed, tickers=("WDO",), params=ScenarioParams(trades=15_000)))
        for e in r.market.streams[r.ticker].episodes:
            if e.last + 1 in r.mids:  # from the informed trader's first trade to just after the news
                episode_moves.append(r.forward(e.first, e.direction, e.last + 1 - e.first))
        for s in r.signals:
            m = r.forward(s.trade_id, int(s.direction))
            if m is not None:
                per_agent[s.agent].append(m)
        # a reader who waits for the top of book to lean the same way for 8 trades in a row, then follows it
        last = -100
        for t in range(9, len(r.mids) - 15):
            lean = [r.imbalance[t - j] for j in range(8)]
            d = 1 if min(lean) >= 0.3 else -1 if max(lean) <= -0.3 else 0
            if d and t - last > 20:
                last = t
                lean_reader.append(r.forward(t, d))
    assert mean(episode_moves) > 2.0  # costs: worth trading for whoever knows the state
    for agent, moves in per_agent.items():
        assert len(moves) > 300, agent  # they keep firing, on noise as on the flow
        assert mean(moves) < 0.6, agent  # none is worth a round trip on its own
    assert len(lean_reader) > 50 and mean(lean_reader) > 1.0  # reading the book well covers the round trip


def test_start_time_is_b3_local_through_the_tz_database_including_old_daylight_saving():
    first = next(iter(PlantedMarket("null", 1, tickers=("WDO",), params=ScenarioParams(trades=100)).events()))
    assert first.ts == local_to_ns(2024, 3, 4, 10, 0, 0) == 1_709_557_200 * 10**9  # 13:00 UTC (UTC-3)
    dst = ScenarioParams(trades=100, start_local="2018-11-05 10:00")  # Brazil was on UTC-2 then
    first = next(iter(PlantedMarket("null", 1, tickers=("WDO",), params=dst).events()))
    assert first.ts == 1_541_419_200 * 10**9  # 12:00 UTC


def test_a_bad_start_time_is_one_clear_error():
    with pytest.raises(ValueError, match="start_local '10:00 2024' is not 'YYYY-MM-DD HH:MM'"):
        PlantedMarket("null", 1, params=ScenarioParams(trades=100, start_local="10:00 2024"))
