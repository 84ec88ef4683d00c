"""The soak command itself, tiny: it runs, prints every field, and fails when the soaked process crashes."""
import pytest
import json

from tests.conftest import run_app

FIELDS = {"minutes", "crashes", "lost_trades", "duplicated_trades", "valkey_unacked", "violations", "trades",
          "rss_mb_start", "rss_mb_end", "rss_slope_mb_per_h", "cpu_mean", "cpu_max", "callback_to_decision_us",
          "callback_to_loop_us", "bridge_max_depth", "chaos", "checks", "passed"}


@pytest.mark.slow
def test_a_short_soak_with_chaos_passes_and_reports_every_field():
    proc = run_app("soak", "--minutes", "0.25", "--sample-every", "1", "--chaos-every", "3", "--json",
                   "--max-rss-slope", "100000", timeout=180)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert FIELDS <= set(result), FIELDS - set(result)
    assert proc.returncode == 0, result
    assert result["crashes"] == 0 and result["lost_trades"] == 0 and result["duplicated_trades"] == 0
    assert result["trades"] > 0 and result["chaos"]["churn"] >= 1 and result["chaos"]["valkey_restart"] >= 1
    assert result["valkey_unacked"] == 0


def test_a_crash_of_the_soaked_process_fails_the_soak():
    proc = run_app("soak", "--minutes", "0.2", "--sample-every", "1", "--json", env={"HMARL_SOAK_FAULT": "crash"},
                   timeout=180)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 1
    assert result["crashes"] == 1 and result["passed"] is False and result["checks"]["no_crash"] is False
