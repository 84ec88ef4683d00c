"""The Valkey writer against a real valkey-server: exact ids from the journal, crash and catch-up, state."""
import asyncio
import time

import pytest
import redis.asyncio as redis

from app.config import JournalConfig, ValkeyConfig
from app.io.journal import Journal
from app.io.valkey_writer import ValkeyUnavailable, ValkeyWriter, entries_from_journal
from tests.io.conftest import free_port
from tests.io.samples import T0, inputs, one_of_each, trade


async def stream_ids(url: str, keys) -> dict[str, list[str]]:
    c = redis.from_url(url)
    try:
        return {k: [sid.decode() for sid, _ in await c.xrange(k)] for k in keys}
    finally:
        await c.aclose()


def expected_ids(journal_dir) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, sid, _payload in entries_from_journal(journal_dir):
        out.setdefault(key, []).append(sid)
    return out


class LagProbe:
    """The loop's worst delay while it runs (a 5 ms heartbeat), in wall time and in the loop thread's CPU time.

    Wall time is what a tick would wait; on a shared 2-core box it also includes the OS giving the CPU to other
    processes. CPU time counts only work done on the loop thread, so it shows whether *our* code ever held the
    loop, independent of the machine's load."""

    def __init__(self) -> None:
        self.max = 0.0
        self.max_cpu = 0.0
        self._task = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t, c = loop.time(), time.thread_time()
            await asyncio.sleep(0.005)
            self.max = max(self.max, loop.time() - t - 0.005)
            self.max_cpu = max(self.max_cpu, time.thread_time() - c)

    async def stop(self) -> tuple[float, float]:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        return self.max, self.max_cpu


async def wait_until(pred, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_streams_hold_exactly_the_journal_events_with_deterministic_ids(valkey_url, tmp_path):
    async def main():
        j = Journal(tmp_path, "run-a", JournalConfig())
        await j.open()
        w = ValkeyWriter(valkey_url, ValkeyConfig(), j)
        await w.start()
        events = inputs(5000)
        for k in range(0, len(events), 200):
            batch = events[k:k + 200]
            j.append(batch)
            w.enqueue(batch)
            await asyncio.sleep(0)
        derived = one_of_each()[4:]
        w.enqueue(derived)
        await j.close()
        await w.close()
        exp = expected_ids(j.path)
        got = await stream_ids(valkey_url, exp)
        c = redis.from_url(valkey_url)
        derived_lens = {k: await c.xlen(k) for k in ("hmarl:signal:WDOZ26", "hmarl:decision:WDOZ26",
                                                     "hmarl:fill:WDOZ26", "hmarl:metric")}
        await c.aclose()
        return exp, got, w.stats(), derived_lens

    exp, got, stats, derived_lens = asyncio.run(main())
    assert set(exp) == {"hmarl:trade:WDOZ26", "hmarl:trade:WINZ26", "hmarl:book:WDOZ26", "hmarl:book:WINZ26",
                        "hmarl:state"}
    assert got == exp
    assert sum(len(v) for v in exp.values()) == 5000
    assert stats["inputs_written"] == 5000 and stats["lost"] == 0 and stats["backlog"] == 0
    assert all(n == 1 for n in derived_lens.values())


def test_valkey_killed_mid_run_catches_up_to_the_journal_and_the_loop_stays_responsive(private_valkey, tmp_path):
    """kill -9 in the middle of a run: the writer backs off, the loop keeps its pace, and after the restart the
    streams hold exactly the journal's entries (same counts, same ids)."""
    url = private_valkey.url

    async def produce(j, w, seconds: float, start: int) -> int:
        """~10k input events/s in batches of 100, as a busy session would deliver them."""
        n = start
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            batch = [trade(n + i, "WDOZ26" if (n + i) % 3 else "WINZ26") for i in range(100)]
            n += 100
            j.append(batch)
            w.enqueue(batch)
            await asyncio.sleep(0.01)
        return n

    async def main():
        j = Journal(tmp_path, "run-k", JournalConfig(rotate_mb=1))
        await j.open()
        # a small backlog, so most of the outage must come back from the journal
        w = ValkeyWriter(url, ValkeyConfig(backlog=500, backoff_max=0.5), j)
        await w.start()
        n = await produce(j, w, 0.5, 0)
        probe = LagProbe()
        private_valkey.crash()
        n = await produce(j, w, 1.5, n)
        down = w.stats()
        lag_down = probe.max, probe.max_cpu
        await asyncio.get_running_loop().run_in_executor(None, private_valkey.start)
        n = await produce(j, w, 1.0, n)
        await wait_until(lambda: w.stats()["catchup_pending"] == 0 and w.stats()["backlog"] == 0, 30)
        lag_all = await probe.stop()
        stats = w.stats()
        await j.close()
        await w.close()
        exp = expected_ids(j.path)
        got = await stream_ids(url, exp)
        return n, down, stats, lag_down, lag_all, exp, got

    n, down, stats, lag_down, lag_all, exp, got = asyncio.run(main())
    assert not down["connected"] and down["spilled"] > 0  # the outage overflowed the backlog into the journal
    assert 500 <= stats["max_backlog"] <= 1000  # its high-water mark: the inputs' bound, plus derived events
    assert stats["connected"] and stats["reconnects"] >= 1 and stats["caught_up"] > 0 and stats["lost"] == 0
    assert stats["catchup_yields"] > 0  # catch-up while the feed flowed: it left the loop to the feed in between
    assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in exp.items()}
    assert got == exp
    assert sum(len(v) for v in exp.values()) == n
    # while Valkey is down the writer only backs off: ticks stay on time; through restart and catch-up our code
    # never holds the loop (CPU), whatever else the machine is doing (wall time gets a looser sanity bound)
    assert lag_down[0] < 0.25 and lag_down[1] < 0.1, lag_down
    assert lag_all[1] < 0.1 and lag_all[0] < 1.0, lag_all


