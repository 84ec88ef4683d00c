"""The journal's byte format: part header, frames, and how a reader finds its way past damage.

Format 2 (written today), per part file:

    MAGIC "HMARLJ2\\n" | u32 LE header length | header (msgpack map) | frames

    frame: SYNC b"\\xa5HJF" | u32 LE payload length | u64 LE seq | u32 LE CRC-32 of (length, seq, payload) | payload

Format 1 (read only): MAGIC "HMARLJ1\\n", frames without SYNC and with the CRC over the payload alone.

Why a sync marker and a CRC over the header: one frame whose length field is wrong used to make the reader lose
its footing and drop the rest of the part. With SYNC the reader looks for the next marker after damage and takes
the first frame there whose CRC checks (and whose seq is above the last good one), so a damaged frame loses only
itself. The CRC covering the length means a wrong length is always detected, never taken as a frame. Format 1
files are resynchronised the slow way (every byte offset is a candidate), which is rare and bounded by the file.
"""
from __future__ import annotations

import struct
import time
import zlib
from typing import Any

import msgspec

from app.events import SCHEMA_VERSION

MAGIC = b"HMARLJ2\n"
MAGIC_V1 = b"HMARLJ1\n"
FORMAT = 2
SUFFIX = ".hmj"
SYNC = b"\xa5HJF"
FRAME = struct.Struct("<4sIQI")  # sync, length, seq, crc32 (format 2)
FRAME_V1 = struct.Struct("<IQI")  # length, seq, crc32 of the payload (format 1)
_LEN_SEQ = struct.Struct("<IQ")
_CRC = struct.Struct("<I")
_LEN = struct.Struct("<I")
MAX_FRAME = 16 << 20  # no event comes close; a larger length means garbage
# a frame found while resynchronising must continue the sequence within this distance: random bytes that happen to
# pass the CRC are then practically impossible, and the format-1 byte-by-byte search stays cheap
_MAX_SEQ_JUMP = 1 << 32


class JournalError(Exception):
    """The journal cannot be opened or read at all (the message says which file and why)."""


def header_bytes(run_id: str, part: int, first_seq: int) -> bytes:
    header = msgspec.msgpack.encode({"format": FORMAT, "schema": SCHEMA_VERSION, "run_id": run_id, "part": part,
                                     "first_seq": first_seq, "created_ns": time.time_ns()})
    return MAGIC + _LEN.pack(len(header)) + header


def frame(payload: bytes, seq: int) -> bytes:
    """One format-2 frame."""
    head = _LEN_SEQ.pack(len(payload), seq)
    return SYNC + head + _CRC.pack(zlib.crc32(payload, zlib.crc32(head))) + payload


def frames_bytes(payloads: list[bytes], seq: int) -> bytes:
    """Frames of `payloads` numbered seq + 1, seq + 2, ... back to back (the writer's hot path: one join)."""
    pack_ls, pack_crc, crc32 = _LEN_SEQ.pack, _CRC.pack, zlib.crc32
    parts: list[bytes] = []
    add = parts.append
    for payload in payloads:
        seq += 1
        head = pack_ls(len(payload), seq)
        add(SYNC)
        add(head)
        add(pack_crc(crc32(payload, crc32(head))))
        add(payload)
    return b"".join(parts)


def frames_within(data: bytes, room: int, at_least_one: bool) -> tuple[int, int]:
    """(bytes, seq of the last frame) of the longest run of whole format-2 frames at the start of `data` that fits
    in `room` bytes; the first frame even if it alone does not fit when `at_least_one`."""
    end, seq = 0, 0
    while end < len(data):
        _sync, length, frame_seq, _crc = FRAME.unpack_from(data, end)
        size = FRAME.size + length
        if end + size > room and (end or not at_least_one):
            break
        end += size
        seq = frame_seq
    return end, seq


def is_magic(head: bytes) -> bool:
    return head[:len(MAGIC)] in (MAGIC, MAGIC_V1)


def parse_header(data: bytes, where: str) -> tuple[dict[str, Any], int] | None:
    """(header, offset of the first frame), None when `data` is too short yet; JournalError when not a journal.
    The header's "format" says which frame layout follows (1 for MAGIC_V1 files)."""
    if len(data) < len(MAGIC) + 4:
        if not (MAGIC.startswith(data[:len(MAGIC)]) or MAGIC_V1.startswith(data[:len(MAGIC)])):
            raise JournalError(f"{where}: not an hmarl journal (bad magic)")
        return None
    if not is_magic(data):
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
    if not isinstance(header, dict):
        raise JournalError(f"{where}: damaged journal header")
    if header.get("format", 0) > FORMAT:
        raise JournalError(f"{where}: journal format {header.get('format')} is newer than this code; upgrade hmarl")
    header["format"] = 1 if data[:len(MAGIC)] == MAGIC_V1 else FORMAT
    return header, end


