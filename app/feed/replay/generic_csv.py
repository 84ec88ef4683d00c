"""Any per-trade CSV, read through a column mapping (`--columns` or `[replay.columns]`).

Roles: ts, or date + time; price; qty; optionally side, ticker, bid, ask, bid_qty, ask_qty, buyer, seller. A role
names a header cell (case and accents ignored) or a 1-based column number. Without a ticker column every row
belongs to `replay.ticker`. Times: ISO-8601 with or without zone (a naive time is B3 local, converted through
app/feed/b3time.py), dd/mm/yyyy HH:MM:SS[.fff], or epoch seconds / ms / µs / ns (told apart by magnitude). Sides:
Profit's words, B/S, buy/sell, 1/-1; without a side column the tick rule infers the aggressor and flags it.
bid/ask columns give top-of-book Book events (source "replay") whenever the quote changes.
"""
from __future__ import annotations

import calendar
import csv
import re
from typing import Any

from app.config import ConfigError
from app.events import InputEvent
from app.feed.b3time import local_to_ns
from app.feed.replay.profit_csv import RowError, _agent, _fold, _sniff_delimiter, decode_text
from app.feed.replay.rows import (TapeError, TapeReport, build_events, order_rows, parse_number, parse_price,
                                  parse_qty, parse_side)

ROLES = ("ts", "date", "time", "price", "qty", "side", "ticker", "bid", "ask", "bid_qty", "ask_qty", "buyer",
         "seller")
NS = 1_000_000_000
_EPOCH = re.compile(r"^(\d+)(?:\.(\d+))?$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
                  r"\s*(Z|[+-]\d{2}:?\d{2})?$")
_BR = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?$")


