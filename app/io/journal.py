"""The journal: every input event of a run, append-only, the source of truth for replay and Valkey catch-up.

Layout: `<directory>/<run_id>/<run_id>-00001.hmj`, `...-00002.hmj` (a new part after `journal.rotate_mb`).
A part is MAGIC, a header frame, then frames:

    u32 LE payload length | u64 LE journal sequence number | u32 LE CRC-32 of the payload | payload (codec msgpack)

Sequence numbers start at 1 per run and grow by one per input event across parts, so the Valkey writer can name
a position ("everything after 1234") and resume from it. `append` is synchronous and O(batch): it encodes into
memory; a background task writes through aiofiles every `flush_interval` (or sooner when `flush_kb` is buffered).
A crash can leave a partial last frame: readers stop there with a warning and keep everything before it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import aiofiles
import msgspec

from app.config import JournalConfig
from app.events import SCHEMA_VERSION, InputEvent
from app.io import codec

log = logging.getLogger("app.io.journal")

MAGIC = b"HMARLJ1\n"
FORMAT = 1
SUFFIX = ".hmj"
FRAME = struct.Struct("<IQI")  # length, seq, crc32
_LEN = struct.Struct("<I")
MAX_FRAME = 16 << 20  # no event comes close; a larger length means garbage
_PART = re.compile(r"^(?P<run>.+)-(?P<part>\d{5,})\.hmj$")
_READ_CHUNK = 1 << 20


class JournalError(Exception):
    """The journal cannot be opened or read at all (the message says which file and why)."""


def part_name(run_id: str, part: int) -> str:
    return f"{run_id}-{part:05d}{SUFFIX}"


def _header_bytes(run_id: str, part: int, first_seq: int) -> bytes:
    header = msgspec.msgpack.encode({"format": FORMAT, "schema": SCHEMA_VERSION, "run_id": run_id, "part": part,
                                     "first_seq": first_seq, "created_ns": time.time_ns()})
    return MAGIC + _LEN.pack(len(header)) + header


def _frames_within(data: bytes, room: int, at_least_one: bool) -> tuple[int, int]:
    """(bytes, seq of the last frame) of the longest run of whole frames at the start of `data` that fits in
    `room` bytes; the first frame even if it alone does not fit when `at_least_one`."""
    end, seq = 0, 0
    while end < len(data):
        length, frame_seq, _crc = FRAME.unpack_from(data, end)
        size = FRAME.size + length
        if end + size > room and (end or not at_least_one):
            break
        end += size
        seq = frame_seq
    return end, seq


def is_journal_file(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _parse_header(data: bytes, where: str) -> tuple[dict[str, Any], int] | None:
    """(header, offset of the first frame), None when `data` is too short yet; JournalError when not a journal."""
    if len(data) < len(MAGIC) + 4:
        if not MAGIC.startswith(data[:len(MAGIC)]):
            raise JournalError(f"{where}: not an hmarl journal (bad magic)")
        return None
    if data[:len(MAGIC)] != MAGIC:
        raise JournalError(f"{where}: not an hmarl journal (bad magic)")
    (n,) = _LEN.unpack_from(data, len(MAGIC))
    end = len(MAGIC) + 4 + n
    if n > 1 << 16:
        raise JournalError(f"{where}: damaged journal header")
    if len(data) < end:
        return None
    try:
        header = msgspec.msgpack.decode(data[len(MAGIC) + 4:end])
    except msgspec.DecodeError:
        raise JournalError(f"{where}: damaged journal header") from None
    if header.get("format", 0) > FORMAT:
        raise JournalError(f"{where}: journal format {header.get('format')} is newer than this code; upgrade hmarl")
    return header, end


def read_header(path: str | Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    parsed = _parse_header(data, str(path))
    if parsed is None:
        raise JournalError(f"{path}: journal header is truncated")
    return parsed[0]


def parse_frames(buf: bytes, pos: int, last_seq: int, out: list[tuple[int, bytes]],
                 limit: int = 1 << 62) -> tuple[int, str | None]:
    """Append complete, valid frames of buf[pos:] to `out` (at most `limit`).

    Returns (position after the last good frame, problem): problem is None when the rest is only an incomplete
    frame (or nothing), else a description of a corrupt frame (the data after it cannot be trusted).
    """
    end = len(buf)
    size = FRAME.size
    unpack = FRAME.unpack_from
    crc32 = zlib.crc32
    n = 0
    while pos + size <= end and n < limit:
        length, seq, crc = unpack(buf, pos)
        if length == 0 or length > MAX_FRAME or seq <= last_seq:
            return pos, f"bad frame header (length {length}, seq {seq} after {last_seq})"
        stop = pos + size + length
        if stop > end:
            break
        payload = buf[pos + size:stop]
        if crc32(payload) != crc:
            return pos, f"checksum mismatch in frame seq {seq}"
        out.append((seq, payload))
        last_seq = seq
        pos = stop
        n += 1
    return pos, None


def journal_files(path: str | Path) -> list[Path]:
    """The parts to read, in order: a run directory gives all its parts; a file gives it and the later parts
    of the same run; a directory holding exactly one run directory is accepted too."""
    p = Path(path)
    if p.is_file():
        m = _PART.match(p.name)
        if not m:
            return [p]
        run, part = m.group("run"), int(m.group("part"))
        return [f for f in _parts(p.parent) if _PART.match(f.name).group("run") == run  # type: ignore[union-attr]
                and int(_PART.match(f.name).group("part")) >= part]  # type: ignore[union-attr]
    if p.is_dir():
        parts = _parts(p)
        if parts:
            return parts
        runs = sorted(d for d in p.iterdir() if d.is_dir() and _parts(d))
        if len(runs) == 1:
            return _parts(runs[0])
        if runs:
            names = ", ".join(d.name for d in runs[-3:])
            raise JournalError(f"{p} holds {len(runs)} runs; give one run directory (e.g. {runs[-1]}), last: {names}")
        raise JournalError(f"{p}: no journal files (*{SUFFIX}) here")
    raise JournalError(f"{p}: no such file or directory")


def _parts(directory: Path) -> list[Path]:
    found = []
    for f in directory.glob(f"*{SUFFIX}"):
        m = _PART.match(f.name)
        if m:
            found.append((m.group("run"), int(m.group("part")), f))
    return [f for _, _, f in sorted(found)]


class JournalReader:
    """Sequential reader over the parts of one run; counts what it had to ignore.

    Iterating yields (seq, payload). A partial last frame (crash) or a corrupt tail is logged as a warning and
    the reader moves on to the next part; it never raises for damage after the header.
    """

    def __init__(self, path: str | Path, start_seq: int = 0) -> None:
        self.files = journal_files(path)
        self.start_seq = start_seq
        self.frames = 0
        self.bytes_read = 0
        self.bytes_total = sum(f.stat().st_size for f in self.files)
        self.truncated: list[str] = []  # one line per damaged tail
        self.last_seq = 0

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for path in self.files:
            yield from self._file(path)

    def _file(self, path: Path) -> Iterator[tuple[int, bytes]]:
        size = path.stat().st_size
        done_before = self.bytes_read
        with open(path, "rb") as f:
            buf = f.read(_READ_CHUNK)
            parsed = _parse_header(buf, str(path))
            while parsed is None:
                more = f.read(_READ_CHUNK)
                if not more:
                    self._damaged(path, 0, len(buf), "truncated header")
                    self.bytes_read = done_before + size
                    return
                buf += more
                parsed = _parse_header(buf, str(path))
            pos = parsed[1]
            offset = 0  # file offset of buf[0]
            while True:
                out: list[tuple[int, bytes]] = []
                pos, problem = parse_frames(buf, pos, self.last_seq, out)
                self.bytes_read = done_before + offset + pos
                for seq, payload in out:
                    self.last_seq = seq
                    self.frames += 1
                    if seq >= self.start_seq:
                        yield seq, payload
                if problem is not None:
                    self._damaged(path, offset + pos, size - offset - pos, problem)
                    break
                more = f.read(_READ_CHUNK)
                if not more:
                    if pos < len(buf):
                        self._damaged(path, offset + pos, len(buf) - pos, "truncated last frame")
                    break
                offset += pos
                buf = buf[pos:] + more
                pos = 0
        self.bytes_read = done_before + size

    def _damaged(self, path: Path, at: int, ignored: int, what: str) -> None:
        line = f"{path}: {what} at byte {at}; {ignored} bytes ignored, {self.frames} frames read before it"
        self.truncated.append(line)
        log.warning("%s", line)


class JournalTail:
    """Reads a run's frames while it is being written (Valkey catch-up). A partial frame at the end of the newest
    part is simply "not yet"; it becomes damage only once a later part exists. Reads go through aiofiles."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.exhausted = False  # the last read reached the end of everything on disk
        self._parts: list[tuple[int, Path]] = []  # (first_seq, path)
        self._index = -1
        self._offset = 0  # file offset of the next frame in the current part
        self._last_seq = 0  # seq of the last frame returned (the position)
        self._file: Any = None
        self._warned: set[tuple[int, int]] = set()

    async def close(self) -> None:
        if self._file is not None:
            await self._file.close()
            self._file = None

    def _refresh_parts(self) -> None:
        known = {p for _, p in self._parts}
        for path in _parts(self.dir):
            if path in known:
                continue
            try:
                header = read_header(path)
            except (JournalError, OSError):
                break  # being created right now; next time
            self._parts.append((int(header.get("first_seq", 1)), path))
        self._parts.sort()

    async def _open(self, index: int) -> bool:
        await self.close()
        first, path = self._parts[index]
        self._file = await aiofiles.open(path, "rb")
        data = await self._file.read(1 << 16)
        parsed = _parse_header(data, str(path))
        if parsed is None:
            return False
        self._index = index
        self._offset = parsed[1]
        self._last_seq = first - 1
        return True

    async def _seek(self, start_seq: int) -> None:
        self._refresh_parts()
        index = 0
        for i, (first, _path) in enumerate(self._parts):
            if first <= start_seq:
                index = i
        if self._parts:
            await self._open(index)

    async def read(self, start_seq: int, max_frames: int) -> list[tuple[int, bytes]]:
        """Up to max_frames frames with seq >= start_seq that are on disk now (possibly none)."""
        if self._index < 0 or start_seq != self._last_seq + 1:
            await self._seek(start_seq)
            if self._index < 0:
                self.exhausted = True
                return []
        out: list[tuple[int, bytes]] = []
        self.exhausted = False
        while len(out) < max_frames:
            # about what max_frames need (a few hundred bytes each), not a fixed MB read for every small request
            want = min(_READ_CHUNK, max(1 << 16, (max_frames - len(out)) * 512))
            while True:
                await self._file.seek(self._offset)
                buf = await self._file.read(want)
                got: list[tuple[int, bytes]] = []
                pos, problem = parse_frames(buf, 0, 0, got, limit=max_frames - len(out))
                if got or problem is not None or len(buf) < want or want > MAX_FRAME:
                    break
                want *= 4  # one frame larger than the read: read more, not "end of part"
            for seq, payload in got:
                if seq >= start_seq:
                    out.append((seq, payload))
                self._last_seq = seq
            self._offset += pos
            if got and problem is None:
                continue
            # nothing more in this part for now: move on only once a later part exists
            self._refresh_parts()
            path = self._parts[self._index][1]
            if self._index + 1 < len(self._parts):
                if problem is not None or pos < len(buf):
                    self._warn(path, problem or "truncated last frame")
                if not await self._open(self._index + 1):
                    break
                continue
            if problem is not None:
                self._warn(path, problem)
            self.exhausted = True
            break
        return out

    def _warn(self, path: Path, what: str) -> None:
        where = (self._index, self._offset)
        if where not in self._warned:
            self._warned.add(where)
            log.warning("%s: %s at byte %d; the rest of this part is ignored", path, what, self._offset)


