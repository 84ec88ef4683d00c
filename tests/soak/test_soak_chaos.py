"""`soak --chaos` (issue 14 item 9): the chaos the soak knows plus a full disk and a Valkey refusing writes, and at
the end every journal frame of the run is looked up in Valkey."""
import pytest
import json

from tests.conftest import run_app


@pytest.mark.slow
def test_soak_chaos_injects_storage_faults_and_finds_every_journal_frame_in_valkey():
    proc = run_app("soak", "--minutes", "0.4", "--sample-every", "1", "--chaos-every", "2", "--chaos", "--json",
                   "--max-rss-slope", "100000", timeout=240)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    chaos = result["chaos"]
    assert chaos["disk_full"] >= 1 and chaos["valkey_refuses"] >= 1 and chaos["valkey_restart"] >= 1, chaos
    cmp = result["journal_vs_valkey"]
    assert cmp["compared"] > 1000 and cmp["missing"] == 0, cmp
    assert result["checks"]["journal_equals_valkey"] is True
    assert proc.returncode == 0 and result["passed"], result
