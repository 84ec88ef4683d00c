"""The one entry point for tapes: format by content, folder expansion, journals, and one-line errors."""

import pytest

from app import config as config_mod
from app.events import Book, State, Trade
from app.feed.replay.b3_intraday import HEADER
from app.feed.replay.tapes import NoTradesRead, TapeError, expand_paths, load_tape, sniff_format
from tests.io.samples import inputs
from tests.conftest import write_journal

# Profit's own layout: no header, newest first, several trades in one second
PROFIT = """WDOZ26;20/11/2026;10:00:02;8 - UBS BRASIL CCTVM S/A;5.123,50;5;3 - XP INVESTIMENTOS CCTVM S/A;Comprador
WDOZ26;20/11/2026;10:00:01;72 - BRADESCO S/A CTVM;5123,00;1;8 - UBS BRASIL CCTVM S/A;Vendedor
WDOZ26;20/11/2026;10:00:01;3 - XP INVESTIMENTOS CCTVM S/A;5123,00;2;72 - BRADESCO S/A CTVM;Direto
WDOZ26;20/11/2026;09:00:00;1 - MORGAN STANLEY;5120,50;40;85 - BTG PACTUAL;Leilão
"""
B3 = HEADER + "\n2026-11-20;WDOZ26;0;5123,500;5;090000006;10;1;2026-11-20;120;4090\n"
CFG = config_mod.load(None)


def _journal(directory, events, run_id="run-t"):
    return write_journal(directory, run_id, events)


def test_profit_export_newest_first_through_load_tape(tmp_path):
    p = tmp_path / "export.csv"
    p.write_bytes(PROFIT.encode("latin-1"))
    tape = load_tape(p, CFG)
    assert tape.format == "profit_csv" and tape.report["newest_first"] and tape.report["encoding"] == "latin-1"
    assert [(t.price, t.aggressor, t.trade_id) for t in tape.events] == [
        (5120.5, "auction", 1), (5123.0, "direct", 2), (5123.0, "sell", 3), (5123.5, "buy", 4)]
    assert tape.report["trades"] == {"WDOZ26": 4} and tape.report["inferred_aggressors"] == 0


def test_format_comes_from_content_not_the_file_name(tmp_path):
    disguised = tmp_path / "TradeIntraday_20261120_1.txt"
    disguised.write_bytes(PROFIT.encode("latin-1"))  # a Profit export under B3's file name
    assert sniff_format(disguised) == "profit_csv"
    b3 = tmp_path / "trades.csv"
    b3.write_text(B3)
    assert sniff_format(b3) == "b3_intraday"
    run = _journal(tmp_path / "j", inputs(10))
    part = next(run.glob("*.hmj"))
    renamed = tmp_path / "journal.csv"
    renamed.write_bytes(part.read_bytes())
    assert sniff_format(renamed) == "journal" and sniff_format(run) == "journal"


def test_journal_tape_keeps_trades_and_books_in_arrival_order(tmp_path):
    events = inputs(30)
    run = _journal(tmp_path / "j", events)
    tape = load_tape(run, CFG)
    assert tape.format == "journal"
    assert tape.events == [e for e in events if type(e) in (Trade, Book)]  # the State is not a tape event
    assert tape.report["books"] == sum(1 for e in events if type(e) is Book)
    assert tape.report["trades"] == {"WDOZ26": 10, "WINZ26": 10}


def test_folder_expansion_is_recursive_sorted_unique_and_skips_other_files(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "a.csv").write_bytes(PROFIT.encode("latin-1"))
    (tmp_path / "b" / "deep" / "TradeIntraday_20261120_1.txt").write_text(B3)
    (tmp_path / "b" / "notes.txt").write_text("roll the contract, check fees, then run\n")  # prose is not a tape
    (tmp_path / "b" / "broken.csv").write_text("not;a;real;tape\n")  # a .csv is kept: load_tape will say why
    (tmp_path / "b" / "other.csv").write_text("Time,Price,Volume\n2026-11-20T10:00:00,5123.5,1\n")  # --columns
    (tmp_path / "b" / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    run = _journal(tmp_path / "journal", inputs(10), "run-x")  # a run directory is one tape, not its parts
    found = expand_paths([str(tmp_path), str(tmp_path / "a.csv")])
    assert found == sorted(found, key=str)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.csv", "b/broken.csv", "b/deep/TradeIntraday_20261120_1.txt", "b/other.csv",
        run.relative_to(tmp_path).as_posix()]
    with pytest.raises(TapeError, match="missing.csv: no such file or directory"):
        expand_paths([str(tmp_path / "missing.csv")])


def test_a_tape_in_an_unknown_layout_is_one_line_naming_expected_and_found(tmp_path):
    p = tmp_path / "tape.csv"
    p.write_text("a;b;c;d;e;f\n" + "1;2;3;4;5;6\n" * 119)
    with pytest.raises(NoTradesRead) as err:
        load_tape(p, CFG)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{p}: no trade read from 120 lines")
    assert "found header 'a;b;c;d;e;f' (6 columns)" in msg
    headerless = tmp_path / "numbers.csv"
    headerless.write_text("1;2;3;4;5;6\n")
    with pytest.raises(NoTradesRead, match=r"found first line '1;2;3;4;5;6' \(6 columns\)"):
        load_tape(headerless, CFG)
    for known in ("Profit Times & Trades export (asset;date;time;buyer;price;qty;seller;aggressor)",
                  "generic CSV with --columns ts=...,price=...,qty=...[,side=...]", "B3 TradeIntraday_YYYYMMDD_1.txt",
                  "hmarl run journal"):
        assert known in msg


def test_unreadable_inputs_are_tape_errors(tmp_path):
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(TapeError, match="neither an hmarl journal nor a text"):
        load_tape(binary, CFG)
    bad_magic = tmp_path / "run-z-00001.hmj"
    bad_magic.write_bytes(b"NOTMAGIC" + bytes(64))
    with pytest.raises(TapeError, match="bad magic"):
        load_tape(bad_magic, CFG)
    run = _journal(tmp_path / "j", inputs(10))
    part = next(run.glob("*.hmj"))
    data = bytearray(part.read_bytes())
    data[8:12] = (1 << 20).to_bytes(4, "little")  # header length now absurd: a damaged header
    part.write_bytes(bytes(data))
    with pytest.raises(TapeError, match="damaged journal header"):
        load_tape(run, CFG)
    empty_run = _journal(tmp_path / "k", [State(conn_type=2, result=4, name="MARKET_CONNECTED", received_ns=0)])
    with pytest.raises(NoTradesRead, match=r"no trade read from the run journal \(1 frames"):
        load_tape(empty_run, CFG)
