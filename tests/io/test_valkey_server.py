import asyncio
import json
import sys

import pytest
import redis.asyncio as redis

from app.config import ValkeyConfig
from app.io.valkey_server import ValkeyServer, ValkeyServerError, mask_url, ping


def test_embedded_server_keeps_its_data_across_restarts_and_a_second_process_attaches(tmp_path):
    async def main():
        server = ValkeyServer(ValkeyConfig(), tmp_path)
        url = await server.start()
        assert url.startswith("redis://127.0.0.1:")
        assert (tmp_path / "valkey" / "server.json").exists()
        c = redis.from_url(url)
        await c.set("hmarl:test", "kept")
        await c.aclose()
        # a query during the run: the data dir is locked, so it uses the running server
        other = ValkeyServer(ValkeyConfig(), tmp_path)
        assert await other.start() == url and other.attached
        await other.stop()
        assert await ping(url)  # the attached side never stops the owner's server
        # a crash (kill -9) and a restart on the same directory keep the append-only data
        server.kill()
        assert not await ping(url)
        url2 = await server.start()
        c = redis.from_url(url2)
        assert await c.get("hmarl:test") == b"kept"
        await c.aclose()
        await server.stop()
        assert not await ping(url2)
        # a clean stop and a fresh start (as `query` after the run does) still has it
        again = ValkeyServer(ValkeyConfig(), tmp_path)
        url3 = await again.start()
        c = redis.from_url(url3)
        value = await c.get("hmarl:test")
        await c.aclose()
        await again.stop()
        return value

    assert asyncio.run(main()) == b"kept"
    assert (tmp_path / "valkey" / "appendonlydir").is_dir()


def test_an_orphan_server_from_a_crashed_run_is_replaced(tmp_path):
    async def main():
        first = ValkeyServer(ValkeyConfig(), tmp_path)
        await first.start()
        pid = first.pid
        first._release_lock()  # as if our process had died: lock gone, server still running
        second = ValkeyServer(ValkeyConfig(), tmp_path)
        url = await second.start()
        info = json.loads((tmp_path / "valkey" / "server.json").read_text())
        alive = await ping(url)
        await second.stop()
        first._proc.wait(timeout=10)
        return pid, info["pid"], alive

    old, new, alive = asyncio.run(main())
    assert old != new and alive


def test_external_url_spawns_nothing():
    async def main():
        server = ValkeyServer(ValkeyConfig(url="valkey://:pw@example.invalid:6380/1"), "unused")
        url = await server.start()
        await server.stop()
        return url, server.pid

    url, pid = asyncio.run(main())
    assert url == "redis://:pw@example.invalid:6380/1" and pid is None


def test_embedded_on_windows_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(ValkeyServerError, match='valkey.url = "redis://'):
        asyncio.run(ValkeyServer(ValkeyConfig(), tmp_path).start())


def test_passwords_never_reach_a_log_line():
    assert mask_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("rediss://user:s3cret@h/2") == "rediss://user:***@h/2"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
