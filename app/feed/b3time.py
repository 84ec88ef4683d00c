"""B3 local time (America/Sao_Paulo) <-> ns since the epoch, UTC, always through the tz database.

Brasília time is not a fixed offset in history: Brazil observed daylight saving time (UTC-2) in southern summers
until 2019, so a 2018 November tape is UTC-2. Every conversion here goes through zoneinfo, never a constant.

zoneinfo costs microseconds per call, too much per trade, so both directions cache per hour:
- local -> UTC (`local_to_ns`): the UTC instant of each local hour; minutes, seconds and ms are added arithmetically.
- UTC -> local (`session_day`, `local_minute`): the UTC offset of each UTC hour. Every America/Sao_Paulo offset
  since 1914 is a whole number of hours and every transition falls on a whole UTC hour (clocks changed at local
  midnight), so one offset per UTC hour is exact. The hot path compares ts with the last hour asked about (two
  comparisons, ~40 ns over the old fixed offset) and falls back to a dict of hours, then to zoneinfo.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

B3_TZ = ZoneInfo("America/Sao_Paulo")
NS = 1_000_000_000
_NS = NS
MINUTE_NS = 60 * NS
HOUR_NS = 3600 * NS
DAY_NS = 86_400 * NS
SESSION_OPEN_NS = 9 * HOUR_NS  # regular session opens 09:00 local: the daily reset point
_CACHE_MAX = 200_000  # entries (hours): ~23 years of tape per cache generation; cleared, never grown without bound

_hour_base: dict[tuple[int, int, int, int], int] = {}
_offset_by_utc_hour: dict[int, int] = {}  # ts // HOUR_NS -> UTC offset of that hour in ns (-3 h or -2 h)


def hour_base_ns(year: int, month: int, day: int, hour: int) -> int:
    key = (year, month, day, hour)
    base = _hour_base.get(key)
    if base is None:
        dt = datetime(year, month, day, hour, tzinfo=B3_TZ)
        base = int(dt.astimezone(timezone.utc).timestamp()) * _NS
        if len(_hour_base) > _CACHE_MAX:
            _hour_base.clear()
        _hour_base[key] = base
    return base


def local_to_ns(year: int, month: int, day: int, hour: int, minute: int, second: int, ms: int = 0) -> int:
    return hour_base_ns(year, month, day, hour) + (minute * 60 + second) * _NS + ms * 1_000_000


def parse_dll_datetime(text: str) -> int:
    """'DD/MM/YYYY HH:MM:SS.ZZZ' (ms optional) -> ns UTC. Raises ValueError on anything else."""
    if len(text) < 19 or text[2] != "/" or text[5] != "/" or text[13] != ":" or text[16] != ":":
        raise ValueError(f"not a DD/MM/YYYY HH:MM:SS[.ZZZ] time: {text!r}")
    ms = int(text[20:23]) if len(text) >= 23 else 0
    return local_to_ns(int(text[6:10]), int(text[3:5]), int(text[0:2]), int(text[11:13]), int(text[14:16]),
                       int(text[17:19]), ms)


def ns_to_local(ts: int) -> datetime:
    """Aware B3 local datetime of `ts` (whole seconds floored, then µs: no float rounding across a second)."""
    sec, rem = divmod(ts, _NS)
    return datetime.fromtimestamp(sec, tz=B3_TZ).replace(microsecond=rem // 1000)


def _offset_of_utc_hour(hour: int) -> int:
    """Slow path: the tz database's UTC offset (ns) during UTC hour `hour` (= ts // HOUR_NS), then cached."""
    delta = datetime.fromtimestamp(hour * 3600, tz=B3_TZ).utcoffset()
    assert delta is not None  # ZoneInfo always answers for an aware datetime
    off = (delta.days * 86_400 + delta.seconds) * _NS
    if len(_offset_by_utc_hour) > _CACHE_MAX:
        _offset_by_utc_hour.clear()
    _offset_by_utc_hour[hour] = off
    return off


def _window(ts: int) -> tuple[int, int, int]:
    """(start, end, offset) of the UTC hour holding `ts`: the window the hot path reuses until ts leaves it."""
    global _last
    h = ts // HOUR_NS
    off = _offset_by_utc_hour.get(h)
    if off is None:
        off = _offset_of_utc_hour(h)
    _last = w = (h * HOUR_NS, h * HOUR_NS + HOUR_NS, off)
    return w


# The last UTC hour asked about: trades arrive in time order, so nearly every call is two comparisons against it.
# One tuple rebound at once, so a reader on another thread never sees the bounds of one hour with another's offset.
_last: tuple[int, int, int] = (0, 0, 0)


def utc_offset_ns(ts: int) -> int:
    """B3 local time minus UTC at `ts`, in ns (-3 h today, -2 h in the pre-2019 summers)."""
    lo, hi, off = _last
    return off if lo <= ts < hi else _window(ts)[2]


def session_day(ts: int) -> int:
    """Trading-day number of an exchange timestamp: the B3 local date, changing at 09:00 local (the opening) rather
    than at midnight, so a whole session (and the night before its open) is one day. Days since 1970-01-01."""
    lo, hi, off = _last  # utc_offset_ns inlined: this runs on every trade
    if not lo <= ts < hi:
        off = _window(ts)[2]
    return (ts + off - SESSION_OPEN_NS) // DAY_NS


def local_minute(ts: int) -> int:
    """Minutes since B3 local midnight."""
    lo, hi, off = _last
    if not lo <= ts < hi:
        off = _window(ts)[2]
    return ((ts + off) // MINUTE_NS) % 1440
