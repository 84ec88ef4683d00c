"""The journal leads: nothing reaches Valkey before the journal has on disk what it comes from, so after a
kill -9 of the app Valkey never holds an event the journal lacks (issue 14, item 5)."""
import asyncio

import redis.asyncio as redis

from app.config import JournalConfig, ValkeyConfig
from app.events import Decision
from app.io.journal import Journal, iter_frames
from app.io.valkey_writer import ValkeyWriter
from tests.io.samples import T0, inputs
from tests.io.valkey_compare import missing_frames


class StuckFile:
    """A journal file whose writes hang until released (a stalled disk; the fault a kill -9 would freeze)."""

    def __init__(self, f) -> None:
        self.f = f
        self.release = asyncio.Event()

    async def write(self, data):
        await self.release.wait()
        return await self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


async def _entries(url: str) -> dict[str, int]:
    c = redis.from_url(url)
    try:
        return {k.decode(): await c.xlen(k) for k in await c.keys("hmarl:*") if await c.type(k) == b"stream"}
    finally:
        await c.aclose()


def test_valkey_holds_nothing_the_journal_has_not_written(valkey_url, tmp_path):
    events = inputs(600)
    decisions = [Decision(ticker="WDOZ26", ts=T0 + i, target=1, regime="calm", weights={}, signals={}, reason="t",
                          trade_id=i, latency_ns=1) for i in range(50)]

    async def main():
        j = Journal(tmp_path, "run-k", JournalConfig())
        await j.open()
        stuck = StuckFile(j._file)
        j._file = stuck
        w = ValkeyWriter(valkey_url, ValkeyConfig(batch_interval=0.01, close_timeout=10), j)
        await w.start()
        j.append(events)
        w.enqueue(events)
        w.enqueue(decisions)
        await asyncio.sleep(0.5)  # many batch intervals: today's writer has sent everything by now
        on_disk = sum(1 for _ in iter_frames(j.path))
        before = await _entries(valkey_url)
        stuck.release.set()  # the disk comes back: the journal writes, then Valkey gets everything
        await j.flush()
        await w.close()
        await j.close()
        return on_disk, before, await _entries(valkey_url), await missing_frames(valkey_url, j.path)

    on_disk, before, after, (compared, missing) = asyncio.run(main())
    assert on_disk == 0 and before == {}
    assert compared == 600 and missing == []
    assert after["hmarl:decision:WDOZ26"] == 50


def test_what_the_journal_has_on_disk_goes_without_waiting_for_it_to_write_the_newest(valkey_url, tmp_path):
    """Under a sustained flow the writer sends the entries whose events are on disk at once; it asks the journal to
    write (and waits for it) only when none are. A stalled write of the newest events holds back those alone."""
    first, newest = inputs(600)[:300], inputs(600)[300:]

    async def main():
        j = Journal(tmp_path, "run-d", JournalConfig(flush_interval=30))
        await j.open()
        j.append(first)
        await j.flush()  # on disk
        stuck = StuckFile(j._file)
        j._file = stuck
        j.append(newest)  # its write will hang
        w = ValkeyWriter(valkey_url, ValkeyConfig(batch_interval=0.01, close_timeout=10), j)
        await w.start()
        w.enqueue(first)
        w.enqueue(newest)
        for _ in range(200):
            if w.stats()["acked_seq"] >= 300:
                break
            await asyncio.sleep(0.01)
        sent = sum((await _entries(valkey_url)).values())
        stuck.release.set()
        await j.flush()
        await w.close()
        await j.close()
        return sent, await missing_frames(valkey_url, j.path)

    sent, (compared, missing) = asyncio.run(main())
    assert sent == 300  # the first 300, and none of the newest before their write
    assert compared == 600 and missing == []
