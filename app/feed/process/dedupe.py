"""Dropping what a restarted feed child delivers again.

A new child starts a fresh DLL session, so it may deliver again trades the previous child already delivered (the
stand-in even replays its market from the start: same seed, same trade numbers). Per ticker we keep the highest
trade number delivered in the current B3 session; a trade at or below it is dropped and counted. Book updates of a
ticker whose trades are being replayed describe a market the specialists already saw, so they are dropped too;
edits (`Trade.edit`) always pass; trade numbers restart every session, so a trade of a later B3 day starts over.
One dict lookup per event. The parent runs it in front of the sink (the authority); a restarted child runs one
seeded with the parent's numbers so a long replay is not even sent.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from app.events import Book, InputEvent, State, Trade
from app.feed.b3time import B3_TZ


def b3_day_end(ts: int) -> int:
    """ns UTC of the B3 midnight that ends the trading day of `ts`.

    Through zoneinfo, so DST-era days (until 2019) end at their own offset. Local wall-clock arithmetic is right
    here: on a spring-forward day local midnight does not exist and zoneinfo reads it with the earlier offset, which
    is the instant the new day began. Whole seconds (integer division): a float of ns could round 23:59:59.9999999
    up into the next day."""
    local = datetime.fromtimestamp(ts // 1_000_000_000, B3_TZ)
    end = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(end.timestamp()) * 1_000_000_000


def _ignore(_: Any) -> None:
    pass


class Dedupe:
    def __init__(self, resume: dict[str, tuple[int, int, int]] | None = None) -> None:
        self.last: dict[str, int] = {}  # ticker -> highest trade number delivered
        self.day_end: dict[str, int] = {}  # ticker -> end of the session `last` belongs to
        self.first: dict[str, int] = {}  # ticker -> first trade number of that session
        for ticker, (trade_id, day_end, count) in (resume or {}).items():
            self.last[ticker], self.day_end[ticker], self.first[ticker] = trade_id, day_end, trade_id - count + 1
        self.replaying: set[str] = set()  # tickers whose latest trade was a repeat
        self.duplicates_dropped = 0
        self.stale_books_dropped = 0

    def resume_point(self, tickers: list[str]) -> dict[str, tuple[int, int, int]]:
        """What a new child needs to skip the repeats itself: (last trade number, session end, trades delivered in
        that session) per ticker."""
        return {t: (self.last[t], self.day_end[t], self.last[t] - self.first[t] + 1) for t in tickers if t in self.last}

    def filter(self, batch: list[InputEvent], on_state: Callable[[State], None] = _ignore) -> list[InputEvent]:
        last, day_end, first, replaying = self.last, self.day_end, self.first, self.replaying
        out: list[InputEvent] = []
        append = out.append
        for ev in batch:
            t = type(ev)
            if t is Trade:
                if not ev.edit:  # type: ignore[union-attr]
                    ticker, tid = ev.ticker, ev.trade_id  # type: ignore[union-attr]
                    prev = last.get(ticker)
                    if prev is None or ev.ts >= day_end[ticker]:  # type: ignore[union-attr]
                        day_end[ticker] = b3_day_end(ev.ts)  # type: ignore[union-attr]
                        first[ticker] = tid
                    elif tid <= prev:
                        self.duplicates_dropped += 1
                        replaying.add(ticker)
                        continue
                    last[ticker] = tid
                    if replaying:
                        replaying.discard(ticker)
            elif t is Book:
                if replaying and ev.ticker in replaying:  # type: ignore[union-attr]
                    self.stale_books_dropped += 1
                    continue
            elif t is State:
                on_state(ev)  # type: ignore[arg-type]
            append(ev)
        return out
