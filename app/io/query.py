"""Time-range reads of the Valkey streams, for notebooks and `python -m app query`.

    from app.io.query import query
    rows = query("redis://127.0.0.1:6379/0", "WDOZ26", "trade", "2026-11-20 10:00", "2026-11-20 10:05")
    rows = query("embedded", "WDOZ26", "trade", "10:00", "10:05", data_dir="data")   # the default store

Times: None (open end), datetime (naive = B3 local time, America/Sao_Paulo), "YYYY-MM-DD HH:MM[:SS[.fff]]" or
"DD/MM/YYYY HH:MM[:SS]" (B3 local unless an offset is given), "HH:MM[:SS]" (today, B3 local), or a number of
seconds / ms / ns since the epoch. Both ends are inclusive, at millisecond resolution of the stream ids (the
exchange time, kept non-decreasing per stream). Rows are the event's fields plus "type" and "id".
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from datetime import date, datetime, time as dtime
from pathlib import Path
from typing import Any, Iterable

from app.io import codec
from app.io.valkey_server import ValkeyServer, normalize_url
from app.io.valkey_writer import KINDS, NO_TICKER_KINDS, stream_key

B3_TZ_NAME = "America/Sao_Paulo"
_PAGE = 10_000


def _tz() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(B3_TZ_NAME)


def to_ms(value: Any) -> int | None:
    """A time bound in any accepted form -> ms since the epoch (None stays None)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        v = float(value)
        if v > 1e17:
            return int(value) // 1_000_000  # ns
        if v > 1e11:
            return int(value)  # ms
        return int(v * 1000)  # s
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=_tz())
        return int(dt.timestamp() * 1000)
    if isinstance(value, date):
        return to_ms(datetime.combine(value, dtime()))
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return to_ms(int(text))
        for fmt in ("%d/%m/%Y %H:%M:%S.%f", "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y"):
            try:
                return to_ms(datetime.strptime(text, fmt))
            except ValueError:
                pass
        for fmt in ("%H:%M:%S.%f", "%H:%M:%S", "%H:%M"):
            try:
                t = datetime.strptime(text, fmt).time()
            except ValueError:
                continue
            return to_ms(datetime.combine(datetime.now(_tz()).date(), t))
        try:
            return to_ms(datetime.fromisoformat(text))
        except ValueError:
            pass
    raise ValueError(f"not a time: {value!r} (use 'YYYY-MM-DD HH:MM[:SS]', 'HH:MM', or epoch seconds/ms/ns)")


def _key(ticker: str | None, kind: str, prefix: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    if kind not in NO_TICKER_KINDS and not ticker:
        raise ValueError(f"kind {kind!r} needs a ticker (e.g. WDOZ26)")
    return stream_key(prefix, kind, ticker)


def _rows(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    out = []
    for sid, fields in entries:
        payload = fields.get(b"d")
        row = codec.decode_raw(payload) if payload is not None else {}
        row.pop("v", None)
        row["id"] = sid.decode() if isinstance(sid, bytes) else sid
        out.append(row)
    return out


def _bounds(start: Any, end: Any) -> tuple[str, str]:
    lo, hi = to_ms(start), to_ms(end)
    if lo is not None and hi is not None and hi < lo:
        raise ValueError("the end of the range is before its start")
    return ("-" if lo is None else str(lo)), ("+" if hi is None else str(hi))


def _next_after(sid: bytes) -> str:
    return "(" + sid.decode()  # exclusive start (Valkey >= 6.2)


async def aquery(url: str, ticker: str | None, kind: str, start: Any = None, end: Any = None,
                 limit: int | None = None, *, prefix: str = "hmarl", last: bool = False,
                 data_dir: str | Path = "data") -> list[dict[str, Any]]:
    """Async query(); `url` may be "embedded" (the store under `data_dir`, started for the query if needed)."""
    if url == "embedded":
        from app.config import ValkeyConfig

        server = ValkeyServer(ValkeyConfig(prefix=prefix), data_dir)
        real = await server.start()
        try:
            return await aquery(real, ticker, kind, start, end, limit, prefix=prefix, last=last)
        finally:
            await server.stop()
    import redis.asyncio as redis

    key = _key(ticker, kind, prefix)
    lo, hi = _bounds(start, end)
    client = redis.from_url(normalize_url(url), socket_timeout=30)
    try:
        if last:
            got = await client.xrevrange(key, hi, lo, count=limit or None)
            return _rows(reversed(got))
        rows: list[dict[str, Any]] = []
        cursor = lo
        while True:
            want = _PAGE if limit is None else min(_PAGE, limit - len(rows))
            if want <= 0:
                break
            page = await client.xrange(key, cursor, hi, count=want)
            rows.extend(_rows(page))
            if len(page) < want:
                break
            cursor = _next_after(page[-1][0])
        return rows
    finally:
        await client.aclose()


def _blocking(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even inside a notebook whose loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def query(url: str, ticker: str | None, kind: str, start: Any = None, end: Any = None, limit: int | None = None,
          *, prefix: str = "hmarl", last: bool = False, data_dir: str | Path = "data") -> list[dict[str, Any]]:
    """Entries of stream <prefix>:<kind>:<ticker> between start and end (inclusive), oldest first.
    `limit` caps the rows; `last=True` takes the newest `limit` rows of the range instead of the oldest."""
    return _blocking(aquery(url, ticker, kind, start, end, limit, prefix=prefix, last=last, data_dir=data_dir))


async def astreams(url: str, *, prefix: str = "hmarl") -> list[dict[str, Any]]:
    """Every hmarl stream: key, kind, ticker, length, first and last id (and `late_run` for a late stream)."""
    import redis.asyncio as redis

    client = redis.from_url(normalize_url(url), socket_timeout=30)
    out: list[dict[str, Any]] = []
    try:
        async for raw in client.scan_iter(match=f"{prefix}:*", count=1000, _type="stream"):
            key = raw.decode()
            rest = key[len(prefix) + 1:]
            late_run = None
            if rest.startswith("late:"):  # an earlier run's entries older than the stream (app.io.valkey_batch)
                late_run, _, rest = rest[5:].partition(":")
            parts = rest.split(":", 1)
            if parts[0] not in KINDS:
                continue
            info = await client.xinfo_stream(key)
            first, last_ = info.get("first-entry"), info.get("last-entry")
            row = {"key": key, "kind": parts[0], "ticker": parts[1] if len(parts) > 1 else None,
                   "length": info.get("length", 0),
                   "first_id": first[0].decode() if first else None,
                   "last_id": last_[0].decode() if last_ else None}
            if late_run:
                row["late_run"] = late_run
            out.append(row)
    finally:
        await client.aclose()
    return sorted(out, key=lambda r: r["key"])


async def aruns(url: str, *, prefix: str = "hmarl", limit: int = 20) -> list[dict[str, Any]]:
    """The latest run summaries, newest first."""
    import msgspec
    import redis.asyncio as redis

    client = redis.from_url(normalize_url(url), socket_timeout=30)
    try:
        ids = await client.zrevrange(f"{prefix}:runs", 0, limit - 1, withscores=True)
        out = []
        for run_id, score in ids:
            raw = await client.hgetall(f"{prefix}:run:{run_id.decode()}")
            row = {"run_id": run_id.decode(), "ended": score}
            row.update({k.decode(): msgspec.json.decode(v) for k, v in raw.items()})
            out.append(row)
        return out
    finally:
        await client.aclose()
