"""The journal: every input event of a run, append-only, the source of truth for replay and Valkey catch-up.

Layout: `<directory>/<run_id>/<run_id>-00001.hmj`, `...-00002.hmj` (a new part after `journal.rotate_mb`); the
byte format is in journal_format (and docs/OUTPUTS.md), reading in journal_reader. This module is the writer.

Sequence numbers start at 1 per run and grow by one per input event across parts, so the Valkey writer can name
a position ("everything after 1234") and resume from it. `append` is synchronous and O(batch): it encodes into
memory; a background task writes through aiofiles every `flush_interval` (or sooner when `flush_kb` is buffered).
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import aiofiles

from app.config import JournalConfig
from app.events import InputEvent
from app.io import codec
from app.io.journal_format import (FORMAT, FRAME, FRAME_V1, MAGIC, MAGIC_V1, MAX_FRAME, SUFFIX, SYNC,  # noqa: F401
                                   JournalError, frames_bytes, frames_within, header_bytes, parse_frames)
from app.io.journal_reader import (Damage, JournalReader, JournalTail, is_journal_file, iter_frames,  # noqa: F401
                                   journal_files, part_name, read_header, read_journal, run_parts)

log = logging.getLogger("app.io.journal")


def frame_count(data: bytes) -> int:
    """Frames in a buffer of whole format-2 frames (what the writer holds in memory)."""
    n = pos = 0
    unpack, size = FRAME.unpack_from, FRAME.size
    while pos < len(data):
        pos += size + unpack(data, pos)[1]
        n += 1
    return n


class Journal:
    """Writes one run's input events; see the module docstring for the format."""

    def __init__(self, directory: str | Path, run_id: str, cfg: JournalConfig) -> None:
        if not run_id or "/" in run_id or "\\" in run_id:
            raise JournalError(f"run id {run_id!r} cannot name a directory")
        self.run_id = run_id
        self.cfg = cfg
        self.path = Path(directory) / run_id  # the run directory (what ValkeyWriter and replay take)
        self.seq = 0  # last sequence number given out
        self.flushed_seq = 0  # last sequence number written to the file
        self._chunks: list[tuple[bytes, int]] = []  # (frames of one append, seq of its last frame)
        self._buffered = 0
        self._max_buffer = int(cfg.max_buffer_mb * (1 << 20))
        self._flush_bytes = cfg.flush_kb * 1024
        self._rotate_bytes = int(cfg.rotate_mb * (1 << 20))
        self._file: Any = None
        self._file_size = 0
        self._part = 0
        self._wake = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        # called after every write that put frames in the file: the Valkey writer's cue (entries go to Valkey only
        # once the journal holds them), so it writes in the same loop turn instead of at a timer of its own
        self.on_written: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._close_deadline: float | None = None  # close(timeout): keep retrying a failing disk until then
        self._refusing = False
        self._error: str | None = None
        self._error_since: float | None = None  # monotonic time the current write failure began
        self.last_error: str | None = None  # the latest write failure of the run, kept after it clears
        self._stats = {"frames": 0, "bytes": 0, "files": 0, "flushes": 0, "last_flush_ms": 0.0,
                       "max_flush_ms": 0.0, "refused": 0, "write_errors": 0, "max_buffered_bytes": 0}

    # -- lifecycle -----------------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._task is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if run_parts(self.path):
            raise JournalError(f"{self.path}: a journal for run {self.run_id!r} already exists; use a new run id")
        await self._open_part()
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"journal-{self.run_id}")

    async def close(self, timeout: float | None = None) -> None:
        """Write what is buffered, then close. Without `timeout` a failing disk ends the close at the first failed
        attempt; with it, writes are retried until `timeout` seconds have passed (space may come back), then the
        close returns anyway: `unwritten()` says what stayed in memory."""
        if self._task is None:
            return
        self._closing = True
        self._close_deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        try:
            if timeout is None:
                await self._task
            else:
                try:
                    await asyncio.wait_for(asyncio.shield(self._task), timeout=max(timeout, 0.0))
                except asyncio.TimeoutError:
                    self._task.cancel()  # a write blocked in its thread is left to it; we stop waiting
                    await asyncio.gather(self._task, return_exceptions=True)
                    log.error("journal %s: closed after %.1f s with %d frames (seq %d-%d) unwritten", self.path,
                              timeout, *self.unwritten())
        finally:
            self._task = None
            if self._file is not None:
                f, self._file = self._file, None
                try:
                    await asyncio.wait_for(f.close(), timeout=1.0)
                except (OSError, asyncio.TimeoutError) as err:
                    log.error("journal %s: closing the file failed (%s)", self.path, err)
            for _, fut in self._waiters:
                if not fut.done():
                    fut.set_result(None)
            self._waiters.clear()

    # -- hot path ------------------------------------------------------------------------------------------------
    def append(self, events: list[InputEvent], payloads: list[bytes] | None = None) -> None:
        """Give each event the next sequence number and buffer its frame (`payloads`: the events' `codec.encode`
        bytes when the caller already has them). One bytes object per call. Never awaits."""
        seq = self.seq
        if self._buffered > self._max_buffer or self._task is None:
            # the disk has not taken anything for a long while: refuse rather than grow without bound; the
            # sequence numbers are still consumed so readers and the Valkey writer see the hole
            self.seq = seq + len(events)
            self._stats["refused"] += len(events)
            if not self._refusing:
                self._refusing = True
                why = (f"{self._buffered >> 20} MB waiting for the disk ({self._error or 'slow writes'})"
                       if self._task is not None else "not open")
                log.error("journal %s: %s; refusing new frames (counted in stats['refused'])", self.path, why)
            return
        if not events:
            return
        if payloads is None:
            payloads = codec.encode_batch(events)
        data = frames_bytes(payloads, seq)
        seq += len(payloads)
        self._chunks.append((data, seq))
        self.seq = seq
        self._buffered += len(data)
        self._stats["frames"] += len(events)
        if self._buffered > self._stats["max_buffered_bytes"]:
            self._stats["max_buffered_bytes"] = self._buffered
        if self._buffered >= self._flush_bytes:
            self._wake.set()

    async def flush(self) -> None:
        """Return once every frame appended before the call is in the file (not fsynced unless journal.fsync)."""
        target = self.seq
        if self.settled_seq >= target or self._task is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        self._wake.set()
        await fut

    @property
    def is_open(self) -> bool:
        return self._task is not None

    @property
    def settled_seq(self) -> int:
        """Every frame up to here is in the file or was refused: nothing more will appear below it."""
        return self.flushed_seq if self._chunks else self.seq

    def unwritten(self) -> tuple[int, int, int]:
        """(frames, first seq, last seq) appended but not in the file: held in memory, or lost if closed so."""
        n = sum(frame_count(c[0]) for c in self._chunks)
        return n, self.flushed_seq + 1 if n else 0, self._chunks[-1][1] if n else 0

    def stats(self) -> dict[str, Any]:
        out = dict(self._stats)
        out.update(seq=self.seq, flushed_seq=self.flushed_seq, buffered_bytes=self._buffered, path=str(self.path),
                   error=self._error, last_error=self.last_error, max_buffer_bytes=self._max_buffer,
                   error_for_s=round(time.monotonic() - self._error_since, 1) if self._error_since else 0.0)
        return out

    # -- background writer ---------------------------------------------------------------------------------------
    async def _run(self) -> None:
        interval = self.cfg.flush_interval
        backoff = interval
        while True:
            try:  # asyncio.timeout, not wait_for: wait_for makes a Task per call, 20 times a second even when idle
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self._chunks:
                try:
                    await self._write_out()
                    backoff = interval
                    if self.on_written is not None:
                        self.on_written()
                    if self._error is not None:
                        log.warning("journal %s: writing again after %.1f s of failures (%s); every frame kept in "
                                    "memory is now in the file, in order", self.path,
                                    time.monotonic() - (self._error_since or time.monotonic()), self._error)
                    self._error = None
                    self._error_since = None
                except OSError as err:
                    self._stats["write_errors"] += 1
                    if self._error is None:
                        log.error("journal %s: write failed (%s); keeping frames in memory (up to "
                                  "journal.max_buffer_mb = %d MB) and retrying", self.path, err,
                                  self._max_buffer >> 20)
                        self._error_since = time.monotonic()
                    self._error = self.last_error = str(err)
                    if self._closing:
                        left = (self._close_deadline or 0.0) - time.monotonic()
                        if left <= 0:
                            log.error("journal %s: closing with %d bytes unwritten", self.path, self._buffered)
                            return
                        await asyncio.sleep(min(backoff, left))
                    else:
                        await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
            self._release_waiters()
            if self._closing and not self._chunks:
                return

    async def _write_out(self) -> None:
        """Write what was buffered when called (frames appended meanwhile wait for the next round), starting a
        new part whenever the current one would pass `rotate_mb`; a frame never spans two parts."""
        todo = len(self._chunks)  # appends
        if self._file is None:  # opening the next part failed last time
            await self._open_part()
        while todo:
            chunks = self._chunks
            room = self._rotate_bytes - self._file_size
            k, size = 0, 0
            while k < todo:
                n = len(chunks[k][0])
                if size + n > room:
                    break
                size += n
                k += 1
            if k < todo:
                # the next append does not fit whole: take the frames of it that do (at least one frame per pass)
                head, head_seq = frames_within(chunks[k][0], room - size, size == 0)
                if head:
                    data, last = chunks[k]
                    if head < len(data):
                        chunks[k:k + 1] = [(data[:head], head_seq), (data[head:], last)]
                        todo += 1
                    size += head
                    k += 1
            data = chunks[0][0] if k == 1 else b"".join([c[0] for c in chunks[:k]])
            last_seq = chunks[k - 1][1]
            t0 = time.perf_counter()
            try:
                await self._write(data)
            except OSError:
                # leave no partial frame behind: the retry rewrites these frames from the same offset
                try:
                    await self._file.truncate(self._file_size)
                    await self._file.seek(self._file_size)
                except OSError:
                    pass
                raise
            del chunks[:k]  # append() only ever adds at the end, so the first k are still ours
            todo -= k
            self._buffered -= size
            self._file_size += size
            self.flushed_seq = last_seq
            ms = (time.perf_counter() - t0) * 1000
            st = self._stats
            st["bytes"] += size
            st["flushes"] += 1
            st["last_flush_ms"] = round(ms, 3)
            st["max_flush_ms"] = max(st["max_flush_ms"], round(ms, 3))
            if self._file_size >= self._rotate_bytes:
                await self._file.close()
                self._file = None
                await self._open_part()
        if self._refusing and self._buffered < self._max_buffer // 2:
            self._refusing = False
            log.warning("journal %s: disk caught up; accepting frames again", self.path)

    async def _write(self, data: bytes) -> None:
        """Put `data` in the current part (the one place the journal writes frames: fault tests patch it)."""
        view = memoryview(data)
        written = 0
        while written < len(data):
            n = await self._file.write(view[written:])
            written += n if n is not None else len(data) - written
        if self.cfg.fsync:
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, self._file.fileno())

    async def _open_part(self) -> None:
        part = self._part + 1
        path = self.path / part_name(self.run_id, part)
        f = await aiofiles.open(path, "xb", buffering=0)
        header = header_bytes(self.run_id, part, self.flushed_seq + 1)
        try:
            await f.write(header)
        except OSError:
            await f.close()
            path.unlink(missing_ok=True)
            raise
        self._part = part
        self._file = f
        self._file_size = len(header)
        self._stats["files"] += 1
        self._stats["bytes"] += len(header)

    def _release_waiters(self) -> None:
        if not self._waiters:
            return
        keep = []
        for target, fut in self._waiters:
            if self.settled_seq >= target or self._closing and not self._chunks:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters = keep
