import pytest

from app.agents.base import MarketState
from app.agents.liquidity import Liquidity
from app.config import LiquidityConfig
from tests.agents.make import Feed


def make(**kw):
    m = MarketState("WDOJ24", 0.5)
    lq = Liquidity(m, LiquidityConfig(**kw))
    return lq, Feed(lq, market=m)


def test_top_imbalance_and_micro_price_from_the_touch():
    lq, f = make()
    f.quote(5000.0, 30, 5000.5, 10)
    assert lq.imbalance == pytest.approx((30 - 10) / 40)
    micro = (5000.5 * 30 + 5000.0 * 10) / 40
    assert lq.micro_mid_ticks == pytest.approx((micro - 5000.25) / 0.5)  # 0.25 ticks toward the ask


def test_imbalance_ewma_smooths_per_book_update():
    lq, f = make(imbalance_alpha=0.5)
    f.quote(5000.0, 10, 5000.5, 10)  # bid update: ask unknown yet; ask update: imbalance 0
    assert lq.imbalance_ewma == pytest.approx(0.0)
    f.book("bid", [(5000.0, 30)])  # imbalance 0.5 -> ewma 0.25
    assert lq.imbalance_ewma == pytest.approx(0.25)
    f.book("bid", [(5000.0, 30)])
    assert lq.imbalance_ewma == pytest.approx(0.375)


def test_depth_change_sums_size_arriving_and_leaving_over_the_window():
    lq, f = make(depth_window=2)
    f.book("bid", [(5000.0, 10), (4999.5, 20)])  # +30 from nothing
    f.book("bid", [(5000.0, 15), (4999.5, 20)])  # +5
    assert lq.features()["depth_chg_bid"] == 35.0
    f.book("bid", [(5000.0, 5), (4999.5, 20)])  # -10; the +30 leaves the window
    assert lq.features()["depth_chg_bid"] == -5.0


def test_heavy_bid_signals_up_once_until_the_imbalance_fades():
    lq, f = make(imbalance_alpha=1.0, imbalance_trigger=0.5)
    f.quote(5000.0, 80, 5000.5, 10)
    sigs = f.trade("buy", 5000.5, 1)
    assert len(sigs) == 1 and sigs[0].direction == 1.0 and sigs[0].confidence >= 0.7
    assert not f.trade("sell", 5000.0, 1)  # still heavy: no repeat
    f.quote(5000.0, 10, 5000.5, 11)  # faded below half the trigger: re-armed
    f.trade("buy", 5000.5, 1)
    f.quote(5000.0, 10, 5000.5, 90)
    sigs = f.trade("buy", 5000.5, 1)
    assert len(sigs) == 1 and sigs[0].direction == -1.0


def test_iceberg_bid_refilled_after_hits_that_took_the_display_signals_support():
    lq, f = make(refill_min=3, imbalance_trigger=0.99)
    f.quote(5000.0, 5, 5000.5, 5)
    out = []
    for _ in range(3):
        out += f.trade("sell", 5000.0, 5)  # takes all 5 shown at the bid ...
        f.book("bid", [(5000.0, 5)])  # ... and 5 more show up at the same price
    out += f.trade("buy", 5000.5, 1)
    assert lq.refills["bid"] == 3
    assert [s.direction for s in out] == [1.0]


def test_hits_smaller_than_the_display_are_not_refills_and_a_new_price_resets_the_count():
    lq, f = make(refill_min=2, imbalance_trigger=0.99)
    f.quote(5000.0, 20, 5000.5, 20)
    f.trade("sell", 5000.0, 3)
    f.book("bid", [(5000.0, 20)])
    assert lq.refills["bid"] == 0
    f.trade("sell", 5000.0, 20)
    f.book("bid", [(5000.0, 20)])
    assert lq.refills["bid"] == 1
    f.book("bid", [(4999.5, 20)])
    assert lq.refills["bid"] == 0
