"""Reading journals: finished runs (JournalReader) and a run still being written (JournalTail).

Both report a damaged stretch with its file and byte offset and carry on with the next valid frame (see
journal_format.resync), so one bad frame costs only itself; neither ever raises for damage after a part's header.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import aiofiles

from app.events import InputEvent
from app.io import codec
from app.io.journal_format import (MAX_FRAME, SUFFIX, JournalError, header_size, is_magic, parse_frames,
                                   parse_header, resync)

log = logging.getLogger("app.io.journal")

_PART = re.compile(r"^(?P<run>.+)-(?P<part>\d{5,})\.hmj$")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Damage:
    """A stretch of a part that held no valid frame."""

    path: str
    offset: int  # byte offset in the file
    length: int  # bytes skipped
    what: str

    def line(self) -> str:
        return f"{self.path}: {self.what} at byte {self.offset}; {self.length} bytes skipped"


def part_name(run_id: str, part: int) -> str:
    return f"{run_id}-{part:05d}{SUFFIX}"


def is_journal_file(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return is_magic(f.read(8))
    except OSError:
        return False


def read_header(path: str | Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    parsed = parse_header(data, str(path))
    if parsed is None:
        raise JournalError(f"{path}: journal header is truncated")
    return parsed[0]


def journal_files(path: str | Path) -> list[Path]:
    """The parts to read, in order: a run directory gives all its parts; a file gives it and the later parts
    of the same run; a directory holding exactly one run directory is accepted too."""
    p = Path(path)
    if p.is_file():
        m = _PART.match(p.name)
        if not m:
            return [p]
        run, part = m.group("run"), int(m.group("part"))
        return [f for f in run_parts(p.parent) if _PART.match(f.name).group("run") == run  # type: ignore[union-attr]
                and int(_PART.match(f.name).group("part")) >= part]  # type: ignore[union-attr]
    if p.is_dir():
        parts = run_parts(p)
        if parts:
            return parts
        runs = sorted(d for d in p.iterdir() if d.is_dir() and run_parts(d))
        if len(runs) == 1:
            return run_parts(runs[0])
        if runs:
            names = ", ".join(d.name for d in runs[-3:])
            raise JournalError(f"{p} holds {len(runs)} runs; give one run directory (e.g. {runs[-1]}), last: {names}")
        raise JournalError(f"{p}: no journal files (*{SUFFIX}) here")
    raise JournalError(f"{p}: no such file or directory")


def run_parts(directory: Path) -> list[Path]:
    found = []
    for f in directory.glob(f"*{SUFFIX}"):
        m = _PART.match(f.name)
        if m:
            found.append((m.group("run"), int(m.group("part")), f))
    return [f for _, _, f in sorted(found)]


class JournalReader:
    """Sequential reader over the parts of one run; counts what it had to skip.

    Iterating yields (seq, payload). Damage (a bad frame, a crash-truncated last frame, a zero-filled tail) is
    logged as a warning with file and byte offset, listed in `damage`, and reading resumes at the next valid frame.
    """

    def __init__(self, path: str | Path, start_seq: int = 0) -> None:
        self.files = journal_files(path)
        self.start_seq = start_seq
        self.frames = 0
        self.bytes_read = 0
        self.bytes_total = sum(f.stat().st_size for f in self.files)
        self.damage: list[Damage] = []
        self.last_seq = 0

    @property
    def truncated(self) -> list[str]:
        """One line per damaged stretch (what the older callers print)."""
        return [d.line() for d in self.damage]

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        for path in self.files:
            yield from self._file(path)

    def _file(self, path: Path) -> Iterator[tuple[int, bytes]]:
        size = path.stat().st_size
        done_before = self.bytes_read
        with open(path, "rb") as f:
            buf = f.read(_READ_CHUNK)
            parsed = parse_header(buf, str(path))
            while parsed is None:
                more = f.read(_READ_CHUNK)
                if not more:
                    self._damaged(path, 0, len(buf), "truncated header")
                    self.bytes_read = done_before + size
                    return
                buf += more
                parsed = parse_header(buf, str(path))
            fmt = int(parsed[0]["format"])
            pos = parsed[1]
            base = 0  # file offset of buf[0]
            eof = False
            bad_from: int | None = None  # file offset where the current damaged stretch began
            why = ""
            while True:
                if bad_from is None:
                    out: list[tuple[int, bytes]] = []
                    pos, problem = parse_frames(buf, pos, self.last_seq, out, fmt=fmt)
                    self.bytes_read = done_before + base + pos
                    for seq, payload in out:
                        self.last_seq = seq
                        self.frames += 1
                        if seq >= self.start_seq:
                            yield seq, payload
                    if problem is not None:
                        bad_from, why = base + pos, problem
                        pos += 1
                        continue
                else:
                    found = resync(buf, pos, self.last_seq, fmt)
                    if found is not None and found[1]:
                        self._damaged(path, bad_from, base + found[0] - bad_from, why)
                        bad_from, pos = None, found[0]
                        continue
                    if found is not None and eof:  # a plausible header whose frame the file does not hold
                        pos = found[0] + 1
                        continue
                    if found is None:
                        # nothing here; the last few bytes may still begin a frame that continues in the next read
                        pos = max(pos, len(buf) - header_size(fmt) + 1)
                    else:
                        pos = found[0]
                if eof:
                    if bad_from is not None:
                        self._damaged(path, bad_from, size - bad_from, why)
                    elif pos < len(buf):
                        self._damaged(path, base + pos, len(buf) - pos, "truncated last frame")
                    break
                more = f.read(_READ_CHUNK)
                if not more:
                    eof = True
                    continue
                base += pos
                buf = buf[pos:] + more
                pos = 0
        self.bytes_read = done_before + size

    def _damaged(self, path: Path, at: int, length: int, what: str) -> None:
        d = Damage(str(path), at, length, what)
        self.damage.append(d)
        log.warning("%s (%d frames read before it); reading on from the next valid frame", d.line(), self.frames)


class JournalTail:
    """Reads a run's frames while it is being written (Valkey catch-up). A partial frame at the end of the newest
    part is simply "not yet"; it becomes damage only once a later part exists. Damage in the middle of a part is
    skipped up to the next valid frame. Reads go through aiofiles."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.exhausted = False  # the last read reached the end of everything on disk
        self.damage: list[Damage] = []
        self._parts: list[tuple[int, Path, int]] = []  # (first_seq, path, format)
        self._index = -1
        self._offset = 0  # file offset of the next frame in the current part
        self._last_seq = 0  # seq of the last frame returned (the position)
        self._file: Any = None

    async def close(self) -> None:
        if self._file is not None:
            await self._file.close()
            self._file = None

    def _refresh_parts(self) -> None:
        known = {p for _, p, _ in self._parts}
        for path in run_parts(self.dir):
            if path in known:
                continue
            try:
                header = read_header(path)
            except (JournalError, OSError):
                break  # being created right now; next time
            self._parts.append((int(header.get("first_seq", 1)), path, int(header["format"])))
        self._parts.sort()

    async def _open(self, index: int) -> bool:
        await self.close()
        first, path, _fmt = self._parts[index]
        self._file = await aiofiles.open(path, "rb")
        data = await self._file.read(1 << 16)
        parsed = parse_header(data, str(path))
        if parsed is None:
            return False
        self._index = index
        self._offset = parsed[1]
        self._last_seq = first - 1
        return True

    async def _seek(self, start_seq: int) -> None:
        self._refresh_parts()
        index = 0
        for i, (first, _path, _fmt) in enumerate(self._parts):
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
            fmt = self._parts[self._index][2]
            # about what max_frames need (a few hundred bytes each), not a fixed MB read for every small request
            want = min(_READ_CHUNK, max(1 << 16, (max_frames - len(out)) * 512))
            while True:
                await self._file.seek(self._offset)
                buf = await self._file.read(want)
                got: list[tuple[int, bytes]] = []
                pos, problem = parse_frames(buf, 0, self._last_seq, got, limit=max_frames - len(out), fmt=fmt)
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
            if problem is not None:
                found = resync(buf, pos + 1, self._last_seq, fmt)
                if found is not None and found[1]:
                    self._note(Damage(str(self._parts[self._index][1]), self._offset, found[0] - pos, problem))
                    self._offset += found[0] - pos
                    continue
                if found is None and len(buf) == want:
                    # more on disk beyond this read: skip what was searched (keep a possible frame start)
                    skip = max(1, len(buf) - pos - 24)
                    self._note(Damage(str(self._parts[self._index][1]), self._offset, skip, problem))
                    self._offset += skip
                    continue
            # nothing more in this part for now: move on only once a later part exists
            self._refresh_parts()
            path = self._parts[self._index][1]
            if self._index + 1 < len(self._parts):
                if problem is not None or pos < len(buf):
                    self._note(Damage(str(path), self._offset, len(buf) - pos, problem or "truncated last frame"))
                if not await self._open(self._index + 1):
                    break
                continue
            self.exhausted = True  # damage at the very end of the newest part may be a write in flight: wait
            break
        return out

    def _note(self, d: Damage) -> None:
        if d not in self.damage:
            self.damage.append(d)
            log.warning("%s; reading on from the next valid frame", d.line())


def iter_frames(path: str | Path, start_seq: int = 0) -> Iterator[tuple[int, bytes]]:
    """(seq, payload) of every frame with seq >= start_seq, in order across parts."""
    return iter(JournalReader(path, start_seq))


def read_journal(path: str | Path) -> Iterator[InputEvent]:
    """Every input event of a journal, in order across rotated parts; damaged frames are skipped with a warning
    (logger `app.io.journal`)."""
    for _seq, payload in JournalReader(path):
        yield codec.decode_input(payload)