def parse_frames(buf: bytes, pos: int, last_seq: int, out: list[tuple[int, bytes]], limit: int = 1 << 62,
                 fmt: int = FORMAT) -> tuple[int, str | None]:
    """Append the valid frames of buf[pos:] to `out` (at most `limit`) until the buffer ends or a bad frame.

    Returns (position after the last good frame, problem): problem is None when the rest is only an incomplete
    frame (or nothing), else what is wrong with the frame at that position (call `resync` to go on).
    """
    if fmt == 1:
        return _parse_v1(buf, pos, last_seq, out, limit)
    end = len(buf)
    size = FRAME.size
    unpack = FRAME.unpack_from
    crc32 = zlib.crc32
    n = 0
    while pos + size <= end and n < limit:
        sync, length, seq, crc = unpack(buf, pos)
        if sync != SYNC:
            return pos, "bad frame header (no frame marker)"
        if length == 0 or length > MAX_FRAME or seq <= last_seq:
            return pos, f"bad frame header (length {length}, seq {seq} after {last_seq})"
        stop = pos + size + length
        if stop > end:
            break
        payload = buf[pos + size:stop]
        if crc32(payload, crc32(buf[pos + 4:pos + 16])) != crc:
            return pos, f"checksum mismatch in frame seq {seq}"
        out.append((seq, payload))
        last_seq = seq
        pos = stop
        n += 1
    return pos, None


def _parse_v1(buf: bytes, pos: int, last_seq: int, out: list[tuple[int, bytes]], limit: int) -> tuple[int, str | None]:
    end = len(buf)
    size = FRAME_V1.size
    unpack = FRAME_V1.unpack_from
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
        # format 1 has no marker: a frame whose CRC checks but whose length is wrong would swallow its neighbours,
        # so a frame counts only if the next header (when there is one) is plausible
        if stop + size <= end:
            n_len, n_seq, _ = unpack(buf, stop)
            if not (0 < n_len <= MAX_FRAME and seq < n_seq <= seq + _MAX_SEQ_JUMP):
                return pos, f"frame seq {seq} is not followed by a frame (wrong length?)"
        out.append((seq, payload))
        last_seq = seq
        pos = stop
        n += 1
    return pos, None


def resync(buf: bytes, start: int, last_seq: int, fmt: int = FORMAT) -> tuple[int, bool] | None:
    """The first offset >= start where a frame continuing the sequence begins: (offset, True) when the frame is
    whole in `buf` and its CRC checks; else (offset, False) for the first header that is plausible but whose end
    is beyond `buf` (read more, then ask again from that offset). None: no candidate in `buf` (its last
    frame-header-size minus one bytes may still begin one). A whole valid frame anywhere wins over an incomplete
    candidate before it: bytes that merely look like a header must not hide the real next frame."""
    end = len(buf)
    pending: int | None = None
    if fmt == 1:
        size, unpack = FRAME_V1.size, FRAME_V1.unpack_from
        q = start
        while q + size <= end:
            length, seq, crc = unpack(buf, q)
            if 0 < length <= MAX_FRAME and last_seq < seq <= last_seq + _MAX_SEQ_JUMP:
                stop = q + size + length
                if stop > end:
                    pending = q if pending is None else pending
                elif zlib.crc32(buf[q + size:stop]) == crc:
                    return q, True
            q += 1
        return None if pending is None else (pending, False)
    size, unpack, crc32 = FRAME.size, FRAME.unpack_from, zlib.crc32
    q = buf.find(SYNC, start)
    while q >= 0:
        if q + size > end:
            pending = q if pending is None else pending
            break
        _sync, length, seq, crc = unpack(buf, q)
        if 0 < length <= MAX_FRAME and last_seq < seq <= last_seq + _MAX_SEQ_JUMP:
            stop = q + size + length
            if stop > end:
                pending = q if pending is None else pending
            elif crc32(buf[q + size:stop], crc32(buf[q + 4:q + 16])) == crc:
                return q, True
        q = buf.find(SYNC, q + 1)
    return None if pending is None else (pending, False)


def header_size(fmt: int) -> int:
    return FRAME_V1.size if fmt == 1 else FRAME.size
