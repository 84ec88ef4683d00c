"""Storage faults that say so (issue 10 item 2): a full disk, a read-only data directory and a Valkey refusing
writes show as an alarm (status line, monitor, `metrics` topic, summary) with the backlog held in memory against
its bound; past the bound the loss is counted; when the fault clears, frames go in in order and nothing is lost.

Faults are real where they are cheap (a Valkey with maxmemory 1 refuses writes exactly as a full one does; a
read-only directory); the full disk is the journal's one write method raising ENOSPC.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as redis
from rich.console import Console

from app.app import App
from app.commands.run import status_line
from app.config import Config, JournalConfig, ValkeyConfig
from app.events import Metric
from app.io.alarms import current_alarm, metric_values, run_alarms
from app.io.journal import Journal, read_journal
from app.io.unpersisted import describe, measure
from app.io.valkey_writer import ValkeyWriter
from app.monitor import render
from app.pipeline import Pipeline
from tests.io.samples import inputs
from app.io.valkey_compare import missing_frames

FAST = JournalConfig(flush_interval=0.01)


class FullDisk:
    """Journal writes fail with ENOSPC while `full` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = True
        self.failed = 0
        real = Journal._write

        async def write(journal: Journal, data: bytes) -> None:
            if self.full:
                self.failed += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            await real(journal, data)

        monkeypatch.setattr(Journal, "_write", write)


async def _until(pred, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.02)


def test_frames_held_on_a_full_disk_go_in_in_order_when_space_returns_and_the_alarm_clears(tmp_path, monkeypatch):
    disk = FullDisk(monkeypatch)
    events = inputs(3000)

    async def main():
        j = Journal(tmp_path, "run-a", FAST)
        await j.open()
        for k in range(0, 1500, 100):
            j.append(events[k:k + 100])
            await asyncio.sleep(0.005)
        await _until(lambda: disk.failed >= 2)
        during = j.stats()
        alarm = current_alarm({"journal": during})
        for k in range(1500, len(events), 100):  # the run goes on while the disk is full
            j.append(events[k:k + 100])
        disk.full = False
        await asyncio.wait_for(j.flush(), timeout=10)
        after = j.stats()
        await j.close()
        return during, alarm, after

    during, alarm, after = asyncio.run(main())
    assert during["error"] and "No space left on device" in during["error"] and during["flushed_seq"] == 0
    assert during["buffered_bytes"] > 0
    assert alarm and "No space left on device" in alarm and "held in memory" in alarm
    assert after["error"] is None and after["flushed_seq"] == len(events) and after["refused"] == 0
    assert current_alarm({"journal": after}) is None
    assert "No space left on device" in run_alarms({"journal": after})["journal"]["last_error"]  # the run remembers
    assert list(read_journal(tmp_path / "run-a")) == events  # every frame, in order


def test_past_the_journal_memory_bound_frames_are_refused_counted_and_reported(tmp_path, monkeypatch):
    FullDisk(monkeypatch)
    cfg = JournalConfig(flush_interval=0.01, max_buffer_mb=0.05)  # ~50 KB in memory at most
    events = inputs(4000)

    async def main():
        j = Journal(tmp_path, "run-b", cfg)
        await j.open()
        for k in range(0, len(events), 100):
            j.append(events[k:k + 100])
            await asyncio.sleep(0.002)
        stats = j.stats()
        lost = measure(j, None)
        await j.close(timeout=0.2)
        return stats, lost

    stats, lost = asyncio.run(main())
    assert stats["refused"] > 0 and stats["seq"] == len(events)
    assert stats["max_buffered_bytes"] <= stats["max_buffer_bytes"] + 20_000  # one append past the bound at most
    alarm = current_alarm({"journal": stats})
    assert f"{stats['refused']:,} frames refused past the bound" in alarm
    assert metric_values({"journal": stats})["journal_refused"] == stats["refused"]
    assert lost.refused == stats["refused"] and lost.lost_inputs
    assert "dropped earlier when the in-memory bound was passed (journal.max_buffer_mb" in describe(lost)


