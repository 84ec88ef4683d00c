"""ReplayFeed: a journal or a tape file (Profit CSV export, B3 TradeIntraday, generic CSV through
`[replay.columns]`), delivered by a coroutine on the loop (no DLL thread).

The same file always yields the same events in the same order, in batches of at most `replay.batch`; only
`received_ns` differs (stamped with app.feed.clock.now_ns() when a batch is delivered, so latency figures mean
"since delivery" and nothing deterministic depends on it). Pacing follows the events' exchange time at `speed`x
real time, or as fast as the pipeline takes them when speed is None; a batch never spans a pacing wait.
The format is detected by content (tapes.sniff_format). A replay that cannot be read, or that reads no trade,
is never a quiet success: a tape's problem is raised by start() (FeedError, one line), a journal's (damaged
header, bad magic, zero trades, failure mid-way) is kept in stats()["error"] for the replay command to report.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec

from app.feed.clock import now_ns
from app.config import Config
from app.events import InputEvent, Routed, Trade
from app.feed.base import FeedError, Sink
from app.io import codec
from app.io.journal import JournalError, JournalReader, is_journal_file
from app.io.journal_format import parse_header
from app.feed.replay.tapes import load_tape, sniff_format

log = logging.getLogger("app.feed.replay")


def detect_format(path: str | Path) -> str:
    """'journal' or 'csv'; FeedError when the path cannot be replayed."""
    p = Path(path)
    if p.is_dir():
        return "journal"
    if not p.is_file():
        raise FeedError(f"replay: {p} does not exist; give a journal (file or run directory) or a Profit CSV export")
    if is_journal_file(p):
        return "journal"
    with open(p, "rb") as f:
        head = f.read(4096)
    if b"\x00" in head:
        raise FeedError(f"replay: {p} is neither an hmarl journal nor a text (CSV) file")
    return "csv"


class ReplayFeed:
    name = "replay"

    def __init__(self, path: str | Path, speed: float | None, cfg: Config) -> None:
        self.path = Path(path)
        self.speed = speed if speed and speed > 0 else None
        self.cfg = cfg
        self.done = asyncio.Event()
        self.format = ""
        self._task: asyncio.Task[None] | None = None
        self._events = 0
        self._batches = 0
        self._trades: dict[str, int] = {}
        self._errors: list[str] = []
        self._skipped = 0
        self._phase = "idle"
        self._progress_fn: Any = lambda: 0.0
        self._csv_report: dict[str, Any] | None = None
        self._tape_events: list[InputEvent] = []
        self.error = ""  # one line: why this replay delivered nothing usable
        self._started = 0.0
        self._finished = 0.0
        # a live run's routing journal (app.execution.routing_journal): delivered to `routing_sink` right after
        # the input frame each record followed, so the replayed order book changes where the live one did
        self.routing_sink: Any = None
        self._routed: list[Any] = []
        self.routed_delivered = 0

    def set_routing_sink(self, sink: Any) -> None:
        self.routing_sink = sink

    async def start(self, sink: Sink) -> None:
        if self._task is not None:
            return
        self.format = sniff_format(self.path, {k: str(v) for k, v in self.cfg.replay.columns.items()} or None)
        source: Any = None
        if self.format == "journal":
            try:
                reader = JournalReader(self.path)
                for part in reader.files:
                    _check_header(part)
            except (JournalError, OSError) as err:
                raise FeedError(f"replay: {err}") from None
            source = reader
            from app.execution.routing_journal import read_routed

            self._routed = read_routed(reader.files[0].parent) if reader.files else []
        else:
            self._phase = "parsing"
            # off the loop: a B3 file of a few hundred thousand rows takes a second or two to read
            tape = await asyncio.to_thread(load_tape, self.path, self.cfg)
            self._tape_events = tape.events
            self._csv_report = tape.report
            self._skipped = int(tape.report.get("skipped", 0))
            if self._skipped:
                self._errors.append(f"{self._skipped} malformed lines skipped (first: " + ", ".join(
                    str(line).split(":", 1)[0] for line in tape.report.get("skipped_lines", [])[:10]) + ")")
        self.done.clear()
        self._started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(sink, source), name="replay-feed")

    async def stop(self, finalize: bool = False) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.done.set()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feed": "replay", "format": self.format, "path": str(self.path), "speed": self.speed or "max",
            "phase": self._phase, "error": self.error or None, "events": self._events, "batches": self._batches,
            "trades": dict(self._trades),
            **({"routing_records": len(self._routed), "routing_delivered": self.routed_delivered}
               if self._routed else {}),
            "lines_skipped": self._skipped, "progress": round(self._progress_fn(), 4), "errors": list(self._errors),
            "seconds": round((self._finished or time.monotonic()) - self._started, 3) if self._started else 0.0,
        }
        if self._csv_report is not None:
            out["csv"] = self._csv_report
        return out

    # -- the coroutine -------------------------------------------------------------------------------------------
    async def _run(self, sink: Sink, reader: JournalReader | None) -> None:
        try:
            if reader is not None:
                self._phase = "replaying"
                self._progress_fn = lambda: reader.bytes_read / reader.bytes_total if reader.bytes_total else 1.0
                await self._deliver(self._journal_events(reader), sink)
                self._errors.extend(reader.truncated)
                if not self._trades:
                    self.error = (f"replay: {self.path}: no trade read from the run journal ({reader.frames} "
                                  f"frames, {len(reader.damage)} damaged stretches)")
            else:
                events, self._tape_events = self._tape_events, []
                self._phase = "replaying"
                total = len(events) or 1
                self._progress_fn = lambda: self._events / total
                await self._deliver(events, sink)
            self._phase = "failed" if self.error else "finished"
        except asyncio.CancelledError:
            self._phase = "stopped"
            raise
        except Exception as err:  # noqa: BLE001 - a replay failure ends the replay, reported in stats
            self._phase = "failed"
            self._errors.append(f"{type(err).__name__}: {err}")
            self.error = f"replay: {self.path} failed: {type(err).__name__}: {err}".replace("\n", " ")
            log.error("replay of %s failed: %s", self.path, err)
        finally:
            self._finished = time.monotonic()
            self.done.set()

    def _journal_events(self, reader: JournalReader) -> Iterator[Any]:
        decode = codec.decode_input
        routed, r = self._routed, 0
        for seq, payload in reader:
            while r < len(routed) and routed[r].after_seq < seq:
                yield routed[r]
                r += 1
            try:
                yield decode(payload)
            except codec.CodecError as err:
                self._skipped += 1
                if len(self._errors) < 20:
                    self._errors.append(f"frame {seq}: {err}")
                log.warning("%s: frame %d skipped: %s", self.path, seq, err)
        yield from routed[r:]

    async def _deliver(self, events: Iterable[InputEvent], sink: Sink) -> None:
        restamp = self.format != "journal" or self.cfg.replay.restamp
        limit = self.cfg.replay.batch
        replace = msgspec.structs.replace
        trades = self._trades
        speed = self.speed
        loop = asyncio.get_running_loop()
        max_gap = int(self.cfg.replay.max_gap * 1e9)
        base_ts = last_ts = 0
        skipped_ns = 0
        t0 = loop.time()
        batch: list[InputEvent] = []

        def flush() -> None:
            nonlocal batch
            now = now_ns()
            out = [replace(e, received_ns=now) for e in batch] if restamp else batch
            for e in out:
                if type(e) is Trade:
                    trades[e.ticker] = trades.get(e.ticker, 0) + 1
            self._events += len(out)
            self._batches += 1
            batch = []
            sink(out)

        for event in events:
            if type(event) is Routed:
                if batch:
                    flush()
                self.routed_delivered += 1
                if self.routing_sink is not None:
                    self.routing_sink([event.event])
                continue
            if speed is not None and event.ts > 0:
                ts = event.ts
                if base_ts == 0:
                    base_ts = last_ts = ts
                elif ts > last_ts:
                    if max_gap and ts - last_ts > max_gap:
                        skipped_ns += ts - last_ts - max_gap
                    last_ts = ts
                due = t0 + (last_ts - base_ts - skipped_ns) / 1e9 / speed
                wait = due - loop.time()
                if wait > 0.0005:
                    if batch:
                        flush()
                    await asyncio.sleep(wait)
            batch.append(event)
            if len(batch) >= limit:
                flush()
                await asyncio.sleep(0)
        if batch:
            flush()


def _check_header(part: Path) -> None:
    """JournalError for a part whose magic or header is damaged; a header cut short by a crash while the part was
    being created is left to the reader, which reports it as damage and carries on."""
    with open(part, "rb") as f:
        parse_header(f.read(1 << 16), str(part))
