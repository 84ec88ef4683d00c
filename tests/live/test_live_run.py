"""`execution.mode = "live"` end to end on the stand-in's broker (tests.live.scenario, a process per run): orders
reach the broker through the owner thread, fills come back through the order state machine, flatten leaves broker
and journal at zero; with duplicated and reordered updates nothing is counted twice; after a crash the broker's
position is found, trading stops, and no order is sent while reconciliation disagrees."""
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def scenario(args: dict, timeout: float = 120) -> dict:
    p = subprocess.run([sys.executable, "-m", "app.soak.live_round", json.dumps(args)], cwd=ROOT, timeout=timeout,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_live_trades_and_flattens_with_the_broker_agreeing():
    r = scenario({"seconds": 5, "flatten": True})
    assert r["reconciled"] and r["sent"] > 10 and r["fills"] >= r["sent"]
    assert r["broker"] == r["ours"] and set(r["broker"].values()) == {0}
    assert r["unknown_updates"] == 0 and r["states"].get("working", 0) == 0
    assert r["orders_at_broker"] == r["states"]["filled"]  # one order at the broker per order of ours


def test_duplicated_and_reordered_updates_are_never_counted_twice():
    r = scenario({"seconds": 6, "flatten": True,
                  "overrides": {"simulator.routing_dup_rate": 0.4, "simulator.routing_reorder_rate": 0.4,
                                "simulator.seed": 11}})
    assert r["ignored"]["duplicate"] + r["ignored"]["after_terminal"] + r["ignored"]["stale"] > 5
    assert r["broker"] == r["ours"] and set(r["broker"].values()) == {0}


def test_after_a_crash_the_broker_position_stops_trading_and_nothing_is_sent(tmp_path):
    state = str(tmp_path / "broker.bin")
    over = {"simulator.routing_state_file": state}
    crashed = subprocess.run([sys.executable, "-m", "app.soak.live_round",
                              json.dumps({"seconds": 3, "hold": True, "overrides": over})],
                             cwd=ROOT, timeout=120, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    r = scenario({"seconds": 3, "overrides": over})
    assert not r["reconciled"] and r["sent"] == 0  # a fresh journal says 0, the broker says +1: stop, send nothing
    assert sorted(r["broker"].values()) == [0, 1] and set(r["ours"].values()) == {0}


def test_a_routing_reconnect_reconciles_again_and_a_stranger_order_stops_trading():
    # another program rests an order on our account, then routing drops with it working and comes back
    r = scenario({"seconds": 3, "stranger": True,
                  "overrides": {"simulator.routing_drop_rate": 1.0, "simulator.routing_drop_ms": 400}})
    assert r["reconciliations"] >= 2 and not r["reconciled"]
    assert r["refused"] > 0 and r["states"].get("unsent", 0) == r["refused"]  # nothing went out after the stop
    assert r["broker"] == r["ours"]  # what was filled before is booked on both sides


def test_process_isolation_routes_orders_and_survives_child_kills(tmp_path):
    # the DLL (and the broker link) lives in the feed child; it is killed 3 times while orders flow
    over = {"feed.isolation": "process", "simulator.routing_state_file": str(tmp_path / "broker.bin"),
            "feed.restart_backoff": 0.2}
    r = scenario({"seconds": 8, "kill_child": 3, "flatten": True, "overrides": over}, timeout=180)
    assert r["reconciled"] and r["reconciliations"] >= 4 and r["sent"] > 10
    assert r["send_latency"]["count"] == r["sent"]  # decision -> SendOrder returned in the child, every send
    assert r["dup_orders"] == 0 and r["unknown_updates"] == 0
    assert r["broker"] == r["ours"] and set(r["broker"].values()) == {0}


def test_a_child_dying_inside_sendorder_never_doubles_an_order(tmp_path):
    # three children die during a SendOrder: before the DLL got it, after the DLL took it with no answer written,
    # and after the answer was written but never reached us; the send ledger and the broker's list settle each one
    over = {"feed.isolation": "process", "simulator.routing_state_file": str(tmp_path / "broker.bin"),
            "feed.restart_backoff": 0.2}
    plan = [["route-exit:3:before"], ["route-exit:3:inside"], ["route-exit:3:after"], []]
    r = scenario({"seconds": 4, "child_faults": plan, "flatten": True, "overrides": over}, timeout=180)
    assert r["children"] == 4 and r["unknown"] == 3 and r["reconciled"]
    assert r["dup_orders"] == 0 and r["working"] == []
    assert r["broker"] == r["ours"] and set(r["broker"].values()) == {0}


def test_replay_of_a_live_run_reproduces_its_decisions_with_fills_from_the_journal(tmp_path):
    r = scenario({"seconds": 4, "flatten": True, "overrides": {"journal.enabled": True,
                                                               "run.data_dir": str(tmp_path)}})
    assert r["sent"] > 10 and r["journal"]
    live = json.loads((Path(r["journal"]) / "summary.json").read_text())
    p = subprocess.run([sys.executable, "-m", "app", "replay", r["journal"], "--json"], cwd=ROOT, timeout=120,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr[-3000:]
    replay = json.loads(p.stdout.strip().splitlines()[-1])
    assert replay["decisions"] == live["decisions"] > 10
    assert replay["decision_digest"] == live["decision_digest"]
    rl = replay["live"]
    assert rl["replayed_from_journal"] and rl["mismatches"] == 0 and rl["records"] > r["sent"]
    assert rl["states"] == live["live"]["states"]  # the same orders, filled / refused the same way


def test_a_restart_after_kill_9_takes_over_its_earlier_orders_and_trades_on(tmp_path):
    # the same data dir (send ledger) and broker: everything at the broker was sent by us, so the restarted run
    # takes the broker's position and working orders as its own instead of stopping
    over = {"simulator.routing_state_file": str(tmp_path / "broker.bin"), "run.data_dir": str(tmp_path / "data")}
    crashed = subprocess.run([sys.executable, "-m", "app.soak.live_round",
                              json.dumps({"seconds": 3, "crash": True, "overrides": over})],
                             cwd=ROOT, timeout=120, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert crashed.returncode == 9, crashed.stderr[-2000:]
    r = scenario({"seconds": 3, "flatten": True, "overrides": over})
    assert r["reconciled"] and r["sent"] > 5, r["first_reconciliation"]
    assert "reconciled with the broker" in r["first_reconciliation"]
    assert r["dup_orders"] == 0 and r["broker"] == r["ours"] and set(r["broker"].values()) == {0}
