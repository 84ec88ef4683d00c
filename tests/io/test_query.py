import asyncio
import json
from datetime import datetime, timezone

import pytest

from app.config import ValkeyConfig
from app.io.query import aquery, astreams, query, to_ms
from app.io.valkey_server import ValkeyServer
from app.io.valkey_writer import ValkeyWriter
from tests.io.samples import T0, trade

MS0 = T0 // 1_000_000  # 2026-11-20 10:00:00 B3 = 13:00:00 UTC


async def _fill(url: str, n: int = 1000, prefix: str = "hmarl") -> None:
    w = ValkeyWriter(url, ValkeyConfig(prefix=prefix))
    await w.start()
    w.enqueue([trade(i, "WDOZ26", ts=T0 + i * 1_000_000_000) for i in range(n)])  # one trade per second
    await w.close()


def test_time_bounds_in_every_accepted_form():
    assert to_ms(None) is None
    assert to_ms("2026-11-20 10:00") == MS0  # B3 local time
    assert to_ms("20/11/2026 10:00:00") == MS0
    assert to_ms("2026-11-20T13:00:00+00:00") == MS0
    assert to_ms(datetime(2026, 11, 20, 13, tzinfo=timezone.utc)) == MS0
    assert to_ms(datetime(2026, 11, 20, 10)) == MS0
    assert to_ms(T0) == MS0 and to_ms(MS0) == MS0 and to_ms(MS0 / 1000) == MS0
    with pytest.raises(ValueError):
        to_ms("yesterday-ish")


def test_query_by_time_range_limit_and_last(valkey_url):
    asyncio.run(_fill(valkey_url))
    rows = query(valkey_url, "WDOZ26", "trade", "2026-11-20 10:01", "2026-11-20 10:02")
    assert [r["trade_id"] for r in rows] == list(range(61, 122))  # both ends inclusive
    assert rows[0]["type"] == "Trade" and rows[0]["ts"] == T0 + 60 * 1_000_000_000 and "id" in rows[0]
    assert len(query(valkey_url, "WDOZ26", "trade", limit=25)) == 25
    last = query(valkey_url, "WDOZ26", "trade", None, "2026-11-20 10:02", limit=3, last=True)
    assert [r["trade_id"] for r in last] == [119, 120, 121]
    assert len(query(valkey_url, "WDOZ26", "trade")) == 1000  # paged internally
    assert query(valkey_url, "WINZ26", "trade") == []
    with pytest.raises(ValueError, match="needs a ticker"):
        query(valkey_url, None, "trade")


def test_query_works_inside_a_running_loop(valkey_url):
    """Notebooks run a loop already: the sync function must still work there."""
    async def main():
        await _fill(valkey_url, 10)
        return query(valkey_url, "WDOZ26", "trade"), await aquery(valkey_url, "WDOZ26", "trade", limit=2)

    rows, rows2 = asyncio.run(main())
    assert len(rows) == 10 and len(rows2) == 2


def test_query_command_json_and_table(valkey_url, app_cli, tmp_path):
    asyncio.run(_fill(valkey_url, 100))
    res = app_cli("query", "--url", valkey_url, "--ticker", "WDOZ26", "--kind", "trade", "--from",
                  "2026-11-20 10:00:10", "--to", "2026-11-20 10:00:14", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert [r["trade_id"] for r in rows] == [11, 12, 13, 14, 15]
    table = app_cli("query", "--url", valkey_url, "--ticker", "WDOZ26", "--limit", "3", cwd=tmp_path)
    assert table.returncode == 0 and "5000" in table.stdout and "price" in table.stdout
    listing = app_cli("query", "--url", valkey_url, "--list", "--json", cwd=tmp_path)
    assert json.loads(listing.stdout.splitlines()[0])["key"] == "hmarl:trade:WDOZ26"


def test_query_command_after_the_run_starts_the_embedded_store(app_cli, tmp_path):
    """The default store: the run is over and its server stopped; `query` brings it up on the same data."""
    async def run():
        server = ValkeyServer(ValkeyConfig(), tmp_path / "data")
        url = await server.start()
        await _fill(url, 50)
        await server.stop()

    asyncio.run(run())
    (tmp_path / "config.toml").write_text('[run]\ndata_dir = "data"\n')
    res = app_cli("query", "--config", str(tmp_path / "config.toml"), "--ticker", "WDOZ26", "--json",
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 50
    assert not (tmp_path / "data" / "valkey" / "server.json").exists()  # and stopped it again


def test_query_command_reports_an_unreachable_store(app_cli, tmp_path):
    from tests.io.conftest import free_port

    res = app_cli("query", "--url", f"redis://:secret@127.0.0.1:{free_port()}/0", "--ticker", "WDOZ26",
                  cwd=tmp_path)
    assert res.returncode == 4
    assert "secret" not in res.stderr and "***" in res.stderr


def test_streams_listing(valkey_url):
    asyncio.run(_fill(valkey_url, 5))
    rows = asyncio.run(astreams(valkey_url))
    assert rows == [{"key": "hmarl:trade:WDOZ26", "kind": "trade", "ticker": "WDOZ26", "length": 5,
                     "first_id": f"{MS0}-1", "last_id": f"{MS0 + 4000}-5"}]