def parse_columns(text: str) -> dict[str, str]:
    """`ts=Time,price=Price,qty=Volume,side=Aggressor,ticker=Symbol` -> {role: column}; ConfigError (one line)
    for an unknown role, a pair without '=', or a mapping that lacks price, qty or a time."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        role, sep, column = part.partition("=")
        role, column = role.strip().lower(), column.strip().strip("'\"")
        if not sep or not column:
            raise ConfigError(f"--columns {text!r}: {part!r} is not role=COLUMN; write e.g. "
                              "ts=Time,price=Price,qty=Volume")
        if role not in ROLES:
            raise ConfigError(f"--columns {text!r}: unknown role {role!r}; roles are {', '.join(ROLES)}")
        out[role] = column
    check_columns(out, f"--columns {text!r}")
    return out


def check_columns(columns: dict[str, str], source: str) -> None:
    bad = sorted(set(columns) - set(ROLES))
    if bad:
        raise ConfigError(f"{source}: unknown role {bad[0]!r}; roles are {', '.join(ROLES)}")
    missing = [r for r in ("price", "qty") if r not in columns]
    if "ts" not in columns and not {"date", "time"} <= columns.keys():
        missing.append("ts (or date and time)")
    if missing:
        raise ConfigError(f"{source}: needs {', '.join(missing)}; e.g. ts=Time,price=Price,qty=Volume")


def parse_timestamp(text: str) -> int:
    """One time cell (or "date time") -> ns since the epoch, UTC."""
    s = text.strip()
    m = _EPOCH.match(s)
    if m:
        whole, frac = int(m.group(1)), m.group(2) or ""
        if whole < 10**11:  # seconds until year 5138
            return whole * NS + int((frac + "000000000")[:9])
        if frac:
            raise RowError(f"time {s!r}: only epoch seconds may have a fraction")
        if whole < 10**14:
            return whole * 1_000_000
        if whole < 10**17:
            return whole * 1000
        return whole
    m = _ISO.match(s)
    if m:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        zone = m.group(8)
    else:
        m = _BR.match(s)
        if not m:
            raise RowError(f"time {s!r} is not ISO-8601, dd/mm/yyyy HH:MM:SS[.fff] or epoch s/ms/ns")
        d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
        zone = None
    hh, mi, ss = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
    if hh > 23 or mi > 59 or ss > 59 or not 1 <= mo <= 12 or not 1 <= d <= 31:
        raise RowError(f"time {s!r} is out of range")
    frac_ns = int(((m.group(7) or "") + "000000000")[:9])
    try:
        if zone is None:
            return local_to_ns(y, mo, d, hh, mi, ss) + frac_ns
        if zone == "Z":
            offset = 0
        else:
            z = zone.replace(":", "")
            offset = (int(z[1:3]) * 3600 + int(z[3:5]) * 60) * (1 if z[0] == "+" else -1)
        calendar.weekday(y, mo, d)  # ValueError for a date that does not exist
        return (calendar.timegm((y, mo, d, hh, mi, ss)) - offset) * NS + frac_ns
    except ValueError:
        raise RowError(f"time {s!r}: date does not exist") from None


class _Layout:
    """Which cell holds which role, resolved against the header (or column numbers)."""

    def __init__(self, columns: dict[str, str], header: list[str] | None, where: str, shown: str = "") -> None:
        self.index: dict[str, int] = {}
        folded = [_fold(c) for c in header] if header is not None else []
        for role, col in columns.items():
            if col.isdigit():
                if int(col) < 1:
                    raise TapeError(f"{where}: column number {role}={col} must be 1 or more")
                self.index[role] = int(col) - 1
            elif header is None:
                raise TapeError(f"{where}: {role}={col!r} names a header cell but the file has no header; "
                                "give column numbers instead (e.g. price=3)")
            elif _fold(col) in folded:
                self.index[role] = folded.index(_fold(col))
            else:
                raise TapeError(f"{where}: column {col!r} ({role}) is not in the header "
                                f"{shown[:200]!r}; fix --columns / [replay.columns]")
        self.width = max(self.index.values()) + 1


def read_generic(data: bytes, name: str, columns: dict[str, str], ticker: str = "",
                 decimal: str = "auto") -> tuple[list[InputEvent], TapeReport]:
    """Events in time order and the report; TapeError when the mapping does not fit the file."""
    check_columns(columns, f"{name}: column mapping")
    report = TapeReport(path=name, format="generic_csv")
    text, report.encoding = decode_text(data)
    lines = text.splitlines()
    delim = _sniff_delimiter(lines)
    report.delimiter = delim
    comma = decimal == "," or (decimal == "auto" and delim == ";")
    if "ticker" not in columns and not ticker.strip():
        raise TapeError(f"{name}: no ticker column; add ticker=COLUMN to --columns or set ticker = \"WDOZ26\" "
                        "(the tape's contract) under [replay] in config.toml")
    fixed_ticker = ticker.strip().upper()

    def cells_of(line: str) -> list[str]:
        return next(csv.reader([line], delimiter=delim)) if '"' in line else line.split(delim)

    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        return [], report
    head = cells_of(lines[first])
    by_number = all(c.isdigit() for c in columns.values())
    has_header = not by_number
    if by_number:  # a header row is recognised by its price cell not being a number
        try:
            parse_number(head[int(columns["price"]) - 1], comma)
        except (RowError, IndexError):
            has_header = True
    layout = _Layout(columns, [c.strip() for c in head] if has_header else None, name, lines[first].strip())
    if has_header:
        report.header = lines[first].strip()
    ix = layout.index
    quotes = "bid" in ix or "ask" in ix
    rows: list[tuple[Any, ...]] = []
    start = first + 1 if has_header else first
    for lineno, line in enumerate(lines[start:], start + 1):
        if not line.strip():
            continue
        report.lines += 1
        cells = cells_of(line)
        try:
            rows.append(_row(cells, ix, layout.width, comma, fixed_ticker, quotes, report))
        except (RowError, ValueError, IndexError) as err:
            report.skip(lineno, str(err) or type(err).__name__, line)
    order_rows(rows, report)
    return build_events(rows, report), report


def _row(cells: list[str], ix: dict[str, int], width: int, comma: bool, fixed_ticker: str, quotes: bool,
         report: TapeReport) -> tuple[Any, ...]:
    if len(cells) < width:
        raise RowError(f"{len(cells)} columns, expected {width}")
    if "ts" in ix:
        ts = parse_timestamp(cells[ix["ts"]])
    else:
        ts = parse_timestamp(f"{cells[ix['date']].strip()} {cells[ix['time']].strip()}")
    tk = cells[ix["ticker"]].strip().upper() if "ticker" in ix else fixed_ticker
    if not tk:
        raise RowError("empty ticker")
    price = parse_price(cells[ix["price"]], comma)
    qty = parse_qty(cells[ix["qty"]], comma)
    # an empty side cell says nothing, like a missing column: the tick rule infers it (flagged on the Trade)
    side = parse_side(cells[ix["side"]], report) if "side" in ix and cells[ix["side"]].strip() else ""
    buyer = _agent(cells[ix["buyer"]]) if "buyer" in ix else 0
    seller = _agent(cells[ix["seller"]]) if "seller" in ix else 0
    if not quotes:
        return ts, tk, 0, price, qty, buyer, seller, side
    return (ts, tk, 0, price, qty, buyer, seller, side, _opt(cells, ix, "bid", comma),
            _opt(cells, ix, "ask", comma), int(_opt(cells, ix, "bid_qty", comma)),
            int(_opt(cells, ix, "ask_qty", comma)))


def _opt(cells: list[str], ix: dict[str, int], role: str, comma: bool) -> float:
    """An optional quote cell: 0 when the role is unmapped or the cell empty (no quote is not an error)."""
    i = ix.get(role)
    if i is None or not cells[i].strip():
        return 0.0
    value = parse_number(cells[i], comma)
    if value < 0:
        raise RowError(f"{role} {cells[i].strip()!r} is negative")
    return value
