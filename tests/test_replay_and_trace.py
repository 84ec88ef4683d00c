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
            assert s["expert"] in r["weights"] and s["expert"].startswith(s["agent"] + "@")
            assert s["trade_id"] <= r["trade_id"]
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


# -- replay honesty: every tape format replays, and nothing read is never a quiet success -------------------------

B3_TAPE = ("DataReferencia;CodigoInstrumento;AcaoAtualizacao;PrecoNegocio;QuantidadeNegociada;HoraFechamento;"
           "CodigoIdentificadorNegocio;TipoSessaoPregao;DataNegocio;CodigoParticipanteComprador;"
           "CodigoParticipanteVendedor\n"
           + "".join(f"2026-11-20;WDOZ26;0;{5123 + (i % 4) * 0.5:.3f};1;0900{i // 10:02d}{i % 10}00;{(i + 1) * 10};1;"
                     f"2026-11-20;8;3\n".replace(".", ",", 1) for i in range(300)))


def _scratch() -> Path:
    cwd = Path(tempfile.mkdtemp(prefix="hmarl-tapes-"))
    (cwd / "config.toml").write_text(TEST_CONFIG)
    return cwd


def _summary(proc) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_tape_in_an_unknown_layout_exits_3_with_one_line_and_a_json_error():
    cwd = _scratch()
    (cwd / "tape.csv").write_text("a;b;c;d;e;f\n" + "1;2;3;4;5;6\n" * 119)
    proc = run_app("replay", "tape.csv", "--json", cwd=cwd)
    assert proc.returncode == 3, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "tape.csv: no trade read from 120 lines" in errors[0]
    assert "found header 'a;b;c;d;e;f' (6 columns)" in errors[0]
    summary = _summary(proc)
    assert summary["error"] == errors[0].removeprefix("error: ") and summary["trades"] == {}


def test_b3_intraday_and_generic_csv_tapes_replay_through_the_pipeline():
    cwd = _scratch()
    (cwd / "TradeIntraday_20261120_1.txt").write_text(B3_TAPE)
    proc = run_app("replay", "TradeIntraday_20261120_1.txt", "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = _summary(proc)
    assert summary["trades"] == {"WDOZ26": 300} and summary["error"] is None and summary["gaps"] == 0
    rows = "".join(f"2026-11-20T10:00:{i // 10:02d}.{i % 10}00,{5123 + (i % 4) * 0.5},1,{'B' if i % 2 else 'S'},"
                   f"{5122.5 + (i % 4) * 0.5},{5123.5 + (i % 4) * 0.5}\n" for i in range(200))
    (cwd / "other.csv").write_text("Time,Price,Volume,Side,Bid,Ask\n" + rows + "2026-11-20T10:01:00,inf,1,B,,\n")
    (cwd / "config.toml").write_text(TEST_CONFIG + '[replay]\nticker = "WDOZ26"\n')
    proc = run_app("replay", "other.csv", "--json", "--columns", "ts=Time,price=Price,qty=Volume,side=Side,"
                   "bid=Bid,ask=Ask", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = _summary(proc)
    assert summary["trades"] == {"WDOZ26": 200} and summary["lines_skipped"] == 1 and summary["error"] is None


def test_an_unreadable_journal_or_one_without_trades_exits_3():
    import asyncio

    from app.config import JournalConfig
    from app.events import State
    from app.io.journal import Journal
    from tests.io.samples import inputs

    cwd = _scratch()

    async def write(run_id, events):
        j = Journal(cwd / "journal", run_id, JournalConfig())
        await j.open()
        j.append(events)
        await j.close()
        return j.path

    damaged = asyncio.run(write("run-d", inputs(20)))
    part = next(damaged.glob("*.hmj"))
    data = bytearray(part.read_bytes())
    data[8:12] = (1 << 20).to_bytes(4, "little")  # the header length field is garbage
    part.write_bytes(bytes(data))
    empty = asyncio.run(write("run-e", [State(conn_type=2, result=4, name="MARKET_CONNECTED", received_ns=0)]))
    for run, why in ((damaged, "damaged journal header"), (empty, "no trade read from the run journal")):
        proc = run_app("replay", str(run), "--json", cwd=cwd)
        assert proc.returncode == 3, (why, proc.stderr[-2000:])
        assert why in _summary(proc)["error"] and f"error: replay: {run}" in proc.stderr


def test_a_bad_columns_option_is_a_config_error():
    proc = run_app("replay", "x.csv", "--columns", "when=Time,price=Price,qty=Volume")
    assert proc.returncode == 2 and "unknown role 'when'" in proc.stderr
