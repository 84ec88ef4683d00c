"""Catch-up of earlier runs: bounded, cancelled at once, and an earlier run written after a later one loses
nothing (its older entries go to its late streams, compared frame by frame with its journal)."""
import asyncio
import time

from app.config import JournalConfig, ValkeyConfig
from app.io.earlier_runs import catch_up_runs, pending_runs
from app.io.journal import Journal
from app.io.valkey_writer import ValkeyWriter
from tests.io.conftest import free_port
from tests.io.samples import T0, inputs, trade
from tests.io.valkey_compare import missing_frames


def _journal(root, run_id, events) -> None:
    async def main():
        j = Journal(root, run_id, JournalConfig())
        await j.open()
        j.append(events)
        await j.close()

    asyncio.run(main())


def test_an_unreachable_valkey_costs_the_budget_and_then_the_run_is_skipped(tmp_path):
    _journal(tmp_path, "run-a", inputs(200))
    runs = pending_runs(tmp_path, tmp_path / "run-now")
    assert [r.name for r in runs] == ["run-a"]
    t0 = time.monotonic()
    out = asyncio.run(catch_up_runs(f"redis://127.0.0.1:{free_port()}/0", ValkeyConfig(timeout=0.2), runs, 1.0))
    assert time.monotonic() - t0 < 4
    assert out["run-a"].startswith("skipped") and not (tmp_path / "run-a" / "valkey.complete").exists()


def test_a_stop_cancels_the_catch_up_at_once(tmp_path):
    _journal(tmp_path, "run-a", inputs(200))

    async def main() -> float:
        task = asyncio.create_task(catch_up_runs(f"redis://127.0.0.1:{free_port()}/0", ValkeyConfig(timeout=0.2),
                                                 pending_runs(tmp_path, tmp_path / "x"), 600))
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return time.monotonic() - t0

    assert asyncio.run(main()) < 1.0


def test_an_earlier_run_written_after_a_later_one_keeps_every_frame(valkey_url, tmp_path):
    """Today's run wrote newer ids first; the earlier run's entries are older than the streams' last ids. They are
    neither refused nor counted as duplicates: they land in its late streams under their own ids."""
    old = [trade(i) for i in range(300)]
    new = [trade(i, ts=T0 + 3_600_000_000_000 + i * 1_000_000) for i in range(300)]
    _journal(tmp_path, "run-a", old)
    _journal(tmp_path, "run-b", new)

    async def main():
        b = ValkeyWriter(valkey_url, ValkeyConfig(), tmp_path / "run-b", run_id="run-b")
        await b.start()
        await b.catch_up_journal(timeout=30)
        await b.close()
        a = ValkeyWriter(valkey_url, ValkeyConfig(), tmp_path / "run-a", run_id="run-a")
        await a.start()
        await a.catch_up_journal(timeout=30)
        st = a.stats()
        await a.close()
        # the same run again with its progress forgotten: every entry is found where it went, a duplicate
        import redis.asyncio as redis

        c = redis.from_url(valkey_url)
        await c.delete("hmarl:progress:run-a")
        await c.aclose()
        again = ValkeyWriter(valkey_url, ValkeyConfig(), tmp_path / "run-a", run_id="run-a")
        await again.start()
        await again.catch_up_journal(timeout=30)
        st_again = again.stats()
        await again.close()
        return st, st_again, await missing_frames(valkey_url, tmp_path / "run-a"), \
            await missing_frames(valkey_url, tmp_path / "run-b")

    st, st_again, (n_a, missing_a), (n_b, missing_b) = asyncio.run(main())
    assert st["late"] == 300 and st["duplicates"] == 0 and st["lost"] == 0
    assert n_a == 300 and missing_a == [] and n_b == 300 and missing_b == []
    assert st_again["duplicates"] == 300 and st_again["late"] == 0


def test_a_final_state_valkey_never_got_is_written_at_the_next_start(valkey_url, tmp_path):
    """Valkey down through the end of a run: its final learned state and summary are kept beside the journal and
    the next start hands them to Valkey (and restores that state) before anything else."""
    from app.io.earlier_runs import UNWRITTEN_FILE, adopt_unwritten, save_unwritten

    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-now").mkdir()

    async def main():
        down = ValkeyWriter(f"redis://127.0.0.1:{free_port()}/0", ValkeyConfig(timeout=0.2, close_timeout=0.3),
                            run_id="run-a")
        await down.start()
        await down.save_state("hierarchy", {"w": [1, 2, 3]})
        await down.write_summary("run-a", {"decisions": 7})
        await down.close()
        assert save_unwritten(tmp_path / "run-a", down)
        up = ValkeyWriter(valkey_url, ValkeyConfig(), run_id="run-now")
        await up.start()
        adopted = adopt_unwritten(tmp_path, tmp_path / "run-now", up)
        restored = await up.load_state("hierarchy")
        await up.close()
        c = redis.from_url(valkey_url)
        stored = await c.hget("hmarl:run:run-a", "decisions")
        await c.aclose()
        fresh = ValkeyWriter(valkey_url, ValkeyConfig(), run_id="x")
        await fresh.start()
        from_valkey = await fresh.load_state("hierarchy")
        await fresh.close()
        return adopted, restored, stored, from_valkey

    import redis.asyncio as redis

    adopted, restored, stored, from_valkey = asyncio.run(main())
    assert adopted == ["run-a"] and restored == {"w": [1, 2, 3]} == from_valkey and stored == b"7"
    assert not (tmp_path / "run-a" / UNWRITTEN_FILE).exists()


def test_an_unreadable_earlier_journal_is_skipped_with_one_line(valkey_url, tmp_path, caplog):
    import logging

    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-a" / "run-a-00001.hmj").write_bytes(b"not a journal at all")
    _journal(tmp_path, "run-b", inputs(50))
    caplog.set_level(logging.WARNING, logger="app.io.valkey")
    out = asyncio.run(catch_up_runs(valkey_url, ValkeyConfig(), pending_runs(tmp_path, tmp_path / "x"), 10))
    assert out["run-a"].startswith("skipped") and "bad magic" in out["run-a"] and out["run-b"] == "complete"
    assert [r.getMessage() for r in caplog.records if "run-a" in r.getMessage()] == [
        f"valkey: earlier run run-a skipped: its journal cannot be read ({tmp_path / 'run-a' / 'run-a-00001.hmj'}: "
        "not an hmarl journal (bad magic))"]
