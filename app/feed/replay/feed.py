"""ReplayFeed: a journal or a Profit CSV export, delivered by a coroutine on the loop (no DLL, no thread).

The same file always yields the same events in the same order, in batches of at most `replay.batch`; only
`received_ns` differs (stamped with time.monotonic_ns() when a batch is delivered, so latency figures mean
"since delivery" and nothing deterministic depends on it). Pacing follows the events' exchange time at `speed`x
real time, or as fast as the pipeline takes them when speed is None; a batch never spans a pacing wait.
The format is detected by content: the journal magic, a directory of journal parts, or else CSV text.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec

from app.config import Config
from app.events import InputEvent, Trade
from app.feed.base import FeedError, Sink
from app.io import codec
from app.io.journal import JournalError, JournalReader, is_journal_file
from app.feed.replay.profit_csv import ProfitCsv

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
        self._started = 0.0
        self._finished = 0.0

    async def start(self, sink: Sink) -> None:
        if self._task is not None:
            return
        self.format = detect_format(self.path)
        if self.format == "journal":
            try:
                reader = JournalReader(self.path)
            except JournalError as err:
                raise FeedError(f"replay: {err}") from None
            source: Any = reader
        else:
            source = None
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
            "phase": self._phase, "events": self._events, "batches": self._batches, "trades": dict(self._trades),
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
            else:
                trades = await self._parse_csv()
                self._phase = "replaying"
                total = len(trades) or 1
                self._progress_fn = lambda: self._events / total
                await self._deliver(trades, sink)
            self._phase = "finished"
        except asyncio.CancelledError:
            self._phase = "stopped"
            raise
        except Exception as err:  # noqa: BLE001 - a replay failure ends the replay, reported in stats
            self._phase = "failed"
            self._errors.append(f"{type(err).__name__}: {err}")
            log.error("replay of %s failed: %s", self.path, err)
        finally:
            self._finished = time.monotonic()
            self.done.set()

    def _journal_events(self, reader: JournalReader) -> Iterator[InputEvent]:
        decode = codec.decode_input
        for seq, payload in reader:
            try:
                yield decode(payload)
            except codec.CodecError as err:
                self._skipped += 1
                if len(self._errors) < 20:
                    self._errors.append(f"frame {seq}: {err}")
                log.warning("%s: frame %d skipped: %s", self.path, seq, err)

    async def _parse_csv(self) -> list[Trade]:
        self._phase = "parsing"
        data = self.path.read_bytes()
        parser = ProfitCsv(data, str(self.path))
        self._progress_fn = lambda: 0.0
        for _ in parser.parse():
            await asyncio.sleep(0)  # a big file must not hold the loop
        trades = parser.finish()
        report = parser.report
        self._skipped = report.skipped
        self._csv_report = report.as_dict()
        if report.skipped:
            self._errors.append(f"{report.skipped} malformed lines skipped (first: "
                                f"{', '.join(str(n) for n, _ in report.skipped_lines[:10])})")
        if not trades:
            raise FeedError(f"replay: no trades could be read from {self.path} ({report.lines} rows, "
                            f"{report.skipped} malformed)")
        return trades

    async def _deliver(self, events: Iterable[InputEvent], sink: Sink) -> None:
        restamp = self.format == "csv" or self.cfg.replay.restamp
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
            now = time.monotonic_ns()
            out = [replace(e, received_ns=now) for e in batch] if restamp else batch
            for e in out:
                if type(e) is Trade:
                    trades[e.ticker] = trades.get(e.ticker, 0) + 1
            self._events += len(out)
            self._batches += 1
            batch = []
            sink(out)

        for event in events:
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
