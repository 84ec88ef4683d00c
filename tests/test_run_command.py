"""`python -m app run` end to end on the native stand-in, as a user runs it."""
import json

from tests.conftest import run_app


def test_run_json_reports_trades_for_both_tickers_with_zero_gaps():
    proc = run_app("run", "--duration", "4", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(summary["trades"]) == {t for t in summary["trades"] if t[:3] in ("WDO", "WIN")}
    assert len(summary["trades"]) == 2 and min(summary["trades"].values()) > 100
    assert summary["gaps"] == 0
    assert summary["events"]["trade"] == sum(summary["trades"].values())
    assert summary["events"]["book"] > 0 and summary["events"]["state"] >= 3
    for key in ("p50_us", "p99_us", "p999_us"):
        assert summary["callback_to_loop_us"][key] > 0
    assert summary["bridge_max_depth"] >= 1
    assert summary["violations"] == 0
    # which callbacks the DLL called and how long they kept its thread: by the path, and as the stand-in timed them
    cb = summary["dll_callbacks"]
    assert cb["path"] in ("native", "ctypes")
    assert 0 < cb["dwell_us"]["trade_v2"]["p50_us"] <= cb["dwell_us"]["trade_v2"]["max_us"]
    assert 0 < cb["dll_side_dwell_us"]["p50_us"] <= cb["dll_side_dwell_us"]["max_us"]
    # the outputs really ran: every input event journaled and in Valkey, everything published
    inputs = sum(summary["events"].values())
    assert summary["journal"]["frames"] == inputs and summary["journal"]["error"] is None
    assert summary["valkey"]["inputs_written"] == inputs and summary["valkey"]["errors"] == 0
    assert summary["zmq"]["sent"] >= inputs + summary["decisions"] and summary["zmq"]["errors"] == 0
    assert "Traceback" not in proc.stderr


def test_run_prints_a_status_line_every_second_without_json():
    proc = run_app("run", "--duration", "2.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = [l for l in proc.stderr.splitlines() if "trades" in l and "bridge depth" in l]
    assert len(status) >= 2


def test_sigterm_stops_cleanly_with_exit_0():
    import signal
    import subprocess
    import sys
    import time

    import tempfile
    from pathlib import Path

    from tests.conftest import TEST_CONFIG, child_env

    cwd = Path(tempfile.mkdtemp())
    (cwd / "config.toml").write_text(TEST_CONFIG)
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--json"], cwd=str(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=child_env())
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert sum(summary["trades"].values()) > 0 and summary["gaps"] == 0
    # the journal was flushed: it holds every input event the run counted
    from app.io.journal import read_journal

    journaled = list(read_journal(cwd / "data" / "journal" / summary["run_id"]))
    assert len(journaled) == sum(summary["events"].values())
    assert sum(1 for e in journaled if type(e).__name__ == "Trade") == sum(summary["trades"].values())


def test_invalid_ticker_is_reported_in_one_clear_line():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "c.toml"
        cfg.write_text("[feed]\ntickers = ['WDOZ26', 'XYZW99']\n[zmq]\nendpoint = 'tcp://127.0.0.1:0'\n")
        proc = run_app("run", "--config", str(cfg), "--duration", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [l for l in proc.stderr.splitlines() if "XYZW99" in l and "ERROR" in l]
    assert len(lines) == 1 and "invalid-ticker" in lines[0] and "feed.tickers" in lines[0], proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["events"]["invalid_ticker"] >= 1
    assert summary["trades"].get("WDOZ26", 0) > 0


def test_wrong_dll_path_is_one_clear_error_and_exit_3(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[feed]\nkind = 'profitdll'\ndll_path = '/nonexistent/ProfitDLL64.dll'\n")
    proc = run_app("run", "--config", str(cfg), "--duration", "1")
    assert proc.returncode == 3
    errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert errors == ["error: DLL not found at /nonexistent/ProfitDLL64.dll; set feed.dll_path in config.toml "
                      "to the ProfitDLL64.dll location"]
