"""The embedded Valkey is brought back when it dies during a run, and nothing of the run is missing from it at the
end: every journal frame, the final learned state and the run summary (issue 14, item 3)."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as redis

from app.config import ValkeyConfig
from app.io.valkey_server import ValkeyServer
from tests.conftest import child_env
from tests.io.valkey_compare import missing_frames


def _server_pid(cwd: Path, deadline: float) -> int:
    info = cwd / "data/valkey/server.json"
    while time.monotonic() < deadline:
        try:
            return int(json.loads(info.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    raise AssertionError("the embedded server never started")


def test_a_killed_embedded_valkey_is_restarted_and_the_run_ends_complete_in_it():
    cwd = Path(tempfile.mkdtemp(prefix="hmarl-restart-"))
    (cwd / "config.toml").write_text('[zmq]\nendpoint = "tcp://127.0.0.1:0"\n')
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--duration", "7", "--json"], cwd=cwd,
                            env=child_env(None), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        first = _server_pid(cwd, time.monotonic() + 30)
        time.sleep(2.5)  # the run is feeding and writing
        os.kill(first, signal.SIGKILL)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["valkey"]["restarts"] == 1, err[-3000:]
    run_dir = cwd / "data/journal" / summary["run_id"]
    assert (run_dir / "valkey.complete").exists() and not (run_dir / "valkey.unwritten.msgpack").exists()

    async def check():
        server = ValkeyServer(ValkeyConfig(), cwd / "data")
        url = await server.start()
        try:
            c = redis.from_url(url)
            saved_ns = int(await c.hget("hmarl:learned:hierarchy", "_saved_ns"))
            has_summary = await c.exists(f"hmarl:run:{summary['run_id']}")
            await c.aclose()
            return saved_ns, has_summary, await missing_frames(url, run_dir)
        finally:
            await server.stop()

    saved_ns, has_summary, (compared, missing) = asyncio.run(check())
    assert saved_ns >= (run_dir / "summary.json").stat().st_mtime_ns - 5_000_000_000  # the final state, not 30 s older
    assert has_summary
    assert compared > 100 and missing == [], missing[:5]
