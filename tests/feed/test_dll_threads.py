"""The binding against the native stand-in, each scenario in a process of its own (one DLL session per process).

The flood, finalize and churn scenarios run on both callback paths (feed.bridge native and ctypes)."""
import json
import os
import subprocess
import sys

import pytest

from app.feed.native import ring
from tests.conftest import ROOT

PATHS = [pytest.param("native", marks=pytest.mark.skipif(ring.get() is None, reason="native ring not built")),
         "ctypes"]


def scenario(name: str, timeout: float = 600, bridge: str = "", **kwargs) -> dict:
    env = {**os.environ, "HMARL_FEED_BRIDGE": bridge} if bridge else None
    proc = subprocess.run([sys.executable, "-m", "tests.feed.scenarios", name, json.dumps(kwargs)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"scenario {name} exited {proc.returncode}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_million_trade_callbacks_with_concurrent_gc_arrive_complete_and_in_order():
    r = scenario("flood", total=1_000_000)
    c = r["continuity"]
    assert r["received"] == 1_000_000
    assert sum(c["trades"].values()) == 1_000_000
    assert len(c["trades"]) == 2  # both tickers flowed
    assert c["missing"] == 0 and c["repeated"] == 0
    assert r["sim"]["violations"] == 0
    assert r["sim"]["foreign_thread_calls"] == 0
    assert r["sim"]["accessor_misuse"] == 0
    assert r["dll"]["callback_errors"] == 0, r["dll"]["last_callback_error"]
    assert r["dll"]["translate_errors"] == 0
    assert r["gc_collections"] > 0
    print(f"flood: {r['rate']:,.0f} trades/s, bridge {r['bridge']}")


def test_v1_trade_callback_from_initialize_delivers_the_same_stream():
    r = scenario("flood", total=100_000, trade_api="v1")
    assert r["received"] == 100_000
    assert r["continuity"]["missing"] == 0 and r["continuity"]["repeated"] == 0
    assert r["dll"]["callback_errors"] == 0, r["dll"]["last_callback_error"]


@pytest.mark.parametrize("bridge", PATHS)
def test_a_flood_arrives_complete_and_in_order_on_each_path(bridge):
    r = scenario("flood", total=200_000, bridge=bridge)
    assert r["received"] == 200_000
    assert r["continuity"]["missing"] == 0 and r["continuity"]["repeated"] == 0 and r["continuity"]["gaps"] == 0
    assert r["dll"]["bridge_path"] == bridge
    assert r["dll"]["callback_errors"] == 0, r["dll"]["last_callback_error"]
    assert r["sim"]["violations"] == 0 and r["sim"]["foreign_thread_calls"] == 0
    # the dwell of every callback, timed by the DLL side, and by the path itself
    assert r["sim_stats"]["callback_dwell"]["count"] >= 200_000
    assert r["dll"]["dwell"]["trade_v2"]["count"] >= 200_000
    if bridge == "native":
        assert r["dll"]["ring"]["pushed"] == r["dll"]["ring"]["drained"] and r["dll"]["ring"]["lost"] == 0
    print(f"flood on {bridge}: {r['rate']:,.0f} trades/s, DLL-side dwell {r['sim_stats']['callback_dwell']}")


def test_flood_without_kept_thread_state_is_still_complete():
    r = scenario("flood", total=100_000, keep_thread_state=False, bridge="ctypes")
    assert r["received"] == 100_000
    assert r["continuity"]["gaps"] == 0
    assert r["dll"]["pinned_threads"] == 0


@pytest.mark.parametrize("bridge", PATHS)
def test_finalize_during_a_flood_returns_promptly_and_no_callback_follows(bridge):
    r = scenario("finalize_during_flood", after=0.5, bridge=bridge)
    assert r["received"] > 1000
    assert r["stop_seconds"] < 5.0
    assert r["callbacks_after"] == 0
    assert r["received_after"] == 0
    assert r["sim"]["callbacks_after_finalize"] == 0
    assert r["sim"]["connector_alive"] == 0
    assert r["sim"]["violations"] == 0
    assert r["continuity"]["gaps"] == 0
    # every trade callback the DLL made before its threads stopped reached the sink by the time stop returned
    assert r["received"] == r["sim"]["trades_delivered"]
    assert r["dll"]["bridge_path"] == bridge


@pytest.mark.parametrize("bridge", PATHS)
def test_subscribe_unsubscribe_churn_during_a_flood_is_safe(bridge):
    r = scenario("churn_during_flood", seconds=2.0, bridge=bridge)
    assert r["cycles"] > 20
    assert r["stop_seconds"] < 5.0
    assert r["sim"]["violations"] == 0
    assert r["sim"]["foreign_thread_calls"] == 0
    assert r["continuity"]["repeated"] == 0
    assert r["dll"]["callback_errors"] == 0, r["dll"]["last_callback_error"]


def test_stop_start_twice_reuses_the_session_and_reinit_after_finalize_is_refused_in_python():
    r = scenario("restart_twice")
    first, second = r["trades"]
    assert sum(first.values()) > 0 and sum(second.values()) > 0
    assert r["session"]["initialized"] is True
    assert r["sim"]["violations"] == 0
    # refused in Python before the library is called: the stand-in's default re-initialize aborts, like the real DLL
    err = r["third_start_error"]
    assert err.startswith("FeedError: refused to initialize"), err
    assert "cannot be initialized again" in err


def test_poisoning_bites_a_consumer_that_keeps_pointers():
    r = scenario("poison_probe")
    assert r["ticker_inside"] == "WDOZ26"
    assert r["ticker_after"] != "WDOZ26" and "POISONED" in r["ticker_after"]
    assert "POISONED" in r["raw_after"]
    assert r["late_translate_rc"] == -2147483645  # NL_INVALID_ARGS: the handle died with its callback
    assert r["accessor_misuse"] >= 1
