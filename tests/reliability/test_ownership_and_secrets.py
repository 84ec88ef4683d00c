"""One owner per data directory, no secret in any file, and one Ctrl-C burst that counts once."""
import json
import os
import signal
import subprocess
import sys
import time

import msgspec
import pytest

from app import config as config_mod
from app.io.datadir_lock import DataDirBusy, DataDirLock
from tests.conftest import TEST_CONFIG, child_env, run_app

HOLD = ("import sys, time\nfrom pathlib import Path\nfrom app.io.datadir_lock import DataDirLock\n"
        "DataDirLock(Path(sys.argv[1])).acquire()\nprint('held', flush=True)\ntime.sleep(60)\n")


def _holder(data_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(data_dir)], stdout=subprocess.PIPE, text=True,
                            env=child_env())
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_owner_is_refused_naming_the_holders_pid_and_a_crash_releases_it(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(DataDirBusy) as err:
            DataDirLock(tmp_path).acquire()
        assert f"pid {holder.pid}" in str(err.value) and "run.data_dir" in str(err.value)
    finally:
        holder.kill()  # kill -9: no cleanup ran, the OS drops the lock
        holder.wait()
    lock = DataDirLock(tmp_path)
    lock.acquire()
    assert lock.held
    lock.release()


def test_second_run_on_the_same_data_dir_exits_4_in_one_line_and_leaves_the_first_alone(tmp_path):
    holder = _holder(tmp_path / "data")
    try:
        (tmp_path / "config.toml").write_text(TEST_CONFIG)
        proc = run_app("run", "--duration", "2", "--json", cwd=tmp_path, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 4, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"pid {holder.pid}" in errors[0], proc.stderr
    assert not (tmp_path / "data" / "journal").exists()  # refused before anything was written


def test_a_valkey_password_never_reaches_a_file_in_the_data_dir(tmp_path):
    from app.app import App
    from app.loops import run as run_loop

    secret = "s3cr3t-planted-pw"
    cfg = config_mod.load(None, {
        "run.data_dir": str(tmp_path), "zmq.enabled": False, "valkey.enabled": False,
        "valkey.url": f"redis://user:{secret}@127.0.0.1:6399/0", "feed.kind": "simulator",
        "simulator.max_trades": 300, "simulator.pace": False})

    async def main():
        app = App(cfg, fresh=True)
        await app.start()
        await app.wait(5.0)
        await app.stop(finalize=True)
        return app

    app = run_loop(main, "asyncio")
    run_dir = tmp_path / "journal" / app.pipeline.run_id
    kept = msgspec.json.decode((run_dir / "config.json").read_bytes())
    assert kept["valkey"]["url"] == "redis://user:***@127.0.0.1:6399/0"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_one_ctrl_c_delivered_twice_stops_cleanly_with_exit_0(tmp_path):
    (tmp_path / "config.toml").write_text(TEST_CONFIG)
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--json"], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                            env=child_env())
    deadline = time.monotonic() + 30
    while not list((tmp_path / "data" / "journal").glob("*/config.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGINT)  # what `timeout` and some shells do: the group gets it, and so do we, twice
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "forcing exit" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert sum(summary["trades"].values()) > 0


def test_a_damaged_learned_state_is_refused_with_a_hint_to_use_fresh(tmp_path):
    from app.loops import run as run_loop
    from app.pipeline import LearnedStateError, Pipeline

    cfg = config_mod.load(None, {"run.data_dir": str(tmp_path), "zmq.enabled": False, "valkey.enabled": False,
                                 "journal.enabled": False})
    damaged = {"version": 1, "tickers": {"WDOZ26": {"learner": {"g": [0.5, 0.5]}, "position": None}}}

    async def main():
        await Pipeline(cfg, initial_state=damaged).start()

    with pytest.raises(LearnedStateError) as err:
        run_loop(main, "asyncio")
    assert "--fresh" in str(err.value) and "\n" not in str(err.value)
