import pytest

from app.agents.base import MarketState
from app.agents.footprint import Footprint
from app.config import FootprintConfig
from tests.agents.make import Feed


def make(**kw):
    m = MarketState("WDOJ24", 0.5)
    fp = Footprint(m, FootprintConfig(**kw))
    return fp, Feed(fp, market=m)


def test_volume_at_price_is_split_by_aggressor_per_bar():
    fp, f = make(bar_trades=10)
    f.trade("buy", 5000.5, 3)
    f.trade("sell", 5000.0, 2)
    f.trade("buy", 5000.5, 1)
    f.trade("direct", 5000.0, 9)  # a cross is volume at the price but neither side
    assert fp.bar() == {5000.0: (0.0, 2.0), 5000.5: (4.0, 0.0)}
    assert fp.bar_delta == 2.0


def test_three_stacked_buy_imbalances_signal_up():
    # ask volume at p against bid volume at p - 1 tick, >= 3x, at three consecutive levels
    fp, f = make(bar_trades=100, imbalance_ratio=3.0, stack_min=3, min_level_volume=1.0)
    out = []
    for bid, ask in [(5000.0, 5000.5), (5000.5, 5001.0), (5001.0, 5001.5)]:
        out += f.trade("sell", bid, 1)
        out += f.trade("buy", ask, 4)
    assert len(out) == 1 and out[0].direction == 1.0
    assert out[0].features["stack_buy"] == 3.0


def test_stack_breaks_where_the_diagonal_is_not_imbalanced():
    fp, f = make(bar_trades=100, imbalance_ratio=3.0, stack_min=3, min_level_volume=1.0)
    out = []
    for bid, ask, sell in [(5000.0, 5000.5, 1), (5000.5, 5001.0, 2), (5001.0, 5001.5, 1)]:
        out += f.trade("sell", bid, sell)
        out += f.trade("buy", ask, 4)
    # level 5001.5: 4 vs 1 ok; 5001.0: 4 vs 2 (sells at 5000.5) not >= 3x -> stack of 1
    assert out == [] and fp.stack_buy == 1


def test_thin_levels_do_not_count_as_imbalanced():
    fp, f = make(bar_trades=100, stack_min=3, min_level_volume=5.0)
    for _ in range(30):
        f.trade("buy", 5000.0, 1)  # mean trade size 1
    f.trade("sell", 5000.0, 1)
    out = []
    for ask in (5000.5, 5001.0, 5001.5):
        out += f.trade("buy", ask, 4)  # 4 < 5 mean sizes
    assert out == []


def test_sellers_absorbed_at_a_price_that_holds_signal_up():
    fp, f = make(bar_trades=100, absorb_share=0.35, absorb_min_trades=12, stack_min=9)
    f.trade("buy", 5000.5, 2)
    out = []
    for _ in range(12):
        out += f.trade("sell", 5000.0, 2)  # sellers keep hitting 5000.0, nothing trades lower
    assert len(out) == 1 and out[0].direction == 1.0 and out[0].features["absorption"] == 1.0


def test_no_absorption_when_price_gave_way_below():
    fp, f = make(bar_trades=100, absorb_share=0.35, absorb_min_trades=12, stack_min=9)
    f.trade("sell", 4999.5, 1)  # something already traded below
    out = []
    for _ in range(12):
        out += f.trade("sell", 5000.0, 2)
    assert out == []


def test_point_of_control_and_its_shift_between_bars():
    fp, f = make(bar_trades=4, stack_min=9, absorb_min_trades=99)
    for p, q in [(5000.0, 5), (5000.5, 1), (5000.0, 2), (5001.0, 1)]:
        f.trade("buy", p, q)
    assert fp.poc == 5000.0
    for p, q in [(5002.0, 5), (5002.0, 5), (5001.5, 1), (5001.0, 1)]:
        f.trade("buy", p, q)
    assert fp.poc == 5002.0 and fp.poc_shift_ticks == pytest.approx(4.0)
