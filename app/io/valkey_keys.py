"""Stream keys and ids: which stream an event goes to and the deterministic id it gets there.

Ids are "<ms>-<n>": ms from the event's exchange time, n the journal sequence (inputs) or a per-run counter
(derived). Writing a journal again yields the very same ids, which is what makes catch-up idempotent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import msgspec

from app.events import (Book, BrokerPosition, Decision, Event, Fill, InvalidTicker, Metric, Order, OrderUpdate,
                        Position, Reward, RiskBreach, RoutingAccount, Signal, State, Trade, TradingResult)
from app.io import codec
from app.io.journal_reader import journal_files, read_header

# event type -> stream kind; input kinds come from the journal, the rest are derived on the loop
KIND_OF: dict[type, str] = {Trade: "trade", Book: "book", State: "state", InvalidTicker: "state", Signal: "signal",
                            Decision: "decision", Order: "order", Fill: "fill", Position: "position",
                            Reward: "reward", RiskBreach: "risk", Metric: "metric",
                            # live routing (app.execution.live): the broker's view, beside ours
                            OrderUpdate: "order_update", BrokerPosition: "broker_position", TradingResult: "routing",
                            RoutingAccount: "routing"}
INPUT_KINDS = ("trade", "book", "state")
KINDS = ("trade", "book", "state", "signal", "decision", "order", "fill", "position", "reward", "risk", "metric",
         "order_update", "broker_position", "routing")
NO_TICKER_KINDS = ("state", "metric", "routing")
INPUT_TYPES = frozenset((Trade, Book, State, InvalidTicker))


class Head(msgspec.Struct):
    """What catch-up needs of a journal payload (msgspec skips the other fields without building them)."""

    type: str
    v: int = 0
    ticker: str | None = None
    ts: int = 0


head_decoder = msgspec.msgpack.Decoder(Head)
INPUT_KIND = {cls.__name__: KIND_OF[cls] for cls in INPUT_TYPES}


def stream_key(prefix: str, kind: str, ticker: str | None = None) -> str:
    if kind in NO_TICKER_KINDS or not ticker:
        return f"{prefix}:{kind}"
    return f"{prefix}:{kind}:{ticker}"


def key_of(prefix: str, event: Event) -> str:
    return stream_key(prefix, KIND_OF.get(type(event), type(event).__name__.lower()),
                      getattr(event, "ticker", None))


class IdClock:
    """Deterministic stream ids: ms is the event's exchange time in ms, never below the stream's previous entry.

    An event without a time (ts 0: connection states, book snapshots before a ticker's first trade) takes its
    stream's previous time, else the latest exchange time of the run so far, else the run's start (wall clock, from
    the journal header). The run's start sorts after everything an earlier run wrote, so such an event is never
    refused as "older than the stream's last id" (ids like 0-5 were, in every run after the first). Trade-off: in a
    run fed with old tapes, a timeless event before the first timed one pins its stream to the run's start and the
    later ids of that stream stay there (n keeps them unique and ordered; the payload's ts stays exact)."""

    __slots__ = ("last", "floor_ms", "now")

    def __init__(self, floor_ms: int, last: dict[str, int] | None = None, now: int = 0) -> None:
        self.floor_ms = floor_ms
        self.last: dict[str, int] = dict(last or {})
        self.now = now  # the latest exchange time seen, ms

    def ms(self, key: str, ts: int, timeless_floor: bool = True) -> int:
        prev = self.last.get(key, 0)
        if ts > 0:
            ms = ts // 1_000_000
            if ms > self.now:
                self.now = ms
        else:
            ms = prev or self.now or self.floor_ms
        if ms < prev:
            ms = prev
        self.last[key] = ms
        return ms

    def copy(self) -> "IdClock":
        return IdClock(self.floor_ms, self.last, self.now)


def run_start_ms(journal_dir: str | Path) -> tuple[str, int]:
    """(run id, start time in ms) from the first part's header: the floor of ids for events without a time."""
    first = journal_files(journal_dir)[0]
    header = read_header(first)
    return str(header.get("run_id", Path(journal_dir).name)), int(header.get("created_ns", 0)) // 1_000_000


def entries_from_journal(journal_dir: str | Path, prefix: str = "hmarl") -> Iterator[tuple[str, str, bytes]]:
    """(stream key, id, payload) exactly as the writer stores the journal's events: the reference a test or an
    auditor compares Valkey against. Frames that are no input event are skipped, as the writer skips them."""
    from app.io.journal import iter_frames

    _run, floor = run_start_ms(journal_dir)
    clock = IdClock(floor)
    decode = codec.decode_input
    for seq, payload in iter_frames(journal_dir):
        try:
            event = decode(payload)
        except codec.CodecError:
            continue
        key = key_of(prefix, event)
        yield key, f"{clock.ms(key, event.ts)}-{seq}", payload