def test_writer_starts_without_valkey_and_fills_in_when_it_appears(tmp_path):
    from tests.io.conftest import ValkeyProc

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def main():
        j = Journal(tmp_path, "run-late", JournalConfig())
        await j.open()
        w = ValkeyWriter(url, ValkeyConfig(backlog=100, backoff_max=0.3, timeout=0.5), j)
        await w.start()  # must not raise
        events = inputs(2000)
        for k in range(0, 2000, 100):
            j.append(events[k:k + 100])
            w.enqueue(events[k:k + 100])
            await asyncio.sleep(0)
        assert not w.stats()["connected"]
        server = ValkeyProc(tmp_path / "vk", port)
        await asyncio.get_running_loop().run_in_executor(None, server.start)
        try:
            await wait_until(lambda: w.stats()["acked_seq"] == 2000, 20)
            await j.close()
            await w.close()
            exp = expected_ids(j.path)
            return exp, await stream_ids(url, exp)
        finally:
            server.stop()

    exp, got = asyncio.run(main())
    assert got == exp


def test_catch_up_is_idempotent(valkey_url, tmp_path):
    """Writing the same journal again (progress lost) adds nothing: every entry is refused as already there."""
    async def main():
        j = Journal(tmp_path, "run-i", JournalConfig())
        await j.open()
        j.append(inputs(3000))
        await j.close()
        w1 = ValkeyWriter(valkey_url, ValkeyConfig(max_batch=500), j.path)
        await w1.start()
        assert await w1.catch_up_journal(timeout=20) == 3000
        await w1.close()
        # six steps and no pause between them: no input event came in, nobody was waiting for the loop
        assert w1.stats()["batches"] == 6 and w1.stats()["catchup_yields"] == 0
        c = redis.from_url(valkey_url)
        await c.delete("hmarl:progress:run-i")
        w2 = ValkeyWriter(valkey_url, ValkeyConfig(), j.path)
        await w2.start()
        await w2.catch_up_journal(timeout=20)
        await w2.close()
        await c.aclose()
        exp = expected_ids(j.path)
        return exp, await stream_ids(valkey_url, exp), w2.stats()

    exp, got, stats = asyncio.run(main())
    assert got == exp and stats["duplicates"] == 3000


