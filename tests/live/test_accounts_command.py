"""`python -m app accounts` logs in with routing on the stand-in, lists its accounts with positions, sends nothing."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def test_accounts_lists_the_routing_accounts_and_sends_nothing(tmp_path):
    env = {**__import__("os").environ, "PROFITDLL_ROUTING_PASSWORD": "simulator"}
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[run]\ndata_dir = "{tmp_path / "data"}"\n[simulator]\nrouting_state_file = "{tmp_path / "b.bin"}"\n')
    p = subprocess.run([sys.executable, "-m", "app", "accounts", "--config", str(cfg), "--feed", "simulator", "--json"],
                       cwd=ROOT, timeout=120, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    accounts = json.loads(p.stdout.strip().splitlines()[-1])["accounts"]
    assert [(a["broker"], a["account"]) for a in accounts] == [(1, "SIM-0001"), (1, "SIM-0002")]
    assert all(set(a["positions"].values()) == {0} for a in accounts)
    assert not (tmp_path / "data" / "routing-sent.jsonl").exists()  # nothing went through the send ledger
