import pytest

from app.agents.base import MarketState
from app.agents.orderflow import OrderFlow
from app.config import OrderFlowConfig
from tests.agents.make import Feed


def make(**kw):
    m = MarketState("WDOJ24", 0.5)
    of = OrderFlow(m, OrderFlowConfig(**kw))
    return of, Feed(of, market=m)


def test_delta_and_cumulative_delta_sign_by_aggressor_and_ignore_crosses():
    of, f = make()
    f.trade("buy", 5000.0, 3)
    f.trade("sell", 4999.5, 2)
    f.trade("direct", 5000.0, 10)
    f.trade("auction", 5000.0, 7)
    assert of.delta == 0.0
    assert of.cum_delta == 1.0
    f.trade("sell", 4999.5, 4)
    assert of.delta == -4.0 and of.cum_delta == -3.0


def test_ofi_over_each_window_is_signed_over_total_size():
    of, f = make(ofi_windows=[2, 4], ofi_trigger_window=4, ofi_trigger=1.0)
    for side, q in [("buy", 1), ("buy", 3), ("sell", 1), ("buy", 1), ("sell", 3)]:
        f.trade(side, 5000.0, q)
    # last 2: +1 -3 -> -2/4 ; last 4: +3 -1 +1 -3 -> 0/8
    assert of.ofi(2) == pytest.approx(-0.5)
    assert of.ofi(4) == pytest.approx(0.0)
    f.trade("buy", 5000.0, 2)  # last 4: -1 +1 -3 +2 = -1 over 7
    assert of.ofi(4) == pytest.approx(-1 / 7)


def test_cumulative_delta_resets_at_the_opening():
    of, f = make()
    f.trade("buy", 5000.0, 5)
    from app.agents.base import session_day
    day0 = session_day(f.ts)
    f.trade("buy", 5000.0, 5, dt=24 * 3600)  # same clock time next day
    assert session_day(f.ts) == day0 + 1
    of.reset_day()  # the hierarchy calls this at the first event of a new day
    f.trade("sell", 5000.0, 2)
    assert of.cum_delta == -2.0


def test_sweep_through_three_levels_signals_once_in_its_direction():
    of, f = make(sweep_min_trades=5, sweep_min_levels=3)
    f.trade("sell", 4999.5, 1)
    assert not f.trade("buy", 5000.0, 1)
    assert not f.trade("buy", 5000.5, 1)
    assert not f.trade("buy", 5000.5, 1)
    assert not f.trade("buy", 5001.0, 1)
    sigs = f.trade("buy", 5001.0, 1)  # 5 buys in a row, 3 price levels
    assert len(sigs) == 1
    s = sigs[0]
    assert s.agent == "orderflow" and s.direction == 1.0 and 0.0 < s.confidence <= 1.0
    assert s.features["sweep_levels"] == 3.0 and s.features["sweep_trades"] == 5.0
    assert not f.trade("buy", 5001.5, 1)  # the same run does not fire again


def test_a_long_run_at_one_price_is_not_a_sweep():
    of, f = make(sweep_min_trades=5, sweep_min_levels=3, ofi_trigger=1.0)
    out = [f.trade("sell", 4999.5, 1) for _ in range(10)]
    assert not any(out)
    assert of.run_len == 10 and of.run_levels == 1


def test_sell_sweep_counts_levels_downward():
    of, f = make(sweep_min_trades=3, sweep_min_levels=3)
    f.trade("sell", 5000.0, 1)
    f.trade("sell", 4999.5, 1)
    sigs = f.trade("sell", 4999.0, 1)
    assert sigs and sigs[0].direction == -1.0


def test_strong_ofi_alone_signals_and_rearms_only_after_fading():
    of, f = make(ofi_windows=[4], ofi_trigger_window=4, ofi_trigger=0.8, sweep_min_trades=100)
    sigs = []
    for _ in range(4):
        sigs += f.trade("buy", 5000.0, 1)
    assert len(sigs) == 1 and sigs[0].direction == 1.0 and sigs[0].confidence == pytest.approx(1.0)
    assert not f.trade("buy", 5000.0, 1)  # still above: no repeat
    for _ in range(2):
        f.trade("sell", 5000.0, 1)  # ofi 0 -> re-armed
    more = []
    for _ in range(4):
        more += f.trade("sell", 5000.0, 1)
    assert len(more) == 1 and more[0].direction == -1.0