def test_learned_state_survives_and_an_outage_is_not_mistaken_for_a_fresh_start(valkey, valkey_url, tmp_path):
    state = {"weights": {"flow": 0.4, "tape": 0.6}, "regimes": [[1, 2], [3, 4]], "n": 12, "name": "hedge"}

    async def main():
        w = ValkeyWriter(valkey_url, ValkeyConfig(backoff_max=0.2, timeout=0.5))
        await w.start()
        assert await w.load_state("coordinator") is None
        await w.save_state("coordinator", state)
        await w.write_summary("run-s", {"trades": {"WDOZ26": 10}, "decisions": 3})
        await w.close()
        w2 = ValkeyWriter(valkey_url, ValkeyConfig(backoff_max=0.2, timeout=0.5))
        await w2.start()
        loaded = await w2.load_state("coordinator")
        valkey.crash()
        with pytest.raises(ValkeyUnavailable):
            await w2.load_state("coordinator")
        await w2.save_state("executor", {"qty": 2})  # kept, written once Valkey is back
        await asyncio.get_running_loop().run_in_executor(None, valkey.start)
        await wait_until(lambda: not w2._pending_state, 10)
        executor = await w2.load_state("executor")
        await w2.close()
        from app.io.query import aruns

        return loaded, executor, await aruns(valkey_url)

    loaded, executor, runs = asyncio.run(main())
    assert loaded == state and executor == {"qty": 2}
    assert runs[0]["run_id"] == "run-s" and runs[0]["trades"] == {"WDOZ26": 10}


def test_derived_events_beyond_the_backlog_are_dropped_and_counted(tmp_path):
    async def main():
        w = ValkeyWriter(f"redis://127.0.0.1:{free_port()}/0", ValkeyConfig(backlog=10, timeout=0.2))
        await w.start()
        sig = one_of_each()[4]
        w.enqueue([sig] * 100)
        st = w.stats()
        w.cfg = ValkeyConfig(backlog=10, timeout=0.2, close_timeout=0.3)
        await w.close()
        return st

    st = asyncio.run(main())
    assert st["dropped"] == 90 and st["backlog"] == 10


def test_streams_are_trimmed_approximately(valkey_url, tmp_path):
    async def main():
        w = ValkeyWriter(valkey_url, ValkeyConfig(maxlen_by_kind={"trade": 100}))
        await w.start()
        w.enqueue([trade(i, ts=T0 + i) for i in range(3000)])
        await w.close()
        c = redis.from_url(valkey_url)
        n = await c.xlen("hmarl:trade:WDOZ26")
        await c.aclose()
        return n

    n = asyncio.run(main())
    assert 100 <= n < 400


def test_events_without_a_time_take_the_run_start_never_an_id_near_zero(valkey_url, tmp_path):
    """A book snapshot with ts 0 before the first trade used to get an id like 0-2, refused as older than the
    stream's last id in every later run. It takes the run's start (the journal header's wall clock) instead, and the
    stream's later ids never go below it (the trade-off for days that are not today: their ids stay at the start)."""
    from app.events import Book, State
    from app.io.valkey_writer import run_start_ms

    async def main():
        j = Journal(tmp_path, "run-t", JournalConfig())
        await j.open()
        w = ValkeyWriter(valkey_url, ValkeyConfig(), j)
        await w.start()
        snapshot = Book(ticker="WDOZ26", ts=0, side="bid", levels=((5000.0, 1, 1),), received_ns=0)
        events = [State(conn_type=2, result=4, name="MARKET_CONNECTED", received_ns=0), snapshot,
                  *[trade(i) for i in range(5)], snapshot, State(conn_type=2, result=3, name="X", received_ns=0)]
        j.append(events)
        w.enqueue(events)
        await j.close()
        await w.close()
        exp = expected_ids(j.path)
        return exp, await stream_ids(valkey_url, exp), run_start_ms(j.path)[1]

    exp, got, start = asyncio.run(main())
    assert got == exp
    ms0 = T0 // 1_000_000
    assert got["hmarl:book:WDOZ26"] == [f"{start}-2", f"{max(start, ms0 + 1)}-8"]
    assert [int(i.split("-")[0]) for i in got["hmarl:trade:WDOZ26"]] == [ms0] * 4 + [ms0 + 1]
    state_ms = [int(i.split("-")[0]) for i in got["hmarl:state"]]
    assert state_ms[0] == state_ms[1] == start


