"""Process isolation: the DLL (the stand-in here) in a supervised child process, events over local ZMQ.

Each scenario runs in a process of its own (tests/feed/process/scenarios.py) so the checks on threads and loaded
libraries see only the parent side of the feed.
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from app.events import Book, State, Trade
from app.feed.process.dedupe import Dedupe, b3_day_end
from tests.conftest import ROOT, TEST_CONFIG, child_env, run_app

# the stand-in is built on Linux/macOS; the thread and library checks read /proc
needs_standin = pytest.mark.skipif(sys.platform != "linux", reason="needs the native stand-in and /proc (Linux)")


def scenario(name: str, timeout: float = 120, **kwargs) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.feed.process.scenarios", name, json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                          env=child_env())
    assert proc.returncode == 0, f"scenario {name} exited {proc.returncode}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_no_loss_beyond_the_dll(r: dict) -> None:
    """Nothing repeated reached the sink; numbers missing only where the DLL itself did not deliver."""
    c = r["continuity"]
    assert r["repeats_in_sink"] == 0 and c["repeated"] == 0
    assert c["missing"] <= r["stats"]["simulator"]["undelivered"]
    for ticker, n in r["unique"].items():  # no hole anywhere: every number from the first to the last arrived
        assert r["span"][ticker] - n <= r["stats"]["simulator"]["undelivered"], ticker


@needs_standin
def test_process_mode_delivers_both_tickers_complete_with_no_dll_thread_or_library_in_the_parent():
    r = scenario("flow", total=200_000)
    assert r["complete"]
    c = r["continuity"]
    assert sum(c["trades"].values()) == 200_000 and len(c["trades"]) == 2
    assert c["missing"] == 0 and c["repeated"] == 0
    assert r["threads"] == ["MainThread"]  # sampled inside the sink during the flood
    native = r["native"]
    assert native["python_threads"] == ["MainThread"]
    assert not native["profitsim_mapped"]  # the DLL was never loaded here
    assert native["dll_modules"] == []  # nor its binding imported
    p = r["stats"]["process"]
    assert p["restarts"] == 0 and p["decode_errors"] == 0 and p["child_dropped_events"] == 0
    assert r["stats"]["simulator"]["violations"] == 0
    assert r["stop_seconds"] < 10
    print(f"process flood: {r['rate']:,.0f} trades/s, child started in {r['start_seconds']:.2f}s")


@needs_standin
def test_process_mode_survives_a_child_abort_with_no_duplicates_and_no_loss_beyond_what_the_dll_did_not_deliver():
    # the first child finalizes and initializes again after 20k events; with reinit = "abort" the stand-in calls
    # abort() like the real DLL crashes; the restarted child replays the same numbers from the start
    r = scenario("child_abort", total=100_000, after=20_000)
    assert r["complete"], r["stats"]["process"]
    p = r["stats"]["process"]
    assert p["restarts"] == 1
    assert "SIGABRT" in p["last_restart_reason"]
    assert p["child_pid"] != r["first_pid"]
    assert p["duplicates_dropped"] >= 20_000  # everything the first child delivered came again and was dropped
    assert_no_loss_beyond_the_dll(r)
    # the second child delivers a whole market of its own (100k trades): nothing lost; the first may have got further
    # in one ticker before it aborted (how the two tickers share the flood depends on timing), never less
    assert sum(r["unique"].values()) >= 100_000
    assert r["stats"]["dll"]["subscribed"] == sorted(r["unique"])  # resubscribed both


@needs_standin
def test_process_mode_survives_a_dropped_connection_with_no_duplicates_and_no_loss_beyond_what_the_dll_missed():
    r = scenario("dropped_connection", total=100_000, drop_after=20_000)
    assert r["complete"], r["stats"]["process"]
    p = r["stats"]["process"]
    assert p["restarts"] == 1
    assert "market connection lost (MARKET_DISCONNECTED)" in p["last_restart_reason"]
    assert r["stats"]["simulator"]["undelivered"] == 80_000  # what the first child's DLL generated while down
    assert p["duplicates_dropped"] == 20_000
    assert_no_loss_beyond_the_dll(r)
    assert sum(r["unique"].values()) == 100_000  # the new child delivered what the old one's DLL did not
    # resubscribed, and trades flowed again for both tickers past where the connection dropped
    assert r["stats"]["dll"]["subscribed"] == sorted(r["unique"])
    for ticker, at_drop in r["max_id_at_drop"].items():
        assert r["max_id"][ticker] > at_drop


@needs_standin
def test_a_hung_child_is_replaced_and_a_paced_replay_catches_up_at_once():
    r = scenario("hung_child", run_for=3.0)
    assert r["restarted"] and r["flowing"]
    p = r["stats"]["process"]
    assert "heartbeat timeout" in p["last_restart_reason"]
    assert not r["first_child_alive"]  # SIGTERM could not reach a frozen child: it was killed
    # the stand-in replays from its start; the new child skips the repeats at full speed instead of re-living
    # the 3 s in real time
    assert r["restart_to_new_trades"] < 2.5
    assert p["dropped_by_child"]["trades"] > 0 and p["dropped_by_child"]["books"] > 0
    assert r["repeats_in_sink"] == 0 and r["continuity"]["missing"] <= r["stats"]["simulator"]["undelivered"]


@needs_standin
def test_subscribe_and_unsubscribe_reach_the_child_over_the_control_socket():
    r = scenario("churn")
    assert r["quiet_while_unsubscribed"] and r["resumed"]
    assert r["repeats_in_sink"] == 0 and r["continuity"]["missing"] == 0


@needs_standin
def test_the_supervisor_gives_up_after_max_restarts_and_the_feed_is_done():
    r = scenario("give_up")
    assert r["second_child"] and r["done"]
    p = r["stats"]["process"]
    assert p["gave_up"] and p["restarts"] == 1 and not p["child_alive"]


@needs_standin
def test_a_child_whose_parent_is_killed_stops_by_itself():
    proc = subprocess.Popen([sys.executable, "-m", "tests.feed.process.scenarios", "orphan"], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                            env=child_env())
    try:
        info = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 15
    while (_alive(info["child_pid"]) or Path(info["directory"]).exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(info["child_pid"])
    assert not Path(info["directory"]).exists()  # the dead parent's socket directory was cleaned up too


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@needs_standin
def test_run_json_with_process_isolation_reports_trades_for_both_tickers():
    cwd = Path(tempfile.mkdtemp(prefix="hmarl-test-"))
    (cwd / "config.toml").write_text(TEST_CONFIG + '[feed]\nisolation = "process"\n')
    proc = run_app("run", "--duration", "6", "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["feed"] == "process:simulator"
    assert len(summary["trades"]) == 2 and all(n > 0 for n in summary["trades"].values())
    assert summary["gaps"] == 0
    assert summary["violations"] == 0 and summary["dll_callback_errors"] == 0
    assert summary["process"]["restarts"] == 0
    assert summary["callback_to_loop_us"]["p50_us"] > 0


# -- the dedupe itself ------------------------------------------------------------------------------------------
T0 = 1_764_000_000 * 10**9  # a B3 afternoon


def trade(ticker: str, tid: int, ts: int = T0, edit: bool = False) -> Trade:
    return Trade(ticker, "F", ts, tid, 5000.0, 1, 5000.0, 1, 2, "buy", 0, edit)


def book(ticker: str) -> Book:
    return Book(ticker, T0, "bid", ((5000.0, 1, 1),), 0)


def test_dedupe_drops_repeated_numbers_and_the_books_of_a_replay_and_passes_edits():
    d = Dedupe()
    assert d.filter([trade("A", 1), trade("A", 2), trade("B", 7)]) == [trade("A", 1), trade("A", 2), trade("B", 7)]
    # a restarted child replays A from 1: repeats and the books between them are dropped; B goes on
    out = d.filter([trade("A", 1), book("A"), trade("B", 8), trade("A", 2, edit=True), trade("A", 2), book("A"),
                    trade("A", 3), book("A")])
    assert out == [trade("B", 8), trade("A", 2, edit=True), trade("A", 3), book("A")]
    assert d.duplicates_dropped == 2 and d.stale_books_dropped == 2
    assert d.last == {"A": 3, "B": 8}


def test_dedupe_starts_over_when_trade_numbers_restart_in_a_new_session():
    d = Dedupe()
    d.filter([trade("A", 500)])
    next_day = b3_day_end(T0) + 3600 * 10**9
    assert d.filter([trade("A", 1, ts=next_day)]) == [trade("A", 1, ts=next_day)]
    assert d.filter([trade("A", 1, ts=next_day)]) == []


def test_dedupe_seeded_with_a_resume_point_and_states_go_to_the_watcher():
    parent = Dedupe()
    parent.filter([trade("A", 10), trade("B", 3)])
    assert parent.resume_point(["A", "C"]) == {"A": (10, b3_day_end(T0), 1)}
    d = Dedupe(parent.resume_point(["A"]))  # what a restarted child starts from
    seen = []
    s = State(2, 0, "MARKET_DISCONNECTED", 0)
    assert d.filter([trade("A", 10), s, trade("A", 11)], seen.append) == [s, trade("A", 11)]
    assert seen == [s]
