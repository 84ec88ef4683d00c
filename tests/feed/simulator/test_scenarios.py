"""The stand-in's planted-signal market (simulator.scenario) through the real binding: the hierarchy learns where
there is something to learn and not where there is not, exactly as on app.market's generator, the market is the
same for the same seed, and the stream keeps every guarantee of the default market.

Each run is a process of its own (the DLL initializes once per process); see tests/feed/simulator/scenarios.py.
"""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

EXPERTS = ("orderflow", "liquidity", "tape", "footprint")
EDGE = [2.5, 3.0]  # as tests/coordination/test_hierarchy.py: a clear edge over the round-trip cost


def scenario(timeout: float = 180, **kwargs) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.feed.simulator.scenarios", "run", json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"scenario {kwargs} exited {proc.returncode}\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def planted() -> dict:
    return scenario(scenario="planted", seed=7, trades=60_000, edge_range=EDGE)


@pytest.fixture(scope="module")
def null() -> dict:
    return scenario(scenario="null", seed=7, trades=30_000, edge_range=EDGE)


@pytest.fixture(scope="module")
def planted_again() -> dict:  # same seed, no book and no hierarchy: only the trades
    return scenario(scenario="planted", seed=7, trades=20_000, edge_range=EDGE, book="none", hierarchy=False)


@pytest.fixture(scope="module")
def planted_other_seed() -> dict:
    return scenario(scenario="planted", seed=8, trades=20_000, edge_range=EDGE, book="none", hierarchy=False)


def assert_clean(r: dict, trades: int) -> None:
    assert r["received"] == trades
    c = r["continuity"]
    assert c["trades"] == {r["ticker"]: trades}
    assert c["missing"] == 0 and c["repeated"] == 0  # trade numbers consecutive
    sim = r["sim"]
    assert sim["violations"] == 0 and sim["foreign_thread_calls"] == 0 and sim["accessor_misuse"] == 0
    assert sim["callbacks_after_finalize"] == 0 and sim["connector_alive"] == 0
    assert r["dll"]["callback_errors"] == 0, r["dll"]["last_callback_error"]
    assert r["dll"]["translate_errors"] == 0 and r["dll"]["depth_errors"] == 0
    assert all(r["probes"].values()), r["probes"]  # SIM_RegimeAt: NL_NOT_FOUND outside the market's regimes


def test_planted_weight_concentrates_on_the_informative_specialist_of_each_regime(planted):
    assert_clean(planted, 60_000)
    regimes = planted["regimes"]
    assert planted["sim"]["regime_switches"] == len(regimes) - 1 >= 4
    assert all(r[2] in EXPERTS and EDGE[0] <= r[3] <= EDGE[1] for r in regimes)
    assert all(a[2] != b[2] for a, b in zip(regimes, regimes[1:]))  # a switch changes the informative specialist
    assert all(a[1] + 1 == b[0] for a, b in zip(regimes, regimes[1:]))
    whole = [p for p in planted["per_regime"] if p["end"] - p["start"] >= 4000]  # not the stub the run ends in
    assert len(whole) >= 5
    for p in whole:
        share = p["late_share_over_half"]
        # the later half of the regime's decisions: > 0.5 weight on the informative specialist most of the time
        assert share[p["informative"]] > 0.5, p
        assert max(share, key=share.get) == p["informative"], p
    assert planted["counts"][planted["ticker"]]["books"] > 60_000  # the model's book reached the specialists


def test_null_weight_does_not_concentrate_on_any_specialist(null):
    assert_clean(null, 30_000)
    assert all(r[2] is None for r in null["regimes"])
    late = null["late_share_over_half"]
    for name in EXPERTS:  # the criteria of tests/coordination/test_hierarchy.py's null test
        assert late[name] < 0.1, (name, late)
    final = null["final_weights"]
    assert max(final, key=final.get) == "flat", final
    assert min(null["signals"].values()) > 100  # every pattern was painted and seen, it just predicts nothing


def test_same_seed_same_trades_other_seed_other_trades(planted, planted_again, planted_other_seed):
    for r in (planted_again, planted_other_seed):
        assert_clean(r, 20_000)
        assert r["digested"] == 20_000
    # the first 20k (trade_number, price, qty, aggressor): the same whatever is delivered beside them (book, depth)
    assert planted["digested"] == 20_000 and planted_again["digest"] == planted["digest"]
    assert planted_other_seed["digest"] != planted["digest"]
    # and the same regimes (start, informative, edge); the walk ends each table at its run's last trade
    again = [(r[0], r[2], r[3]) for r in planted_again["regimes"]]
    assert again == [(r[0], r[2], r[3]) for r in planted["regimes"]][:len(again)]


def test_mixed_has_stretches_without_an_informative_specialist():
    r = scenario(scenario="mixed", seed=3, trades=20_000, book="tiny", hierarchy=False, regime_trades=[1000, 1500])
    assert_clean(r, 20_000)
    informative = [x[2] for x in r["regimes"]]
    assert None in informative and len(set(informative)) >= 3
    assert all(a != b for a, b in zip(informative, informative[1:]))
    assert r["continuity"]["events"]["book"] > 20_000  # tiny book: the model's top of book
