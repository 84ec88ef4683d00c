"""A live run's journal replays to the same decisions, bit for bit; traced replays write identical traces."""
import json
import tempfile
from pathlib import Path

import pytest

from tests.conftest import TEST_CONFIG, run_app


@pytest.fixture(scope="module")
def recorded_run():
    cwd = Path(tempfile.mkdtemp(prefix="hmarl-replay-"))
    (cwd / "config.toml").write_text(TEST_CONFIG)
    proc = run_app("run", "--duration", "4", "--json", "--fresh", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    live = json.loads(proc.stdout.strip().splitlines()[-1])
    return cwd, live


def test_replaying_the_journal_reproduces_the_live_decisions_exactly(recorded_run):
    cwd, live = recorded_run
    assert live["decisions"] > 0
    journal = f"data/journal/{live['run_id']}"
    digests = []
    for _ in range(2):
        proc = run_app("replay", journal, "--json", cwd=cwd)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rep = json.loads(proc.stdout.strip().splitlines()[-1])
        assert rep["trades"] == live["trades"]
        assert rep["decisions"] == live["decisions"]
        digests.append(rep["decision_digest"])
    assert digests[0] == digests[1] == live["decision_digest"]


def test_two_traced_replays_write_byte_identical_causality_traces(recorded_run):
    cwd, live = recorded_run
    journal = f"data/journal/{live['run_id']}"
    traces = []
    for name in ("a.jsonl", "b.jsonl"):
        proc = run_app("replay", journal, "--json", "--trace", str(cwd / name), "--slow-ms", "0.001", cwd=cwd)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rep = json.loads(proc.stdout.strip().splitlines()[-1])
        assert rep["trace"]["decisions"] == live["decisions"]
        assert rep["trace"]["slow_batches"] > 0  # every batch is "slow" at 1 µs: the report names what it held
        assert "slow batch:" in proc.stderr and "trades #" in proc.stderr
        traces.append((cwd / name).read_bytes())
    assert traces[0] == traces[1]
    records = [json.loads(line) for line in traces[0].decode().splitlines()]
    assert len(records) == live["decisions"]
    for r in records:
        assert r["trade"]["trade_id"] == r["trade_id"]  # the trade that triggered it
        for s in r["signals"]:  # and the signals that entered the blend, with their weights
            assert s["agent"] in r["weights"] and s["trade_id"] <= r["trade_id"]
    assert any(r["signals"] for r in records)


def test_report_writes_non_empty_charts_and_a_summary_that_matches_the_live_run(recorded_run):
    cwd, live = recorded_run
    proc = run_app("report", live["run_id"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["matches_live"] is True and out["decisions"] == live["decisions"]
    names = {Path(p).name for p in out["images"]}
    assert names == {"price_fills.png", "position.png", "pnl.png", "weights.png", "latency.png"}
    for p in out["images"]:
        data = (cwd / p).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    md = (cwd / out["report"]).read_text()
    assert "identical to the live run" in md and "callback -> decision latency: p50" in md
