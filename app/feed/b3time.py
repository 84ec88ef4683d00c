"""B3 local time (America/Sao_Paulo) -> ns since the epoch, UTC.

The DLL reports local exchange time (strings and SYSTEMTIME). Converting through zoneinfo per trade would cost
microseconds, so the UTC instant of each local hour is cached; minutes, seconds and ms are added arithmetically.
Caching per hour keeps historical DST transitions (Brazil had DST until 2019) correct.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

B3_TZ = ZoneInfo("America/Sao_Paulo")
_NS = 1_000_000_000
_hour_base: dict[tuple[int, int, int, int], int] = {}


def hour_base_ns(year: int, month: int, day: int, hour: int) -> int:
    key = (year, month, day, hour)
    base = _hour_base.get(key)
    if base is None:
        dt = datetime(year, month, day, hour, tzinfo=B3_TZ)
        base = int(dt.astimezone(timezone.utc).timestamp()) * _NS
        if len(_hour_base) > 100_000:
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
    return datetime.fromtimestamp(ts / _NS, tz=B3_TZ)
