from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from app.agents.base import NS, Ring, local_minute, session_day


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


def test_session_day_changes_at_nine_local_not_at_midnight():
    def ts(y, mo, d, h, mi):  # B3 local time -> ns UTC
        return int((datetime(y, mo, d, h, mi, tzinfo=timezone.utc) + timedelta(hours=3)).timestamp()) * NS
    assert session_day(ts(2024, 3, 4, 8, 59)) == session_day(ts(2024, 3, 3, 18, 0))
    assert session_day(ts(2024, 3, 4, 9, 0)) == session_day(ts(2024, 3, 4, 8, 59)) + 1
    assert session_day(ts(2024, 3, 4, 23, 59)) == session_day(ts(2024, 3, 4, 9, 0))


def test_local_minute_is_b3_time():
    t = int(datetime(2024, 3, 4, 13, 30, tzinfo=timezone.utc).timestamp()) * NS  # 10:30 local
    assert local_minute(t) == 10 * 60 + 30
