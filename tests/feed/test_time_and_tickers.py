from datetime import date

import pytest

from app.feed.b3time import local_to_ns, ns_to_local, parse_dll_datetime
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