def iter_frames(path: str | Path, start_seq: int = 0) -> Iterator[tuple[int, bytes]]:
    """(seq, payload) of every frame with seq >= start_seq, in order across parts."""
    return iter(JournalReader(path, start_seq))


def read_journal(path: str | Path) -> Iterator[InputEvent]:
    """Every input event of a journal, in order across rotated parts; a truncated last frame is skipped with a
    warning (logger `app.io.journal`)."""
    for _seq, payload in JournalReader(path):
        yield codec.decode_input(payload)


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
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._refusing = False
        self._error: str | None = None
        self._stats = {"frames": 0, "bytes": 0, "files": 0, "flushes": 0, "last_flush_ms": 0.0,
                       "max_flush_ms": 0.0, "refused": 0, "write_errors": 0}

    # -- lifecycle -----------------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._task is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if _parts(self.path):
            raise JournalError(f"{self.path}: a journal for run {self.run_id!r} already exists; use a new run id")
        await self._open_part()
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"journal-{self.run_id}")

    async def close(self) -> None:
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await self._task
        finally:
            self._task = None
            if self._file is not None:
                await self._file.close()
                self._file = None
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
        pack = FRAME.pack
        crc32 = zlib.crc32
        parts: list[bytes] = []
        add = parts.append
        for payload in payloads:
            seq += 1
            add(pack(len(payload), seq, crc32(payload)))
            add(payload)
        data = b"".join(parts)
        self._chunks.append((data, seq))
        self.seq = seq
        self._buffered += len(data)
        self._stats["frames"] += len(events)
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

    def stats(self) -> dict[str, Any]:
        out = dict(self._stats)
        out.update(seq=self.seq, flushed_seq=self.flushed_seq, buffered_bytes=self._buffered, path=str(self.path),
                   error=self._error)
        return out

    # -- background writer ---------------------------------------------------------------------------------------
    async def _run(self) -> None:
        interval = self.cfg.flush_interval
        backoff = interval
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if self._chunks:
                try:
                    await self._write_out()
                    backoff = interval
                    self._error = None
                except OSError as err:
                    self._stats["write_errors"] += 1
                    if self._error is None:
                        log.error("journal %s: write failed (%s); keeping frames in memory and retrying",
                                  self.path, err)
                    self._error = str(err)
                    if self._closing:
                        log.error("journal %s: closing with %d bytes unwritten", self.path, self._buffered)
                        return
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
                head, head_seq = _frames_within(chunks[k][0], room - size, size == 0)
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
                view = memoryview(data)
                written = 0
                while written < len(data):
                    n = await self._file.write(view[written:])
                    written += n if n is not None else len(data) - written
                if self.cfg.fsync:
                    await asyncio.get_running_loop().run_in_executor(None, os.fsync, self._file.fileno())
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

    async def _open_part(self) -> None:
        part = self._part + 1
        path = self.path / part_name(self.run_id, part)
        f = await aiofiles.open(path, "xb", buffering=0)
        header = _header_bytes(self.run_id, part, self.flushed_seq + 1)
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
