"""ReplayFeed: a journal replays exactly the events written, in order, deterministically; CSV too; pacing."""
import asyncio
import hashlib
import time

import msgspec
import pytest

from app import config as config_mod
from app.config import JournalConfig
from app.events import Trade
from app.feed.base import FeedError
from app.feed.replay import ReplayFeed, detect_format
from app.feed.replay.tapes import NoTradesRead
from app.io.journal import Journal
from tests.io.samples import inputs, trade


def _cfg(**replay):
    return config_mod.load(None, {f"replay.{k}": v for k, v in replay.items()})


def _journal(tmp_path, events, **cfg):
    async def write():
        j = Journal(tmp_path / "journal", "run-r", JournalConfig(**cfg))
        await j.open()
        for k in range(0, len(events), 333):
            j.append(events[k:k + 333])
        await j.close()
        return j.path

    return asyncio.run(write())


def _replay(path, speed=None, **replay):
    async def main():
        feed = ReplayFeed(path, speed, _cfg(**replay))
        batches = []
        await feed.start(batches.append)
        await asyncio.wait_for(feed.done.wait(), 60)
        await feed.stop()
        return batches, feed.stats()

    return asyncio.run(main())


def _digest(events) -> str:
    enc = msgspec.msgpack.Encoder()
    return hashlib.sha256(b"".join(enc.encode(msgspec.structs.replace(e, received_ns=0)) for e in events)).hexdigest()


def test_a_journal_replays_exactly_the_events_written_in_order(tmp_path):
    events = inputs(10_000)
    path = _journal(tmp_path, events, rotate_mb=0.3)
    batches, stats = _replay(path, restamp=False)
    got = [e for b in batches for e in b]
    assert got == events
    assert max(len(b) for b in batches) <= 1024
    assert stats["format"] == "journal" and stats["phase"] == "finished" and stats["progress"] == 1.0
    assert stats["events"] == 10_000 and sum(stats["trades"].values()) == sum(type(e) is Trade for e in events)


def test_replay_is_deterministic_and_received_ns_is_stamped_at_delivery(tmp_path):
    events = inputs(5000)
    path = _journal(tmp_path, events)
    first, _ = _replay(path)
    second, _ = _replay(path)
    a = [e for b in first for e in b]
    b = [e for bt in second for e in bt]
    assert _digest(a) == _digest(b) == _digest(events)
    assert [len(x) for x in first] == [len(x) for x in second]
    assert all(e.received_ns > 10_000 for e in a)  # monotonic clock at delivery, not the recorded values


def test_a_truncated_journal_replays_what_is_there_and_reports_it(tmp_path):
    events = inputs(2000)
    path = _journal(tmp_path, events)
    part = sorted(path.glob("*.hmj"))[-1]
    part.write_bytes(part.read_bytes()[:-3])
    batches, stats = _replay(path, restamp=False)
    assert [e for b in batches for e in b] == events[:-1]
    assert stats["phase"] == "finished" and "truncated last frame" in stats["errors"][0]


def test_a_csv_export_replays_in_time_order(tmp_path):
    rows = "".join(f"WDOZ26;20/11/2026;10:00:{59 - i // 10:02d};8 - UBS;5123,{i % 2 * 5};1;3 - XP;Comprador\n"
                   for i in range(600))
    p = tmp_path / "wdo.csv"
    p.write_bytes(rows.encode("latin-1") + b"garbage line\n")
    assert detect_format(p) == "csv"
    batches, stats = _replay(p)
    got = [e for b in batches for e in b]
    assert len(got) == 600 and [t.trade_id for t in got] == list(range(1, 601))
    assert all(a.ts <= b.ts for a, b in zip(got, got[1:]))
    assert stats["trades"] == {"WDOZ26": 600} and stats["lines_skipped"] == 1
    assert stats["csv"]["skipped_lines"] == ["601: 1 columns, expected 8"]


def test_pacing_follows_exchange_time_and_never_batches_across_a_wait(tmp_path):
    # 40 trades over 2 s of exchange time, replayed at 10x: about 0.2 s
    events = [trade(i, ts=1_795_179_600_000_000_000 + i * 50_000_000) for i in range(40)]
    path = _journal(tmp_path, events)
    t0 = time.monotonic()
    batches, _ = _replay(path, speed=10.0, restamp=False)
    elapsed = time.monotonic() - t0
    assert [e for b in batches for e in b] == events
    assert elapsed >= 0.18
    assert len(batches) > 10  # delivered as time passed, not in one lump


def test_long_silences_are_shortened_when_paced(tmp_path):
    base = 1_795_179_600_000_000_000
    events = [trade(0, ts=base), trade(1, ts=base + 3600 * 10**9)]  # one hour apart
    path = _journal(tmp_path, events)
    t0 = time.monotonic()
    _replay(path, speed=100.0, max_gap=1.0)
    assert time.monotonic() - t0 < 5  # 1 s of gap at 100x, not 36 s


def test_stop_in_the_middle_ends_delivery(tmp_path):
    path = _journal(tmp_path, [trade(i, ts=1_795_179_600_000_000_000 + i * 10**9) for i in range(100)])

    async def main():
        feed = ReplayFeed(path, 1.0, _cfg())
        got = []
        await feed.start(got.extend)
        await asyncio.sleep(0.3)
        await feed.stop()
        n = len(got)
        await asyncio.sleep(0.3)
        return n, len(got), feed.done.is_set(), feed.stats()

    n, later, done, stats = asyncio.run(main())
    assert n == later and 0 < n < 100 and done and stats["phase"] == "stopped"


def test_unreadable_inputs_are_clear_errors(tmp_path):
    with pytest.raises(FeedError, match="does not exist"):
        detect_format(tmp_path / "missing.csv")
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(FeedError, match="neither"):
        detect_format(binary)
    empty = tmp_path / "empty.csv"
    empty.write_text("nothing;useful\n")
    # a tape that yields no trade fails at start, before anything is delivered (no quiet empty replay)
    with pytest.raises(NoTradesRead, match=r"no trade read from 1 lines.*'nothing;useful' \(2 columns\)"):
        _replay(empty)
