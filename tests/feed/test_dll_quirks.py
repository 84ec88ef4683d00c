"""The real DLL's known behaviour (issue 10 item 0), proven through the same ctypes binding against the stand-in."""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.feed import clock
from app.feed.base import FeedError
from app.feed.profitdll import abi
from app.feed.profitdll.library import load
from app.feed.profitdll.session import clock_offset_s
from app.feed.simulator import library_path, zone_offset_s
from tests.conftest import ROOT

SOURCE = ROOT / "app" / "feed" / "simulator" / "profitsim.c"
ROUTING_SOURCE = SOURCE.with_name("profitsim_routing.c")  # the stand-in is these two files (setup.py)


def scenario(name: str, timeout: float = 180, **kwargs) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.feed.quirk_scenarios", name, json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"scenario {name} exited {proc.returncode}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def old_build(tmp_path_factory) -> Path:
    """The stand-in built without the exports 4.0.0.41 added: a build older than the fixes."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the pre-4.0.0.41 stand-in")
    out = tmp_path_factory.mktemp("old") / "profitsim_old.so"
    subprocess.run([gcc, "-O1", "-std=c11", "-pthread", "-shared", "-fPIC", "-DPROFITSIM_PRE_4_0_0_41", "-o",
                    str(out), str(SOURCE), str(ROUTING_SOURCE)], check=True, capture_output=True)
    return out


def test_a_build_without_the_4_0_0_41_exports_is_refused_naming_the_version_and_the_override(old_build):
    with pytest.raises(FeedError) as info:
        load(old_build)
    msg = str(info.value)
    assert "older than 4.0.0.41" in msg and "GetHealthStatus" in msg and "feed.allow_old_dll = true" in msg
    assert "\n" not in msg


def test_the_override_loads_the_old_build_and_the_current_build_is_not_old(old_build):
    assert load(old_build, allow_old=True).old_build is True
    lib = load(library_path())
    assert lib.old_build is False
    assert lib.GetHealthStatus.argtypes == abi.FIXED_BUILD_EXPORTS["GetHealthStatus"][1]


def test_receive_clock_has_microsecond_resolution_and_windows_before_3_13_uses_perf_counter():
    assert clock.pick("win32", (3, 11))[0] == "perf_counter"
    assert clock.pick("win32", (3, 12))[0] == "perf_counter"
    assert clock.pick("win32", (3, 13))[0] == "monotonic"
    assert clock.pick("linux", (3, 11))[0] == "monotonic"
    assert clock.resolution_s() <= 1e-6
    a = clock.now_ns()
    assert 0 <= clock.now_ns() - a < 1_000_000


def test_server_clock_offset_reads_the_dll_time_as_b3_local():
    # 2026-11-27 10:00:00.250 B3 (UTC-3) is 13:00:00.250 UTC
    now = 1795784400.0
    assert clock_offset_s((2026, 11, 27, 10, 0, 0, 250), now) == pytest.approx(0.25, abs=1e-6)
    assert clock_offset_s((2026, 11, 27, 13, 0, 0, 0), now) == pytest.approx(3 * 3600, abs=1e-6)
    assert zone_offset_s("UTC", now) == 3 * 3600
    assert zone_offset_s("America/Sao_Paulo", now) == 0
    with pytest.raises(FeedError, match="simulator.clock_zone = 'Mars/Base' is not a time zone name"):
        zone_offset_s("Mars/Base", now)


def test_depth_shapes_post_flush_adds_end_brackets_and_garbage_in_upper_bits_is_masked():
    r = scenario("depth_shapes", total=20_000)
    sim, dll = r["sim"], r["dll"]
    # the stand-in sent every shape the spec describes
    assert sim["post_flush_adds"] > 100 and sim["delete_from"] > 0 and sim["theoric"] > 0 and sim["both_sides"] > 0
    # one published side per bracket/change: exactly what the stand-in counted; no bracket published twice
    assert dll["depth_books"] == sim["depth_books"]
    assert dll["post_flush_adds"] == sim["post_flush_adds"]
    assert dll["depth_errors"] == 0 and dll["callback_errors"] == 0, dll["last_callback_error"]
    # the garbage the stand-in put above the narrow arguments changed nothing
    assert r["continuity"]["missing"] == 0 and r["continuity"]["repeated"] == 0
    assert r["bad_sides"] == 0 and r["edits"] == 0 and r["unknown_aggressor"] == 0
    assert all(tuple(s) in abi.STATE_NAMES for s in r["states"])
    assert abs(dll["server_clock_offset_s"]) < 5


def test_reading_the_post_flush_add_as_a_change_publishes_each_bracket_twice():
    r = scenario("depth_shapes", total=5_000, flush_add="is_change")
    assert r["dll"]["post_flush_adds"] == 0
    assert r["dll"]["depth_books"] == r["sim"]["depth_books"] + r["sim"]["post_flush_adds"]


def test_v1_trades_and_tiny_book_with_garbage_in_upper_bits_arrive_intact():
    r = scenario("depth_shapes", total=5_000, trade_api="v1", book="tiny")
    assert r["continuity"]["events"]["trade"] == 5_000 and r["continuity"]["missing"] == 0
    assert r["continuity"]["events"]["book"] > 0
    assert r["bad_sides"] == 0 and r["edits"] == 0 and r["unknown_aggressor"] == 0
    assert r["dll"]["callback_errors"] == 0, r["dll"]["last_callback_error"]


def test_a_reconnect_that_forgets_subscriptions_is_followed_by_one_resubscribe_and_trades_resume():
    r = scenario("reconnect", zone="UTC")
    sim, dll = r["sim"], r["dll"]
    assert sim["reconnects"] == 1
    states = [tuple(s) for s in r["states"]]
    for code in (2, 3, 5, 6):
        assert (2, code) in states
    # the (2,4) after (2,5)/(2,6) is delivery recovering, not a reconnect: one round only
    assert dll["resubscribe_rounds"] == 1 and dll["resubscribe_errors"] == 0
    assert dll["market_warnings"] == 2
    assert r["trades_after_reconnect"] > 100
    # nothing lost but what the stand-in never delivered while down
    assert r["continuity"]["missing"] == sim["undelivered"] and r["continuity"]["repeated"] == 0
    # a server clock kept in UTC shows as a +3 h offset from B3
    assert dll["server_clock_offset_s"] == pytest.approx(3 * 3600, abs=5)


def test_login_unknown_error_200_is_one_line_naming_a_stale_session():
    r = scenario("login_stale")
    assert r["error"].startswith("the DLL reported LOGIN_UNKNOWN_ERR (200): a stale session")


def test_state_callbacks_from_inside_finalize_are_survived_and_a_second_initialize_is_refused_in_python():
    r = scenario("finalize_then_initialize")
    assert r["sim"]["finalize_states"] == 1
    assert r["states"][-1] == [2, 0]  # fired from inside DLLFinalize, on the owner thread, delivered
    assert r["dll"]["callback_errors"] == 0
    assert r["dll"]["resubscribe_rounds"] == 0
    # the stand-in aborts on re-initialize by default; this process is alive, so the library was never called
    assert r["reinit_error"].startswith("refused to initialize") and "cannot be initialized again" in r["reinit_error"]


def test_exit_without_stop_closes_the_gate_then_finalizes_and_exits_cleanly():
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tests.feed.quirk_scenarios", "exit_without_stop"],
                          capture_output=True, text=True, timeout=60, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - t0 < 30
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["gate_open"] is False and r["finalized"] is True
    assert r["sim"]["finalize_states"] == 1 and r["sim"]["connector_alive"] == 0
    # ctypes: the state fired inside the at-exit DLLFinalize met the closed gate, it never reached Python; native:
    # the C callback recorded it and the owner thread, not the DLL's, read it once DLLFinalize returned
    assert r["market_state"] == (4 if r["path"] == "ctypes" else 0)
    assert r["callback_errors"] == 0


def test_a_finalize_stuck_at_exit_ends_the_process_with_code_3_before_the_interpreter_is_torn_down():
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "tests.feed.quirk_scenarios", "exit_with_stuck_finalize"],
                          capture_output=True, text=True, timeout=60, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert elapsed < 15  # the stand-in would have stalled 20 s
    assert "DLLFinalize did not return within" in proc.stderr
    assert "Fatal Python error" not in proc.stderr
