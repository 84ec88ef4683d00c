"""Tapes -> one event list per ticker and B3 session day, days in time order.

Rules (documented in the command's help and the report):
- A trade goes to the session day of its exchange time (app.agents.base.session_day, which changes at 09:00). A
  Book goes with the next trade of its ticker in the same source: it is the market that trade meets (so the DLL's
  initial snapshot, stamped 0, and pre-open books at 08:59 join the session they precede); books after a ticker's
  last trade close its last day.
- One source for a (ticker, day): its events are kept in the source's own order (a journal's arrival order is what
  the live pipeline saw; a Profit CSV is already restored to time order by its parser).
- Several sources for a (ticker, day), e.g. overlapping exports: they are merged by exchange time with a stable sort
  (ties keep the order of the sources as given, then each source's own order), and exact duplicates are dropped.
  An exact duplicate is a trade with the same ts, price, qty, aggressor, buyer and seller AND the same position
  among such identical trades in its own source: the k-th identical print of a second in one export matches the k-th
  in another, while two genuine identical prints within one source both stay. Books are deduplicated the same way
  on (ts, side, levels).
- trade_id: kept when the day's trades are already strictly increasing in it (a single journal: the DLL's numbers);
  otherwise (merged sources whose ids collide, CSVs numbered per file) renumbered 1..N in the merged order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from app.agents.base import session_day
from app.events import Book, InputEvent, Trade


@dataclass
class DayTape:
    ticker: str
    day: int  # session day number (app.agents.base.session_day)
    events: list[InputEvent] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    trades: int = 0
    duplicates: int = 0
    renumbered: bool = False

    @property
    def first_ts(self) -> int:
        """Exchange time of the day's first trade (books can be stamped 0: the DLL's initial snapshot)."""
        return next((e.ts for e in self.events if type(e) is Trade), 0)  # type: ignore[union-attr]


def _key(ev: InputEvent) -> tuple:
    if type(ev) is Trade:
        t: Trade = ev  # type: ignore[assignment]
        return ("t", t.ts, t.price, t.qty, t.aggressor, t.buyer, t.seller)
    b: Book = ev  # type: ignore[assignment]
    return ("b", b.ts, b.side, b.levels)


def _with_position(events: list[InputEvent]) -> list[tuple[tuple, InputEvent]]:
    """(identity key including the occurrence index among identical events of this source, event)."""
    seen: dict[tuple, int] = {}
    out = []
    for ev in events:
        k = _key(ev)
        n = seen.get(k, 0)
        seen[k] = n + 1
        out.append(((*k, n), ev))
    return out


def group_days(sources: list[tuple[str, list[InputEvent]]]) -> dict[str, list[DayTape]]:
    """sources: (name, events) in the order given on the command line. Returns ticker -> days in time order."""
    parts: dict[tuple[str, int], list[tuple[str, list[InputEvent]]]] = {}
    for name, events in sources:
        split: dict[tuple[str, int], list[InputEvent]] = {}
        waiting: dict[str, list[InputEvent]] = {}  # books not yet followed by a trade of their ticker
        last_day: dict[str, int] = {}
        for ev in events:
            tp = type(ev)
            ticker = ev.ticker  # type: ignore[union-attr]
            if tp is Book:
                waiting.setdefault(ticker, []).append(ev)
                continue
            if tp is not Trade:
                continue
            k = (ticker, session_day(ev.ts))  # type: ignore[union-attr]
            last_day[ticker] = k[1]
            lst = split.get(k)
            if lst is None:
                lst = split[k] = []
            books = waiting.pop(ticker, None)
            if books:
                lst.extend(books)
            lst.append(ev)
        for ticker, books in waiting.items():  # after the ticker's last trade: they close its last day
            if ticker in last_day:
                split[(ticker, last_day[ticker])].extend(books)
        for k, lst in split.items():
            parts.setdefault(k, []).append((name, lst))

    out: dict[str, list[DayTape]] = {}
    for (ticker, day), srcs in parts.items():
        dt = DayTape(ticker, day, sources=[n for n, _ in srcs])
        if len(srcs) == 1:
            dt.events = srcs[0][1]  # a list made here, not the caller's
        else:
            merged: list[tuple[int, int, tuple, InputEvent]] = []
            for si, (_n, lst) in enumerate(srcs):
                merged.extend((ev.ts, si, key, ev) for key, ev in _with_position(lst))  # type: ignore[union-attr]
            # stable on ts only: ties keep source order, then each source's own order
            merged.sort(key=lambda r: r[0])
            kept: set[tuple] = set()
            events = []
            for _ts, _si, key, ev in merged:
                if key in kept:
                    dt.duplicates += 1
                    continue
                kept.add(key)
                events.append(ev)
            dt.events = events
        _number_trades(dt)
        out.setdefault(ticker, []).append(dt)
    for days in out.values():
        days.sort(key=lambda d: d.day)
    return dict(sorted(out.items()))


def _number_trades(dt: DayTape) -> None:
    last = None
    ok = True
    n = 0
    for ev in dt.events:
        if type(ev) is Trade:
            n += 1
            tid = ev.trade_id  # type: ignore[union-attr]
            if last is not None and tid <= last:
                ok = False
            last = tid
    dt.trades = n
    if ok:
        return
    dt.renumbered = True
    replace = msgspec.structs.replace
    i = 0
    events = []
    for ev in dt.events:
        if type(ev) is Trade:
            i += 1
            ev = replace(ev, trade_id=i)  # type: ignore[type-var]
        events.append(ev)
    dt.events = events
