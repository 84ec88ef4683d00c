"""Routing through the real stand-in (ctypes, no mocks): orders, fills, rejects, hostile modes, the broker file.

Each scenario runs in a process of its own (the DLL initializes once a process); see scenarios.py.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.feed.profitdll import abi, routing_abi

ROOT = Path(__file__).resolve().parents[3]


def run(name: str, timeout: float = 60, **kwargs) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.feed.routing.scenarios", name, json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def basic() -> dict:
    return run("basic", timeout=150)


def test_routing_structs_are_in_the_abi_tables_the_abi_test_checks():
    for name in routing_abi.X64_LAYOUT:
        assert name in abi.X64_LAYOUT and name in abi.STRUCTS
    assert abi.X64_LAYOUT["TConnectorSendOrder"][0] == 120
    assert {"SendOrder", "GetOrderDetails", "EnumerateAllOrders"} <= set(abi.FUNCTIONS)


def test_accounts_arrive_by_callback_and_by_query(basic):
    assert [a[1] for a in basic["accounts"]] == ["SIM-0001", "SIM-0002"]
    assert basic["accounts"][0][2] == "Simulated Broker"
    assert basic["account_events"] == ["SIM-0001", "SIM-0002"]


def test_market_order_goes_pending_new_new_filled(basic):
    assert basic["market"] == [10, 0, 2]


def test_a_market_order_larger_than_the_touch_walks_levels_in_partial_fills(basic):
    assert basic["big"][:2] == [10, 0] and basic["big"][-1] == 2
    assert basic["big"].count(1) >= 1
    assert basic["big_traded"][-1] == 450 and basic["big_traded"] == sorted(basic["big_traded"])


def test_modify_replaces_then_the_now_marketable_limit_fills(basic):
    assert basic["limit_change"][:3] == [10, 0, 5] and basic["limit_change"][-1] == 2
    assert basic["limit_change_qty"] == 3


def test_cancel_of_a_resting_limit(basic):
    assert basic["cancel"] == [10, 0, 4]


def test_resting_limit_fills_at_its_price_when_traded_through_and_stop_limit_triggers(basic):
    assert basic["rest_filled"] and basic["rest"][-1] == 2 and basic["rest_px"] == 0.0
    assert basic["stop_filled"] and basic["stop"] == [10, 0, 2]


@pytest.mark.parametrize("case,text,code", [("qty", "quantity 501 over the limit", "RejectedBroker"),
                                            ("band", "price outside the band", "RejectedBroker"),
                                            ("stop_band", "price outside the band", "RejectedBroker"),
                                            ("closed", "market closed for WDOF30", "RejectedMarket")])
def test_rejects_are_status_8_with_a_text_and_a_trading_result(basic, case, text, code):
    statuses, message, results = basic["rejects"][case]
    assert statuses == [10, 8] and text in message and results == [code]


def test_an_unknown_ticker_is_refused_by_code(basic):
    assert basic["rejects"]["invalid_ticker"] == "NL_INVALID_TICKER"


def test_broker_position_matches_the_fills_and_zero_position_flattens(basic):
    broker, from_fills = basic["position"]
    assert broker == from_fills != 0
    assert basic["flat"] == 0


def test_enumerate_all_orders_lists_every_order_sent(basic):
    assert basic["orders"] == basic["sent"]


def test_get_order_details_outside_the_order_callback_is_refused_and_counted(basic):
    rc, counted = basic["details_outside"]
    assert rc < 0 and counted == 1


def test_send_order_struct_v0_uses_the_old_enums(basic):
    assert basic["v0"] == ["market", "sell", 2]
    assert basic["callback_errors"] == 0


@pytest.fixture(scope="module")
def hostile_runs() -> tuple[dict, dict, dict]:
    return run("hostile", seed=7), run("hostile", seed=7), run("hostile", seed=8)


def test_hostile_modes_are_observable(hostile_runs):
    orders = hostile_runs[0]["orders"].values()
    assert any(o["dup"] for o in orders)
    assert any(o["reorder"] for o in orders)
    assert any(o["race"] for o in orders)
    assert not all(o["race"] for o in orders)  # rate 0.5: some cancels win


def test_hostile_modes_are_deterministic_per_seed(hostile_runs):
    a, b, c = hostile_runs
    pick = lambda run: {k: (v["dup"], v["reorder"], v["race"]) for k, v in run["orders"].items()}  # noqa: E731
    assert pick(a) == pick(b)
    assert pick(a) != pick(c)


def test_routing_drop_with_a_working_order_queues_its_fills_until_reconnect():
    out = run("drop")
    assert out["routing_states"] == [1, 2, 4, 5, 0, 1, 2, 4, 5]
    assert out["refused_while_down"] == "NL_NO_LOGIN"
    assert out["during_down"] == 0 and out["after_reconnect"] > 0
    assert out["final"] == 2 and out["traded"] == 20000 and out["drops"] == 1


def test_broker_state_file_survives_kill_9(tmp_path):
    path = str(tmp_path / "broker.txt")
    proc = subprocess.run([sys.executable, "-m", "tests.feed.routing.scenarios", "broker_file",
                           json.dumps({"path": path, "phase": "first"})], capture_output=True, text=True, timeout=60,
                          cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert proc.returncode == -9, proc.stderr[-2000:]
    first = json.loads(proc.stdout.strip().splitlines()[-1])
    second = run("broker_file", path=path, phase="second")
    assert second["orders"][str(first["market"])] == ["Filled", 2]
    assert second["orders"][str(first["resting"])] == ["New", 0]
    assert second["position"] == 2
    assert second["next_id"] > first["resting"]  # ids carry on: nothing sent before is ever reused
