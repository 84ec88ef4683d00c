"""A run that ended without Valkey (down, or disabled) is written into Valkey from its journal at the next start."""
import json
import tempfile
from pathlib import Path

from tests.conftest import run_app


def test_next_start_writes_an_earlier_runs_journal_into_valkey_before_its_own_events():
    cwd = Path(tempfile.mkdtemp(prefix="hmarl-catchup-"))
    (cwd / "config.toml").write_text('[zmq]\nendpoint = "tcp://127.0.0.1:0"\n')
    (cwd / "novk.toml").write_text('[zmq]\nendpoint = "tcp://127.0.0.1:0"\n[valkey]\nenabled = false\n')
    first = run_app("run", "--duration", "2", "--json", "--config", "novk.toml", cwd=cwd)
    assert first.returncode == 0, first.stderr[-3000:]
    a = json.loads(first.stdout.strip().splitlines()[-1])
    assert not (cwd / "data/journal" / a["run_id"] / "valkey.complete").exists()

    second = run_app("run", "--duration", "2", "--json", cwd=cwd)
    assert second.returncode == 0, second.stderr[-3000:]
    b = json.loads(second.stdout.strip().splitlines()[-1])
    assert f"writing earlier run {a['run_id']}" in second.stderr
    assert (cwd / "data/journal" / a["run_id"] / "valkey.complete").read_text() == str(sum(a["events"].values()))
    assert (cwd / "data/journal" / b["run_id"] / "valkey.complete").exists()

    wdo = next(t for t in b["trades"] if t.startswith("WDO"))  # today's contract
    rows = run_app("query", "--ticker", wdo, "--kind", "trade", "--json", cwd=cwd)
    assert rows.returncode == 0, rows.stderr[-3000:]
    stored = [json.loads(line) for line in rows.stdout.splitlines() if line.strip()]
    assert len(stored) == a["trades"][wdo] + b["trades"][wdo]
