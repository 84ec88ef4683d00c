"""A damaged frame costs only itself: readers report it with file and byte offset and resynchronise on the next
valid frame, in today's format (sync marker per frame) and in format-1 journals written before it."""
import asyncio
import logging
import zlib
from pathlib import Path

import msgspec

from app.config import JournalConfig
from app.io import codec
from app.io.journal import FRAME, FRAME_V1, MAGIC_V1, Journal, JournalReader, JournalTail
from tests.io.samples import inputs


def _write(directory: Path, events: list) -> Path:
    async def main() -> Path:
        j = Journal(directory, "r1", JournalConfig())
        await j.open()
        for k in range(0, len(events), 100):
            j.append(events[k:k + 100])
        await j.close()
        return j.path

    return asyncio.run(main())


def _offsets(part: Path) -> list[int]:
    """File offset of every frame of a format-2 part, in order."""
    data = part.read_bytes()
    pos = data.index(b"\xa5HJF")
    out = []
    while pos < len(data):
        out.append(pos)
        _s, length, _seq, _crc = FRAME.unpack_from(data, pos)
        pos += FRAME.size + length
    return out


def _write_v1(directory: Path, events: list) -> tuple[Path, list[int]]:
    """A format-1 part as hmarl wrote it before the sync marker (no marker, CRC over the payload alone)."""
    run = directory / "old"
    run.mkdir(parents=True)
    header = msgspec.msgpack.encode({"format": 1, "schema": 1, "run_id": "old", "part": 1, "first_seq": 1,
                                     "created_ns": 1})
    data = bytearray(MAGIC_V1 + len(header).to_bytes(4, "little") + header)
    offsets = []
    for seq, payload in enumerate(codec.encode_batch(events), 1):
        offsets.append(len(data))
        data += FRAME_V1.pack(len(payload), seq, zlib.crc32(payload)) + payload
    path = run / "old-00001.hmj"
    path.write_bytes(bytes(data))
    return run, offsets


def test_a_frame_with_a_wrong_length_loses_only_itself(tmp_path, caplog):
    events = inputs(3000)
    run = _write(tmp_path, events)
    part = sorted(run.glob("*.hmj"))[0]
    offsets = _offsets(part)
    data = bytearray(part.read_bytes())
    bad = offsets[1000]  # frame seq 1001: length field now claims 7 more bytes than it has
    length = int.from_bytes(data[bad + 4:bad + 8], "little")
    data[bad + 4:bad + 8] = (length + 7).to_bytes(4, "little")
    data[offsets[2000] + 30] ^= 0xFF  # and one payload byte of seq 2001
    part.write_bytes(bytes(data))

    caplog.set_level(logging.WARNING, logger="app.io.journal")
    reader = JournalReader(run)
    got = list(reader)
    assert [s for s, _ in got] == [s for s in range(1, 3001) if s not in (1001, 2001)]
    assert [codec.decode_input(p) for _, p in got] == [e for i, e in enumerate(events) if i not in (1000, 2000)]
    assert [(d.offset, d.length) for d in reader.damage] == [(bad, offsets[1001] - bad),
                                                            (offsets[2000], offsets[2001] - offsets[2000])]
    assert any(str(part) in r.getMessage() and f"at byte {bad}" in r.getMessage() for r in caplog.records)


def test_a_format_1_journal_is_still_read_and_resynchronised(tmp_path):
    """The issue's case: a wrong length whose CRC was made valid for the wrong length."""
    events = inputs(500)
    run, offsets = _write_v1(tmp_path, events)
    part = run / "old-00001.hmj"
    assert [codec.decode_input(p) for _, p in JournalReader(run)] == events
    data = bytearray(part.read_bytes())
    bad = offsets[200]
    length = int.from_bytes(data[bad:bad + 4], "little") + 9
    crc = zlib.crc32(bytes(data[bad + 16:bad + 16 + length]))
    data[bad:bad + 4] = length.to_bytes(4, "little")
    data[bad + 12:bad + 16] = crc.to_bytes(4, "little")
    part.write_bytes(bytes(data))
    reader = JournalReader(run)
    got = [s for s, _ in reader]
    assert got == [s for s in range(1, 501) if s != 201]
    assert reader.damage[0].offset == bad
    assert _tail_seqs(run) == got  # the Valkey catch-up reader of an earlier run, too


def _tail_seqs(run: Path) -> list[int]:
    async def main() -> list[int]:
        tail = JournalTail(run)
        seqs: list[int] = []
        while True:
            frames = await tail.read(seqs[-1] + 1 if seqs else 1, 300)
            if not frames:
                break
            seqs += [s for s, _ in frames]
        await tail.close()
        return seqs

    return asyncio.run(main())


def test_the_live_tail_skips_a_damaged_frame_and_reads_on(tmp_path):
    events = inputs(1000)
    run = _write(tmp_path, events)
    part = sorted(run.glob("*.hmj"))[0]
    offsets = _offsets(part)
    data = bytearray(part.read_bytes())
    data[offsets[500]] ^= 0xFF  # the sync marker of seq 501
    part.write_bytes(bytes(data))

    async def main() -> list[int]:
        tail = JournalTail(run)
        seqs: list[int] = []
        while True:
            frames = await tail.read(seqs[-1] + 1 if seqs else 1, 300)
            if not frames:
                break
            seqs += [s for s, _ in frames]
        await tail.close()
        assert tail.damage and tail.damage[0].offset == offsets[500]
        return seqs

    assert asyncio.run(main()) == [s for s in range(1, 1001) if s != 501]