@contextlib.contextmanager
def read_only(directory: Path):
    """The directory and its files made read-only: permissions for a normal user; for root (which ignores them) the
    immutable attribute, where the filesystem has it."""
    paths = [directory, *directory.iterdir()]
    if os.geteuid() != 0:
        for p in paths:
            p.chmod(0o500 if p.is_dir() else 0o400)
        try:
            yield
        finally:
            for p in paths:
                p.chmod(0o700 if p.is_dir() else 0o600)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", *map(str, paths)],
                                                        capture_output=True).returncode:
        pytest.skip("running as root on a filesystem without the immutable attribute")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_a_read_only_data_directory_is_an_alarm_and_the_close_within_its_bound_reports_the_frames(tmp_path):
    async def main():
        j = Journal(tmp_path, "run-c", JournalConfig(flush_interval=0.01, rotate_mb=0.01))  # rotation opens files
        await j.open()
        with read_only(tmp_path / "run-c"):
            events = inputs(2000)
            for k in range(0, len(events), 100):
                j.append(events[k:k + 100])
                await asyncio.sleep(0.005)
            await _until(lambda: j.stats()["error"] is not None)
            stats = j.stats()
            t0 = time.monotonic()
            await j.close(timeout=0.5)
            return stats, time.monotonic() - t0, measure(j, None)

    stats, took, lost = asyncio.run(main())
    assert stats["error"] and ("Permission denied" in stats["error"] or "not permitted" in stats["error"])
    assert stats["error"] in current_alarm({"journal": stats})
    assert took < 2.0
    assert lost.events > 0 and lost.first_seq == stats["flushed_seq"] + 1 and lost.last_seq == 2000
    assert stats["error"] in describe(lost)


async def _maxmemory(url: str, value: str) -> None:
    c = redis.from_url(url)
    try:
        await c.config_set("maxmemory-policy", "noeviction")
        await c.config_set("maxmemory", value)
    finally:
        await c.aclose()


def test_valkey_refusing_writes_is_an_alarm_and_when_it_accepts_again_every_journal_frame_is_there(valkey_url,
                                                                                                   tmp_path):
    events = inputs(4000)

    async def main():
        j = Journal(tmp_path, "run-d", FAST)
        await j.open()
        w = ValkeyWriter(valkey_url, ValkeyConfig(batch_interval=0.01, backoff_max=0.2, backlog=1000), j)
        await w.start()
        await _maxmemory(valkey_url, "1")  # every write refused: "OOM command not allowed ..."
        try:
            for k in range(0, len(events), 100):
                batch = events[k:k + 100]
                j.append(batch)
                w.enqueue(batch)
                await asyncio.sleep(0.005)
            await _until(lambda: w.stats()["error"] is not None)
            during = w.stats()
        finally:
            await _maxmemory(valkey_url, "0")
        await _until(lambda: w.stats()["acked_seq"] == len(events), timeout=20)
        after = w.stats()
        await j.close()
        await w.close()
        return during, after, await missing_frames(valkey_url, j.path)

    during, after, (compared, missing) = asyncio.run(main())
    assert during["error"].startswith("write refused (OutOfMemoryError") and "maxmemory" in during["error"]
    alarm = current_alarm({"valkey": during})
    assert "write refused" in alarm and "of 1,000" in alarm and "left to the journal" in alarm
    assert during["spilled"] > 0  # past valkey.backlog the oldest inputs fell back to the journal: counted
    assert metric_values({"valkey": during})["valkey_error"] == 1.0
    assert after["error"] is None and current_alarm({"valkey": after}) is None
    assert run_alarms({"valkey": after})["valkey"]["last_error"].startswith("write refused")
    assert compared == len(events) and missing == []


def test_the_status_line_the_monitor_and_the_metrics_topic_show_a_full_disk(tmp_path, monkeypatch):
    FullDisk(monkeypatch)
    cfg = msgspec.convert({"run": {"data_dir": str(tmp_path)}, "valkey": {"enabled": False},
                           "zmq": {"endpoint": "tcp://127.0.0.1:0"}, "journal": {"flush_interval": 0.01}}, Config)

    async def main():
        app = App(cfg)
        app.pipeline = p = Pipeline(cfg, run_id="run-e")
        await p.start()
        sent: list = []
        real = p.publisher.publish
        p.publisher.publish = lambda evs, payloads=None: (sent.extend(evs), real(evs, payloads))[1]
        p.on_batch(inputs(500))
        await _until(lambda: p.journal.stats()["error"] is not None)
        line = status_line(app, {}, 1.0)
        console = Console(record=True, width=200)
        console.print(render(app.snapshot()))
        p.publish_metrics()
        await p.stop(deadline=time.monotonic() + 1.0)
        return line, console.export_text(), sent, app.summary()

    line, screen, sent, summary = asyncio.run(main())
    assert "ALARM journal" in line and "No space left on device" in line
    assert "ALARM journal" in screen and "No space left on device" in screen
    storage = [m for m in sent if type(m) is Metric and m.name == "storage"]
    assert storage and storage[0].values["alarm"] == 1.0 and storage[0].values["journal_error"] == 1.0
    assert "No space left on device" in summary["storage_alarms"]["journal"]["last_error"]
    assert summary["unpersisted"]["events"] == 500
