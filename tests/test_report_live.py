"""`python -m app report` of a live run (the stand-in's broker): a "Live routing" section with what the run's
summary says about its orders, fills, reconciliations, positions at the end and working orders left."""
import json
import tempfile
from pathlib import Path

import pytest

from tests.conftest import TEST_CONFIG, run_app

LIVE_CONFIG = TEST_CONFIG + '''
[feed]
routing = true
book = "depth"

[execution]
mode = "live"
account = "SIM-0001"
broker = 1

[risk]
max_order_qty = 2
price_band_ticks = 40.0
max_position = 3

[valkey]
enabled = false

[simulator]
rate = 400.0

[coordination]
entry_threshold = 0.05
'''


def cut_sends(live: dict) -> set:
    """Tickers with a send the stop cut (no local id): its fill, if any, is at the broker but not booked as ours,
    so broker and ours rightly differ there."""
    return {w["ticker"] for w in live["working"] if not w["local_id"]}


@pytest.fixture(scope="module")
def live_run():
    cwd = Path(tempfile.mkdtemp(prefix="hmarl-report-live-"))
    (cwd / "config.toml").write_text(LIVE_CONFIG)
    proc = run_app("run", "--duration", "4", "--json", "--fresh", cwd=cwd, env={"HMARL_LIVE_TRADING": "yes"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_run_summary_carries_the_live_block_with_both_positions(live_run):
    _, summary = live_run
    live = summary["live"]
    assert live["reconciled"] and live["sent"] > 0 and live["first_reconciliation"].startswith("reconciled")
    assert set(live["ours"]) <= set(live["broker_positions"])
    for t in set(live["broker_positions"]) - cut_sends(live):
        assert live["broker_positions"][t] == live["ours"].get(t, 0)
    assert sum(live["fills"].values()) >= live["states"]["filled"]  # every filled order, at least one fill each


def test_report_of_a_live_run_has_a_live_routing_section(live_run):
    cwd, summary = live_run
    proc = run_app("report", summary["run_id"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (cwd / json.loads(proc.stdout.strip().splitlines()[-1])["report"]).read_text()
    live = summary["live"]
    section = md[md.index("## Live routing"):]
    assert f"- orders sent: {live['sent']}, refused: {live['refused']}" in section
    assert f"- fills from the broker: {sum(live['fills'].values())}" in section
    assert f"  - at start: {live['first_reconciliation']}" in section
    for t in set(live["broker_positions"]) - cut_sends(live):
        q = live["broker_positions"][t]
        cell = f"{q:+d}" if q else "0"
        assert f"| {t} | {cell} | {cell} | agrees |" in section
    assert ("Working orders left at the end: none." in section) == (not live["working"])


def test_the_live_section_shows_a_mismatch_and_the_orders_left_working(live_run):
    from app.commands.report import live_section

    _, summary = live_run
    live = json.loads(json.dumps(summary["live"]))
    t = sorted(live["broker_positions"])[0]
    live["broker_positions"][t] = live["ours"].get(t, 0) + 2
    live["reconciled"], live["reconciliations"] = False, 2
    live["last_reconciliation"] = f"broker and journal differ, trading stopped: {t} position: ours +0, broker +2"
    live["working"] = [{"client_id": "run-x-7", "local_id": 41, "ticker": t, "side": "buy", "qty": 2, "traded": 1,
                        "state": "partial"}]
    text = "\n".join(live_section(live))
    assert f"| {t} | {live['broker_positions'][t]:+d} | " in text and "**MISMATCH**" in text
    assert "DISAGREEING at the end" in text and f"  - last: {live['last_reconciliation']}" in text
    assert "Working orders left at the end: 1." in text and f"| run-x-7 | 41 | {t} | buy | 2 | 1 | partial |" in text


def test_a_paper_run_has_no_live_section():
    from app.commands.report import markdown, Rebuilt

    md = markdown(Path("run-paper"), Rebuilt(), {"trades": {}, "gaps": 0, "decisions": 0}, [])
    assert "Live routing" not in md