def test_mixed_and_oversized_batches_keep_the_journal_ids_and_bytes(valkey_url, tmp_path):
    """One enqueue() with inputs and derived events mixed, larger than max_batch, with payloads given by the caller
    (as the pipeline does) and a book far larger than 64 KB: the streams hold the journal's ids and bytes."""
    from app.events import Book
    from app.io import codec

    async def main():
        j = Journal(tmp_path, "run-m", JournalConfig())
        await j.open()
        w = ValkeyWriter(valkey_url, ValkeyConfig(max_batch=300), j)
        await w.start()
        huge = Book(ticker="WDOZ26", ts=T0 + 5, side="ask", received_ns=1,
                    levels=tuple((5000.0 + i * 0.5, i, 1) for i in range(8000)))
        events = [*inputs(700), huge, *inputs(200)[1:]]
        derived = one_of_each()[4:]
        mixed = events[:400] + derived + events[400:]
        j.append(events)
        w.enqueue(mixed, codec.encode_batch(mixed))
        await j.close()
        await w.close()
        exp = {}
        for key, sid, payload in entries_from_journal(j.path):
            exp.setdefault(key, []).append((sid, payload))
        c = redis.from_url(valkey_url)
        got = {k: [(sid.decode(), f[b"d"]) for sid, f in await c.xrange(k)] for k in exp}
        n_derived = sum([await c.xlen(k) for k in ("hmarl:signal:WDOZ26", "hmarl:decision:WDOZ26",
                                                   "hmarl:order:WDOZ26", "hmarl:fill:WDOZ26",
                                                   "hmarl:position:WDOZ26", "hmarl:reward:WDOZ26",
                                                   "hmarl:risk:WDOZ26", "hmarl:metric")])
        await c.aclose()
        return exp, got, n_derived, len(codec.encode(huge)), w.stats()

    exp, got, n_derived, huge_len, stats = asyncio.run(main())
    assert huge_len > 65_536
    assert got == exp and sum(len(v) for v in exp.values()) == 900
    assert n_derived == 8 and stats["written"] == 908 and stats["batches"] >= 4


def test_the_backlog_keeps_exactly_the_newest_inputs(tmp_path):
    """Valkey unreachable: beyond `backlog` the oldest inputs leave memory (for the journal to supply later),
    entry by entry even though they were enqueued in batches."""
    async def main():
        j = Journal(tmp_path, "run-b", JournalConfig())
        await j.open()
        w = ValkeyWriter(f"redis://127.0.0.1:{free_port()}/0", ValkeyConfig(backlog=250, timeout=0.2), j)
        await w.start()
        events = inputs(1000)
        for k in range(0, 1000, 64):
            j.append(events[k:k + 64])
            w.enqueue(events[k:k + 64])
        st = w.stats()
        w.cfg = ValkeyConfig(backlog=250, timeout=0.2, close_timeout=0.3)
        await w.close()
        await j.close()
        return st

    st = asyncio.run(main())
    assert st["spilled"] == 750 and st["backlog"] == 250 and st["catchup_pending"] == 750


async def script_loads(client) -> int:
    return (await client.info("commandstats")).get("cmdstat_script|load", {}).get("calls", 0)


def test_writes_go_on_after_the_script_cache_is_flushed_and_the_held_connection_is_killed(valkey_url, tmp_path):
    """The hot call runs EVALSHA on a connection of its own (app/io/valkey_script.py): a server that forgot the
    script gets it again, and a connection the server closed is replaced, with every input event written once."""
    async def main():
        j = Journal(tmp_path, "run-h", JournalConfig())
        await j.open()
        w = ValkeyWriter(valkey_url, ValkeyConfig(batch_interval=0.01), j)
        await w.start()
        admin = redis.from_url(valkey_url)
        events = inputs(3000)
        for k, step in enumerate(range(0, len(events), 100)):
            batch = events[step:step + 100]
            j.append(batch)
            w.enqueue(batch)
            await wait_until(lambda: w.stats()["acked_seq"] == j.seq, 10)
            if k == 5:
                loads = await script_loads(admin)
                await admin.script_flush()
            if k == 7:  # the NOSCRIPT reply made the writer load it again
                assert await script_loads(admin) == loads + 1
            if k == 15:  # every normal client but admin: the writer's held connection among them
                killed = await admin.client_kill_filter(_type="normal", skipme=True)
                assert killed >= 1
        stats = w.stats()
        await admin.aclose()
        await j.close()
        await w.close()
        return expected_ids(j.path), await stream_ids(valkey_url, expected_ids(j.path)), stats

    exp, got, stats = asyncio.run(main())
    assert got == exp and sum(len(v) for v in exp.values()) == 3000
    assert stats["inputs_written"] + stats["caught_up"] >= 3000 and stats["lost"] == 0 and stats["reconnects"] >= 1
