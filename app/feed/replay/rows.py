"""What the CSV-like tape readers share: the report, the number/side parsing, the tick rule, rows -> events.

A reader turns each line into a row tuple (ts, ticker, trade_id, price, qty, buyer, seller, aggressor[, bid, ask,
bid_qty, ask_qty]) where aggressor "" means "the file does not say" (the tick rule then infers it). trade_id is
the exchange's number when the file has one (it orders trades of one timestamp); the Trade events are numbered
1..N per ticker in time order, so the exchange's gaps (cancelled trades, ids stepping by 10) are not taken for
missed trades by the continuity check. `build_events` orders rows by time, infers missing aggressors and builds the
Trade (and, with quotes, Book) events. Nothing is invented silently: inferred aggressors are flagged on the Trade
(`aggressor_inferred`) and counted in the report.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

from app.events import Book, InputEvent, Trade
from app.feed.base import FeedError
from app.feed.replay.profit_csv import FUTURES_ROOTS, MAX_REPORTED, RowError, _fold, record_skip

log = logging.getLogger("app.feed.replay")

_THOUSANDS_DOT = re.compile(r"^-?\d{1,3}(\.\d{3})+$")
_THOUSANDS_COMMA = re.compile(r"^-?\d{1,3}(,\d{3})+$")

class TapeError(FeedError):
    """A tape cannot be read: the one-line message names the file, what is wrong and how to fix it."""


class NoTradesRead(TapeError):
    """A tape was read to the end and yielded no trade."""


# Profit's words plus the short and numeric forms other exporters write
SIDES = {
    "comprador": "buy", "compra": "buy", "buyer": "buy", "buy": "buy", "b": "buy", "c": "buy", "1": "buy",
    "+1": "buy", "vendedor": "sell", "venda": "sell", "seller": "sell", "sell": "sell", "s": "sell",
    "v": "sell", "-1": "sell", "direto": "direct", "direct": "direct", "cross": "direct",
    "d": "direct", "leilao": "auction", "auction": "auction", "l": "auction", "": "unknown", "-": "unknown",
    "0": "unknown", "indefinido": "unknown", "unknown": "unknown", "rlp": "unknown",
}


@dataclass
class TapeReport:
    """What a reader read and what it had to skip (the `report` of a Tape)."""

    path: str
    format: str
    encoding: str = ""
    delimiter: str = ""
    header: str = ""  # the header line as read ("" = none)
    lines: int = 0  # data rows seen (blank lines and the header excluded)
    skipped: int = 0
    skipped_lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, why), first 100
    trades: dict[str, int] = field(default_factory=dict)  # per ticker
    books: int = 0
    inferred_aggressors: int = 0  # trades whose side the tick rule inferred (flagged on the Trade)
    unknown_aggressors: dict[str, int] = field(default_factory=dict)  # unrecognised side words -> count
    cancelled: int = 0  # trades the file itself cancels (B3 update action "delete")
    newest_first: bool = False

    def skip(self, lineno: int, why: str, line: str) -> None:
        record_skip(self, lineno, why, line)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "encoding": self.encoding, "delimiter": self.delimiter,
                "header": self.header, "newest_first": self.newest_first, "lines": self.lines,
                "skipped": self.skipped, "skipped_lines": [f"{n}: {why}" for n, why in self.skipped_lines[:20]],
                "trades": dict(self.trades), "books": self.books, "inferred_aggressors": self.inferred_aggressors,
                "unknown_aggressors": dict(self.unknown_aggressors), "cancelled": self.cancelled}


def parse_number(text: str, comma_decimal: bool) -> float:
    """A finite number in pt-BR ("1.234,50") or en ("1,234.50") notation; inf/nan are malformed, not data."""
    s = text.strip().replace("\u00a0", "").replace(" ", "")
    if not s:
        raise RowError("empty number")
    if comma_decimal:
        if "," in s or _THOUSANDS_DOT.match(s):
            s = s.replace(".", "").replace(",", ".")
    elif "," in s:
        s = s.replace(",", "") if ("." in s or _THOUSANDS_COMMA.match(s)) else s.replace(",", ".")
    try:
        value = float(s)
    except ValueError:
        raise RowError(f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(f"{text.strip()!r} is not a finite number")
    return value


def parse_price(text: str, comma_decimal: bool) -> float:
    price = parse_number(text, comma_decimal)
    if price <= 0:
        raise RowError(f"price {text.strip()!r} is not positive")
    return price


def parse_qty(text: str, comma_decimal: bool) -> int:
    q = parse_number(text, comma_decimal)
    n = int(q)
    if n != q or n <= 0:
        raise RowError(f"quantity {text.strip()!r} is not a positive whole number")
    return n


def parse_side(text: str, report: TapeReport) -> str:
    word = _fold(text)
    side = SIDES.get(word)
    if side is None:
        raw = text.strip()
        if raw not in report.unknown_aggressors:
            log.warning("%s: aggressor word %r not recognised; stored as unknown", report.path, raw)
        report.unknown_aggressors[raw] = report.unknown_aggressors.get(raw, 0) + 1
        return "unknown"
    return side


def tick_rule(rows: list[tuple[Any, ...]]) -> list[str]:
    """Lee-Ready tick rule per ticker over rows in time order: a trade above the ticker's previous price is a buy,
    below a sell, at the same price the previous inferred side; the first trade of a ticker (and zero ticks before
    any move) stay "" (unknown). Returns one side per row."""
    last_price: dict[str, float] = {}
    last_side: dict[str, str] = {}
    out = []
    for row in rows:
        ticker, price = row[1], row[3]
        prev = last_price.get(ticker)
        if prev is None:
            side = ""
        elif price > prev:
            side = "buy"
        elif price < prev:
            side = "sell"
        else:
            side = last_side.get(ticker, "")
        last_price[ticker] = price
        if side:
            last_side[ticker] = side
        out.append(side)
    return out


def order_rows(rows: list[tuple[Any, ...]], report: TapeReport, by_id: bool = False) -> None:
    """Time order in place. A newest-first file (Profit's way) is reversed first, so rows of one timestamp keep
    their true order; `by_id` breaks ties by the exchange's trade id (B3 numbers trades in execution order)."""
    if not by_id and len(rows) > 1 and rows[0][0] > rows[-1][0]:
        report.newest_first = True
        rows.reverse()
    rows.sort(key=(lambda r: (r[0], r[2])) if by_id else (lambda r: r[0]))


def build_events(rows: list[tuple[Any, ...]], report: TapeReport) -> list[InputEvent]:
    """Rows in time order -> Trades (and Books from quote columns), tick rule for rows without an aggressor."""
    need = any(not r[7] for r in rows)
    inferred = tick_rule(rows) if need else []
    counters: dict[str, int] = {}
    quotes: dict[str, tuple[float, float, int, int]] = {}
    events: list[InputEvent] = []
    n_inferred = 0
    books = 0
    for i, row in enumerate(rows):
        ts, ticker, _tid, price, qty, buyer, seller, aggressor = row[:8]
        if len(row) > 8:
            quote = row[8:12]
            if quote[0] > 0 or quote[1] > 0:
                prev = quotes.get(ticker)
                if prev != quote:
                    quotes[ticker] = quote
                    # the quote prevailing at this trade, published before it so the book is there when it arrives
                    if quote[0] > 0 and (prev is None or prev[0] != quote[0] or prev[2] != quote[2]):
                        events.append(Book(ticker=ticker, ts=ts, side="bid", levels=((quote[0], quote[2], 0),),
                                           received_ns=0, source="replay"))
                        books += 1
                    if quote[1] > 0 and (prev is None or prev[1] != quote[1] or prev[3] != quote[3]):
                        events.append(Book(ticker=ticker, ts=ts, side="ask", levels=((quote[1], quote[3], 0),),
                                           received_ns=0, source="replay"))
                        books += 1
        n = counters.get(ticker, 0) + 1
        counters[ticker] = n
        flag = False
        if not aggressor:
            aggressor = inferred[i] or "unknown"
            flag = aggressor != "unknown"
            n_inferred += flag
        mult = FUTURES_ROOTS.get(ticker[:3])
        events.append(Trade(ticker=ticker, exchange="F" if mult is not None else "B", ts=ts,
                            trade_id=n, price=price, qty=qty,
                            volume=price * qty * (mult if mult is not None else 1.0), buyer=buyer, seller=seller,
                            aggressor=aggressor, received_ns=0, aggressor_inferred=flag))  # type: ignore[arg-type]
    report.trades = counters
    report.inferred_aggressors = n_inferred
    report.books = books
    if report.skipped > MAX_REPORTED:
        log.warning("%s: %d malformed rows skipped in all (first lines: %s)", report.path, report.skipped,
                    ", ".join(str(n) for n, _ in report.skipped_lines[:10]))
    return events
