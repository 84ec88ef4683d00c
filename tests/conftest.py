import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# what a test run changes from the defaults: a free ZMQ port, so tests never collide with a running hmarl
TEST_CONFIG = '[zmq]\nendpoint = "tcp://127.0.0.1:0"\n'


def child_env(env: dict | None = None) -> dict:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return full_env


def run_app(*args: str, timeout: float = 120, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m app ...` in a child process, as a user would run it, in a scratch working directory (its
    ./config.toml only moves ZMQ to a free port; data/ lands there too)."""
    if cwd is None:
        cwd = Path(tempfile.mkdtemp(prefix="hmarl-test-"))
        (cwd / "config.toml").write_text(TEST_CONFIG)
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=timeout,
                          env=child_env(env), cwd=str(cwd), stdin=subprocess.DEVNULL)


@pytest.fixture
def app_cli():
    return run_app


def write_journal(directory: Path, run_id: str, events: list) -> Path:
    """A real run journal holding `events` (tapes for replay and backtest tests)."""
    import asyncio

    from app.config import JournalConfig
    from app.io.journal import Journal

    async def write() -> Path:
        j = Journal(directory, run_id, JournalConfig())
        await j.open()
        j.append(events)
        await j.close()
        return j.path

    return asyncio.run(write())


def pytest_collection_modifyitems(session, config, items):
    """The native ring's own tests first: the ring is one per process, and once a DLL session of this process has
    claimed it (feed.bridge = native) its owner thread is the ring's only consumer."""
    items.sort(key=lambda item: 0 if "tests/feed/native/test_ring.py" in item.nodeid else 1)
