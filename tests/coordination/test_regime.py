from app.agents.base import MarketState
from app.config import RegimeConfig
from app.coordination.regime import RegimeClassifier
from tests.agents.make import NS, T0


def run(mids: list[float], cfg: RegimeConfig, ts: int = T0) -> RegimeClassifier:
    m = MarketState("WDOJ24", 0.5)
    rc = RegimeClassifier(m, cfg)
    for k, mid in enumerate(mids):
        m.mid = mid
        rc.on_trade(ts + k * NS)
    return rc


def test_quiet_market_is_low_volatility_range():
    rc = run([5000.0] * 50, RegimeConfig(window=20, vol_edges=[0.1, 0.3]))
    assert rc.label == "lo.range.open"


def test_one_tick_every_trade_in_one_direction_is_high_volatility_trend():
    rc = run([5000.0 + 0.5 * k for k in range(50)], RegimeConfig(window=20, vol_edges=[0.1, 0.3]))
    assert rc.vol == 1.0 and rc.efficiency == 1.0
    assert rc.label == "hi.trend.open"


def test_back_and_forth_is_volatile_but_not_a_trend():
    rc = run([5000.0 + 0.5 * (k % 2) for k in range(50)], RegimeConfig(window=20, vol_edges=[0.1, 0.3]))
    assert rc.efficiency == 0.0 and rc.label.startswith("hi.range")


def test_middle_volatility_bucket_measures_ticks_per_trade_over_the_window():
    mids = [5000.0 + 0.5 * (k // 5) for k in range(100)]  # one tick every 5 trades
    rc = run(mids, RegimeConfig(window=20, vol_edges=[0.1, 0.3]))
    assert abs(rc.vol - 0.2) < 1e-9 and rc.label.startswith("mid.")


def test_time_of_day_buckets_follow_b3_local_time():
    cfg = RegimeConfig(window=5, tod_edges=["10:30", "16:00"])
    assert run([5000.0] * 3, cfg, ts=T0).label.endswith(".open")  # 10:00
    assert run([5000.0] * 3, cfg, ts=T0 + 3600 * NS).label.endswith(".mid")  # 11:00
    assert run([5000.0] * 3, cfg, ts=T0 + 7 * 3600 * NS).label.endswith(".close")  # 17:00
