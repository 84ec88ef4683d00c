import asyncio
import logging
import os
from pathlib import Path

import pytest

from app.config import JournalConfig
from app.io.journal import (FRAME, MAGIC, SYNC, Journal, JournalError, JournalReader, JournalTail, iter_frames,
                            read_header, read_journal)
from tests.io.samples import inputs


async def _write(directory: Path, events: list, cfg: JournalConfig, run_id: str = "r1", batch: int = 100) -> Journal:
    j = Journal(directory, run_id, cfg)
    await j.open()
    for k in range(0, len(events), batch):
        j.append(events[k:k + batch])
        await asyncio.sleep(0)
    await j.close()
    return j


def test_events_read_back_in_order_across_rotated_parts(tmp_path):
    events = inputs(20_000)
    j = asyncio.run(_write(tmp_path, events, JournalConfig(rotate_mb=0.2, flush_kb=64)))
    parts = sorted(j.path.glob("*.hmj"))
    assert len(parts) > 3
    assert list(read_journal(j.path)) == events
    st = j.stats()
    assert st["frames"] == len(events) and st["files"] == len(parts) and st["flushed_seq"] == len(events)
    # headers say where each part starts, so a reader can resume from a sequence number
    firsts = [read_header(p)["first_seq"] for p in parts]
    assert firsts[0] == 1 and firsts == sorted(firsts)
    seqs = [s for s, _ in iter_frames(j.path, start_seq=firsts[2])]
    assert seqs[0] == firsts[2] and seqs[-1] == len(events)
    # a file path reads that part and the later ones
    assert [s for s, _ in iter_frames(parts[2])][0] == firsts[2]
    # the journal root with a single run in it is accepted too
    assert sum(1 for _ in read_journal(tmp_path)) == len(events)


def test_a_crash_truncated_last_frame_is_skipped_with_a_warning(tmp_path, caplog):
    events = inputs(3000)
    j = asyncio.run(_write(tmp_path, events, JournalConfig()))
    last = sorted(j.path.glob("*.hmj"))[-1]
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) - 5)  # the crash hit in the middle of the last frame
    caplog.set_level(logging.WARNING, logger="app.io.journal")
    got = list(read_journal(j.path))
    assert got == events[:-1]
    assert any("truncated last frame" in r.getMessage() for r in caplog.records)


def test_a_zero_filled_tail_is_ignored_not_fatal(tmp_path, caplog):
    events = inputs(500)
    j = asyncio.run(_write(tmp_path, events, JournalConfig()))
    last = sorted(j.path.glob("*.hmj"))[-1]
    with open(last, "ab") as f:
        f.write(b"\x00" * 4096)  # what a power loss can leave after delayed allocation
    caplog.set_level(logging.WARNING, logger="app.io.journal")
    reader = JournalReader(j.path)
    assert [s for s, _ in reader] == list(range(1, 501))
    assert reader.truncated and "bad frame header" in reader.truncated[0]


def test_a_run_never_overwrites_an_existing_journal(tmp_path):
    asyncio.run(_write(tmp_path, inputs(10), JournalConfig()))
    with pytest.raises(JournalError, match="already exists"):
        asyncio.run(_write(tmp_path, inputs(10), JournalConfig()))


def test_not_a_journal_is_refused(tmp_path):
    bad = tmp_path / "x-00001.hmj"
    bad.write_bytes(b"hello world, not a journal")
    with pytest.raises(JournalError, match="bad magic"):
        list(read_journal(bad))


def test_append_never_awaits_and_memory_is_bounded(tmp_path):
    """append() encodes synchronously; when the disk takes nothing, frames beyond max_buffer are refused and
    counted, and their sequence numbers stay consumed so readers see the hole."""
    async def main():
        j = Journal(tmp_path, "r1", JournalConfig(max_buffer_mb=0.05))
        await j.open()
        events = inputs(4000)
        for k in range(0, 4000, 100):
            j.append(events[k:k + 100])  # no await in between: the writer task cannot run
        st = j.stats()
        assert st["seq"] == 4000 and st["refused"] > 0 and st["buffered_bytes"] < 0.05 * (1 << 20) + 20_000
        await asyncio.wait_for(j.flush(), 5)  # refused frames are not waited for
        await j.close()
        return st

    st = asyncio.run(main())
    seqs = [s for s, _ in iter_frames(tmp_path / "r1")]
    assert len(seqs) == 4000 - st["refused"] and seqs == sorted(seqs)


