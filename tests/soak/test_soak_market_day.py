"""`soak --market-day` (issue 10 item 4), tiny: it runs to its trade target through the real binding, bridge,
pipeline and outputs with chaos, compares journal and Valkey frame by frame, and fails when a frame is lost."""
import json

from tests.conftest import run_app


def _market_day(trades: int, *extra: str, env: dict | None = None):
    proc = run_app("soak", "--market-day", "--trades", str(trades), "--rate", "2000", "--sample-every", "1",
                   "--chaos-every", "2", "--max-rss-slope", "100000", "--json", *extra, env=env, timeout=180)
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_tiny_market_day_reaches_its_trade_target_with_chaos_and_valkey_equals_the_journal():
    proc, result = _market_day(20_000)
    day = result["market_day"]
    assert proc.returncode == 0 and result["passed"], result["checks"]
    assert day["trades"] >= 20_000 and result["checks"]["trade_target_reached"] is True
    assert day["input_events"] > day["trades"] and day["events_per_s"] > 0  # book updates went through too
    assert result["chaos"]["churn"] + result["chaos"]["valkey_restart"] >= 1, result["chaos"]
    cmp = result["journal_vs_valkey"]
    assert cmp["compared"] == day["input_events"] and cmp["missing"] == 0, cmp
    assert result["lost_trades"] == 0 and result["duplicated_trades"] == 0
    assert day["after_close"]["settled"] is True  # the close unsubscribed everything and the outputs caught up


def test_a_frame_missing_from_valkey_fails_the_market_day():
    proc, result = _market_day(3_000, env={"HMARL_SOAK_FAULT": "lose-frame"})
    assert proc.returncode == 1 and result["passed"] is False
    assert result["journal_vs_valkey"]["missing"] == 1 and result["checks"]["journal_equals_valkey"] is False


def test_market_day_options_without_market_day_are_refused_in_one_line():
    proc = run_app("soak", "--trades", "1000", timeout=60)
    assert proc.returncode == 2 and "--market-day" in proc.stderr and "Traceback" not in proc.stderr
