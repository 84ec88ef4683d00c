from datetime import date, datetime, timezone

import pytest

from app.feed.b3time import local_to_ns, ns_to_local, parse_dll_datetime, utc_offset_ns
from app.feed.process.dedupe import b3_day_end
from app.feed.tickers import current_contract, resolve


def test_dll_date_string_is_b3_local_time_converted_to_utc_ns():
    ts = parse_dll_datetime("06/10/2020 16:54:52.003")
    assert ts == 1602014092003000000  # 19:54:52.003 UTC (B3 was UTC-3)
    assert ns_to_local(ts).strftime("%d/%m/%Y %H:%M:%S") == "06/10/2020 16:54:52"


def test_dll_date_without_milliseconds_parses():
    assert parse_dll_datetime("06/10/2020 16:54:52") == 1602014092000000000


def test_dst_era_dates_use_the_offset_of_their_day():
    # 2018-12-03 Brazil was on daylight time (UTC-2)
    assert local_to_ns(2018, 12, 3, 10, 0, 0) == 1543838400 * 10**9


HOUR = 3600 * 10**9


@pytest.mark.parametrize("utc_hour, offset_h", [
    ((2018, 11, 4, 2), -3),  # 23:xx on the 3rd, the last standard-time hour
    ((2018, 11, 4, 3), -2),  # local midnight skipped: 01:00 daylight time
    ((2019, 2, 17, 1), -2),  # 23:xx on the 16th, first pass
    ((2019, 2, 17, 2), -3),  # 23:xx on the 16th again, standard time
    ((2023, 12, 1, 12), -3),  # no DST since 2019
])
def test_utc_offset_follows_the_tz_database_hour_by_hour(utc_hour, offset_h):
    y, m, d, h = utc_hour
    ts = int(datetime(y, m, d, h, tzinfo=timezone.utc).timestamp()) * 10**9
    assert utc_offset_ns(ts) == utc_offset_ns(ts + HOUR - 1) == offset_h * HOUR


def test_local_and_back_round_trip_on_dst_days():
    for args in [(2018, 11, 5, 9, 30, 0), (2019, 2, 15, 17, 59, 59), (2019, 2, 18, 9, 0, 0)]:
        local = ns_to_local(local_to_ns(*args, ms=999))
        assert (local.year, local.month, local.day, local.hour, local.minute, local.second) == args
        assert local.microsecond == 999_000


@pytest.mark.parametrize("utc_time, day_end_utc", [
    ((2018, 11, 3, 15), (2018, 11, 4, 3)),  # the 4th began at 01:00 daylight time = 03:00 UTC
    ((2018, 11, 5, 15), (2018, 11, 6, 2)),  # a DST day ends at 02:00 UTC
    ((2019, 2, 16, 23), (2019, 2, 17, 3)),  # the 16th had 25 hours
    ((2024, 3, 4, 15), (2024, 3, 5, 3)),
])
def test_dedupe_day_end_is_b3_midnight_through_the_tz_database(utc_time, day_end_utc):
    ts = int(datetime(*utc_time, tzinfo=timezone.utc).timestamp()) * 10**9
    assert b3_day_end(ts) == int(datetime(*day_end_utc, tzinfo=timezone.utc).timestamp()) * 10**9


def test_dedupe_day_end_of_the_last_nanosecond_of_a_day_is_that_days_midnight():
    midnight = int(datetime(2024, 3, 5, 3, tzinfo=timezone.utc).timestamp()) * 10**9
    assert b3_day_end(midnight - 1) == midnight and b3_day_end(midnight) == midnight + 24 * HOUR


@pytest.mark.parametrize("bad", ["2020-10-06 16:54:52", "06/10/2020", ""])
def test_malformed_dll_dates_raise(bad):
    with pytest.raises(ValueError):
        parse_dll_datetime(bad)


@pytest.mark.parametrize("root, today, expected", [
    ("WDO", date(2026, 11, 25), "WDOZ26"),
    ("WDO", date(2026, 12, 2), "WDOF27"),
    ("WIN", date(2026, 11, 25), "WINZ26"),
    ("WIN", date(2026, 12, 16), "WINZ26"),  # expiry day itself
    ("WIN", date(2026, 12, 17), "WING27"),
    ("WIN", date(2026, 1, 5), "WING26"),
])
def test_roots_resolve_to_the_liquid_contract(root, today, expected):
    assert current_contract(root, today) == expected


def test_full_codes_pass_through():
    assert resolve(["WDOZ26", "WINFUT", "PETR4"], date(2026, 11, 25)) == ["WDOZ26", "WINFUT", "PETR4"]
