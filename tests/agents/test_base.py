from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from app.agents.base import NS, MarketState, Ring, local_minute, session_day, session_span


def test_ring_keeps_the_last_values_and_their_running_sum():
    r = Ring(3)
    evicted = [r.push(x) for x in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert evicted == [0.0, 0.0, 0.0, 1.0, 2.0]
    assert r.values().tolist() == [3.0, 4.0, 5.0]
    assert r.total == 12.0
    assert r.mean() == 4.0
    assert r.ago(0) == 5.0 and r.ago(2) == 3.0


def test_ring_running_sum_stays_exact_over_many_wraps():
    r = Ring(7)
    xs = np.random.default_rng(0).normal(size=10_000) * 1e6
    for x in xs:
        r.push(float(x))
    assert r.total == pytest.approx(float(xs[-7:].sum()), rel=1e-12, abs=1e-6)


def test_ring_mean_before_full_uses_only_what_was_pushed():
    r = Ring(10)
    r.push(2.0)
    r.push(4.0)
    assert r.count == 2 and r.mean() == 3.0 and not r.full


def test_ring_ago_beyond_the_window_wraps_like_a_modulo():
    r = Ring(4)
    for x in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
        r.push(x)
    assert [r.ago(k) for k in (0, 3, 4, 7, 9, -1)] == [6.0, 3.0, 6.0, 3.0, 5.0, 3.0]


def utc(y, mo, d, h, mi=0):
    """ns of a UTC wall time: tests state instants in UTC so the expected local time is written out, not computed."""
    return int(datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp()) * NS


def test_session_day_changes_at_nine_local_not_at_midnight():
    def ts(y, mo, d, h, mi):  # B3 local time -> ns UTC (UTC-3 in 2024)
        return int((datetime(y, mo, d, h, mi, tzinfo=timezone.utc) + timedelta(hours=3)).timestamp()) * NS
    assert session_day(ts(2024, 3, 4, 8, 59)) == session_day(ts(2024, 3, 3, 18, 0))
    assert session_day(ts(2024, 3, 4, 9, 0)) == session_day(ts(2024, 3, 4, 8, 59)) + 1
    assert session_day(ts(2024, 3, 4, 23, 59)) == session_day(ts(2024, 3, 4, 9, 0))


def test_local_minute_is_b3_time():
    t = int(datetime(2024, 3, 4, 13, 30, tzinfo=timezone.utc).timestamp()) * NS  # 10:30 local
    assert local_minute(t) == 10 * 60 + 30


def test_dst_day_session_opens_at_eleven_utc_so_the_first_hour_is_that_days_session():
    # 2018-11-05: Brazil on daylight time since 2018-11-04 (UTC-2); 09:00 local = 11:00 UTC
    monday = session_day(utc(2018, 11, 5, 11, 0))
    assert monday == session_day(utc(2018, 11, 5, 11, 30)) == session_day(utc(2018, 11, 5, 20, 0))  # 09:30, 18:00
    assert session_day(utc(2018, 11, 5, 10, 59)) == monday - 1  # 08:59 local: still the night before the open
    assert monday == (datetime(2018, 11, 5).toordinal() - datetime(1970, 1, 1).toordinal())  # the local date


def test_dst_day_local_minute_is_utc_minus_two():
    assert local_minute(utc(2018, 11, 5, 11, 30)) == 9 * 60 + 30
    assert local_minute(utc(2018, 11, 5, 20, 25)) == 18 * 60 + 25
    assert local_minute(utc(2018, 11, 5, 1, 59)) == 23 * 60 + 59  # 23:59 of the 4th, the last minute before midnight


def test_the_open_moves_from_eleven_to_twelve_utc_when_dst_ends():
    # DST ended at local midnight 2019-02-17 (a Sunday): Friday the 15th is UTC-2, Monday the 18th UTC-3
    friday, monday = session_day(utc(2019, 2, 15, 11, 0)), session_day(utc(2019, 2, 18, 12, 0))
    assert monday == friday + 3
    assert session_day(utc(2019, 2, 15, 10, 59)) == friday - 1
    assert session_day(utc(2019, 2, 18, 11, 30)) == monday - 1  # 08:30 local on the 18th: before the open
    assert local_minute(utc(2019, 2, 15, 11, 0)) == 9 * 60
    assert local_minute(utc(2019, 2, 18, 12, 0)) == 9 * 60


def test_after_2019_b3_time_is_utc_minus_three_all_year():
    for month in (1, 7, 11):  # no DST since 2019: January and November are UTC-3 like July
        assert local_minute(utc(2023, month, 6, 12, 0)) == 9 * 60
        assert session_day(utc(2023, month, 6, 11, 59)) == session_day(utc(2023, month, 6, 12, 0)) - 1


def test_session_day_and_local_minute_agree_with_zoneinfo_across_both_2018_2019_transitions():
    from zoneinfo import ZoneInfo
    tz = ZoneInfo("America/Sao_Paulo")
    start = utc(2018, 11, 2, 0)
    # every 7 min 13 s for 5 days around the November switch, and the same around February's, in shuffled order
    # so the hour cache is hit, missed and revisited
    stamps = [start + k * 433 * NS for k in range(1000)] + [utc(2019, 2, 14, 0) + k * 433 * NS for k in range(1000)]
    stamps = stamps[::2] + stamps[1::2][::-1]
    for ts in stamps:
        local = datetime.fromtimestamp(ts // NS, tz)
        assert local_minute(ts) == local.hour * 60 + local.minute, local
        opened = local.hour >= 9
        assert session_day(ts) == local.date().toordinal() - datetime(1970, 1, 1).toordinal() - (0 if opened else 1)


# ------------------------------------------------------------------------- MarketState: spread read from the tape
def _trade(k, side, price):
    from app.events import Trade
    return Trade(ticker="WINZ18", exchange="F", ts=k, trade_id=k, price=price, qty=1, volume=0.0, buyer=1, seller=2,
                 aggressor=side, received_ns=0)


def _bouncing_tape(m, spread, n, move=0.0, seed=0):
    """Random aggressors, buys at the ask and sells at the bid; the quotes move by a tick on a fraction `move`."""
    rng = np.random.default_rng(seed)
    bid = 120_000.0
    for k in range(n):
        if rng.random() < move:
            bid += m.tick * (1 if rng.random() < 0.5 else -1)
        side = "buy" if rng.random() < 0.5 else "sell"
        m.on_trade(_trade(k, side, bid + spread if side == "buy" else bid))


def test_without_a_book_the_spread_is_the_floor_until_the_tape_bounces():
    m = MarketState("WINZ18", 5.0)
    m.on_trade(_trade(1, "buy", 120_000.0))
    m.on_trade(_trade(2, "buy", 120_005.0))  # same side: a sweep, not a bounce
    assert m.spread == 5.0 and m.flips == 0
    m.on_trade(_trade(3, "sell", 119_990.0))  # flipped: the first bounce seeds the estimate
    assert m.spread == 15.0 and m.mid == 119_990.0


@pytest.mark.parametrize("spread_ticks", [1, 2, 3])
def test_the_tape_spread_is_exact_when_quotes_stand_still(spread_ticks):
    m = MarketState("WINZ18", 5.0)
    _bouncing_tape(m, spread_ticks * 5.0, 500)
    assert m.spread == pytest.approx(spread_ticks * 5.0)


@pytest.mark.parametrize("spread_ticks", [2, 3])
def test_the_tape_spread_converges_to_the_true_bounce_when_quotes_move(spread_ticks):
    m = MarketState("WINZ18", 5.0)
    _bouncing_tape(m, spread_ticks * 5.0, 20_000, move=0.05, seed=4)
    assert m.bounce == pytest.approx(spread_ticks * 5.0, rel=0.1)
    assert m.spread == m.tape_spread == max(m.bounce, 5.0)


def test_the_tape_spread_is_floored_at_min_spread_ticks():
    m = MarketState("WINZ18", 5.0, min_spread_ticks=2.0)
    _bouncing_tape(m, 5.0, 200)
    assert m.bounce == pytest.approx(5.0) and m.spread == 10.0


def test_a_book_overrides_the_tape_spread_and_its_loss_restores_it():
    from app.events import Book
    m = MarketState("WINZ18", 5.0)
    _bouncing_tape(m, 10.0, 100)
    m.on_book(Book(ticker="WINZ18", ts=1, side="bid", levels=((120_000.0, 3, 1),), received_ns=0))
    m.on_book(Book(ticker="WINZ18", ts=1, side="ask", levels=((120_005.0, 3, 1),), received_ns=0))
    assert m.has_book and m.spread == 5.0
    m.on_book(Book(ticker="WINZ18", ts=2, side="ask", levels=(), received_ns=0))
    assert not m.has_book and m.spread == pytest.approx(10.0)


def test_session_span_holds_exactly_the_instants_of_its_session_day_across_dst_switches():
    # the hierarchy skips session_day for trades inside the span: its bounds must be session_day's own
    for first in (utc(2018, 11, 1, 0), utc(2019, 2, 13, 0), utc(2024, 3, 1, 0)):
        for k in range(8):
            day = session_day(first + k * 86_400 * NS)
            lo, hi = session_span(day)
            assert lo < hi
            assert session_day(lo - 1) == day - 1 and session_day(lo) == day
            assert session_day(hi - 1) == day and session_day(hi) == day + 1
            assert all(session_day(ts) == day for ts in range(lo, hi, 433 * NS))
