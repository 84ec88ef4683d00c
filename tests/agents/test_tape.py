import pytest

from app.agents.base import MarketState
from app.agents.tape import Tape
from app.config import TapeConfig
from tests.agents.make import Feed


def make(**kw):
    m = MarketState("WDOJ24", 0.5)
    tp = Tape(m, TapeConfig(**kw))
    return tp, Feed(tp, market=m)


def test_trade_rate_over_short_and_long_windows_and_acceleration():
    tp, f = make(rate_short=2, rate_long=4, min_samples=1)
    for _ in range(4):
        f.trade("buy", 5000.0, 1, dt=1.0)  # 1 trade/s
    f.trade("buy", 5000.0, 1, dt=0.25)
    f.trade("buy", 5000.0, 1, dt=0.25)  # last 2 trades in 0.5 s; last 4 in 2.5 s
    assert tp.rate_short == pytest.approx(2 / 0.5)
    assert tp.rate_long == pytest.approx(4 / 2.5)
    assert tp.accel == pytest.approx(4.0 / 1.6 - 1.0)


def test_size_z_scores_a_print_against_the_sizes_before_it():
    tp, f = make(size_window=100, min_samples=10)
    for q in [1, 2, 4] * 10:  # log sizes 0, ln2, ln4: mean ln2, sd ln2*sqrt(2/3)
        f.trade("buy", 5000.0, q)
    f.trade("sell", 5000.0, 64)
    import math
    sd = math.log(2) * math.sqrt(2 / 3)
    assert tp.size_z == pytest.approx((math.log(64) - math.log(2)) / sd)


def test_two_large_prints_on_one_side_within_the_window_signal_that_side():
    tp, f = make(size_window=100, min_samples=10, large_z=2.5, cluster_min=2, cluster_window=5)
    for k in range(30):
        f.trade("buy" if k % 2 else "sell", 5000.0, 1 + k % 3)
    assert not f.trade("sell", 4999.5, 60)  # one large print is not a cluster
    f.trade("buy", 5000.0, 1)
    sigs = f.trade("sell", 4999.5, 70)
    assert len(sigs) == 1 and sigs[0].direction == -1.0
    assert sigs[0].features["large_sell"] == 2.0


def test_large_prints_too_far_apart_or_on_opposite_sides_are_not_a_cluster():
    tp, f = make(size_window=100, min_samples=10, large_z=2.5, cluster_min=2, cluster_window=3)
    for k in range(30):
        f.trade("buy" if k % 2 else "sell", 5000.0, 1 + k % 3)
    out = f.trade("sell", 4999.5, 60) + f.trade("buy", 5000.0, 60)
    for _ in range(3):
        out += f.trade("buy", 5000.0, 1)
    out += f.trade("sell", 4999.5, 60)
    assert out == []


def test_same_side_run_and_recent_side_mean():
    tp, f = make()
    for side in ["sell", "buy", "buy", "buy"]:
        f.trade(side, 5000.0, 1)
    feats = tp.features()
    assert feats["same_side_run"] == 3.0
    assert feats["same_side_10"] == pytest.approx(0.5)
