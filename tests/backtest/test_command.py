import json
import re
from pathlib import Path

import pytest

from app.cli import main
from tests.backtest.make import write_tape
from tests.conftest import run_app


def _run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.toml: built-in defaults


def test_json_is_the_same_bit_for_bit_on_a_rerun(tapes: Path, capsys: pytest.CaptureFixture) -> None:
    code, first, _ = _run(capsys, str(tapes), "--json")
    assert code == 0
    _, second, _ = _run(capsys, str(tapes), "--json")
    assert first == second
    doc = json.loads(first)
    assert doc["tickers"] == ["WDOZ26", "WINZ26"] and len(doc["days"]) == 3
    totals = doc["totals"]
    assert totals["flat"]["net"] == 0.0 and totals["flat"]["turnover"] == 0
    for name, t in totals.items():
        assert abs(t["gross"] - t["fees"] - t["net"]) < 1e-9
        assert abs(sum(d["lanes"][name]["net"] for d in doc["days"]) - t["net"]) < 1e-6
    assert doc["best_single"] in [n for n in doc["lanes"] if n.startswith("only_")]
    assert doc["best_single_total"]["net"] == max(t["net"] for n, t in totals.items() if n.startswith("only_"))
    assert doc["totals"]["coordinator"]["sharpe_days"] is not None


def test_fresh_each_day_differs_from_walk_forward_after_day_one(tapes: Path, capsys: pytest.CaptureFixture) -> None:
    _, carried, _ = _run(capsys, str(tapes / "wdo.csv"), "--json")
    _, fresh, _ = _run(capsys, str(tapes / "wdo.csv"), "--json", "--fresh-each-day")
    a, b = json.loads(carried)["days"], json.loads(fresh)["days"]
    assert a[0]["lanes"] == b[0]["lanes"]
    assert [d["tickers"]["WDOZ26"]["learner_updates"][0] for d in b] == [0, 0, 0]
    assert [d["tickers"]["WDOZ26"]["learner_updates"][0] for d in a][1:] == \
        [d["tickers"]["WDOZ26"]["learner_updates"][1] for d in a][:-1]


def test_report_writes_the_charts_and_the_terminal_table_as_markdown(tapes: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    code, text, _ = _run(capsys, str(tapes), "--report", str(tmp_path / "rep"))
    assert code == 0
    for png in ("equity.png", "weights.png"):
        data = (tmp_path / "rep" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    md = (tmp_path / "rep" / "report.md").read_text()
    coord = next(ln for ln in text.splitlines() if ln.startswith("coordinator "))
    md_coord = next(ln for ln in md.splitlines() if ln.startswith("| coordinator |"))
    assert re.split(r"\s{2,}", coord.strip()) == md_coord.strip("| ").split(" | ")
    assert "best single (hindsight)" in text and "best single (hindsight)" in md
    assert "marked to the last trade at day end" in text and "![equity.png](equity.png)" in md


def test_nothing_read_exits_3_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    r = run_app("backtest", str(tmp_path / "empty.csv"))
    assert r.returncode == 3
    assert len(r.stderr.strip().splitlines()) == 1 and "nothing read" in r.stderr and "empty.csv" in r.stderr
    r = run_app("backtest", str(tmp_path / "empty.csv"), "--json")
    assert r.returncode == 3 and "nothing read" in json.loads(r.stdout)["error"]


def test_a_ticker_without_a_contract_exits_2_naming_the_config_section(tmp_path: Path) -> None:
    write_tape(tmp_path / "petr.csv", [("PETR4", "23/11/2026", 300, 1)])
    r = run_app("backtest", str(tmp_path / "petr.csv"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "PETR4" in lines[0] and "[execution.contracts.PET]" in lines[0]


def test_a_bad_column_map_exits_2_with_one_line(tapes: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = _run(capsys, str(tapes), "--columns", "nonsense=first")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--columns" in err and "nonsense" in err


def test_unreadable_tapes_beside_good_ones_are_skipped_with_one_line_each(tapes: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    (tapes / "broken.csv").write_text("not;a;real;tape;row;at;all;x\n")
    code, out, err = _run(capsys, str(tapes))
    assert code == 0 and "2026-11-23" in out
    assert err.strip().splitlines() == [next(ln for ln in err.splitlines() if "broken.csv" in ln)]
    assert "1 tape(s) could not be read" in out


def test_a_report_path_that_is_a_file_exits_4_before_any_work(tapes: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "taken").write_text("")
    code, out, err = _run(capsys, str(tapes), "--report", str(tmp_path / "taken"))
    assert code == 4 and out == ""
    assert len(err.strip().splitlines()) == 1 and "not a writable directory" in err