def test_flush_returns_once_everything_appended_is_in_the_file(tmp_path):
    async def main():
        j = Journal(tmp_path, "r1", JournalConfig(flush_interval=10))  # the timer alone would take 10 s
        await j.open()
        j.append(inputs(100))
        await asyncio.wait_for(j.flush(), 2)
        assert j.flushed_seq == 100
        assert sum(1 for _ in read_journal(j.path)) == 100
        await j.close()

    asyncio.run(main())


def test_tail_reads_frames_as_they_are_written(tmp_path):
    """The Valkey catch-up reader: a frame still being written is 'not yet', never damage."""
    async def main():
        j = Journal(tmp_path, "r1", JournalConfig(rotate_mb=0.05))
        await j.open()
        events = inputs(3000)
        tail = JournalTail(j.path)
        got = []
        for k in range(0, 3000, 250):
            j.append(events[k:k + 250])
            await j.flush()
            got += await tail.read(len(got) + 1, 10_000)
        # a partial frame on disk (as if the write were still in flight) is not returned and not reported
        last = sorted(j.path.glob("*.hmj"))[-1]
        await j.close()
        with open(last, "ab") as f:
            f.write(FRAME.pack(SYNC, 100, 3001, 0) + b"\x01" * 10)
        assert await tail.read(3001, 10) == [] and tail.exhausted
        # reading again from an earlier position (after a failed write) works
        again = await tail.read(1200, 5)
        await tail.close()
        return got, again

    got, again = asyncio.run(main())
    assert [s for s, _ in got] == list(range(1, 3001))
    assert [s for s, _ in again] == [1200, 1201, 1202, 1203, 1204]


def test_magic_marks_journal_files(tmp_path):
    j = asyncio.run(_write(tmp_path, inputs(5), JournalConfig()))
    assert sorted(j.path.glob("*.hmj"))[0].read_bytes().startswith(MAGIC)


def test_a_failed_write_leaves_no_partial_frame_and_is_retried(tmp_path, caplog):
    """Disk full in the middle of a write: the partial bytes are cut off and the same frames written again."""
    class FlakyFile:
        def __init__(self, f):
            self.f = f
            self.failed = False

        async def write(self, data):
            if not self.failed:
                self.failed = True
                await self.f.write(bytes(data[:len(data) // 2]))
                raise OSError(28, "No space left on device")
            return await self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    async def main():
        j = Journal(tmp_path, "r1", JournalConfig())
        await j.open()
        j._file = FlakyFile(j._file)
        events = inputs(1000)
        j.append(events)
        await asyncio.wait_for(j.flush(), 10)
        await j.close()
        return j, events

    caplog.set_level(logging.ERROR, logger="app.io.journal")
    j, events = asyncio.run(main())
    assert j.stats()["write_errors"] == 1
    reader = JournalReader(j.path)
    assert [codec_decode(p) for _, p in reader] == events and not reader.truncated


def codec_decode(payload):
    from app.io.codec import decode_input

    return decode_input(payload)


def test_one_append_larger_than_a_part_is_split_at_frame_boundaries(tmp_path):
    """An append is buffered as one block; rotation still cuts between frames, never inside one, and the bytes
    are exactly what appending event by event writes."""
    from app.io import codec

    events = inputs(6000)
    whole = asyncio.run(_write(tmp_path / "a", events, JournalConfig(rotate_mb=0.1), batch=6000))
    single = asyncio.run(_write(tmp_path / "b", events, JournalConfig(rotate_mb=0.1), batch=1))
    parts = sorted(whole.path.glob("*.hmj"))
    assert len(parts) > 5
    assert list(read_journal(whole.path)) == events
    assert [read_header(p)["first_seq"] for p in parts] == [read_header(p)["first_seq"]
                                                           for p in sorted(single.path.glob("*.hmj"))]
    assert [f for f in iter_frames(whole.path)] == [f for f in iter_frames(single.path)]
    # payloads given by the caller are used as they are
    async def with_payloads():
        j = Journal(tmp_path / "c", "r1", JournalConfig())
        await j.open()
        j.append(events[:10], codec.encode_batch(events[:10]))
        await j.close()
        return j

    assert list(read_journal(asyncio.run(with_payloads()).path)) == events[:10]
