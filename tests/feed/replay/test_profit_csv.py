"""Profit "Times & Trades" exports as real ones look (market-facts.md), and the tolerated variants."""
import logging

import pytest

from app.feed.b3time import local_to_ns
from app.feed.replay.profit_csv import ProfitCsv, parse_profit_csv

# a real-looking export: no header, ';', decimal comma, Latin-1, newest first, several trades per second
REAL = """DOLZ26;20/11/2026;10:00:02;8 - UBS BRASIL CCTVM S/A;5.733,50;5;3 - XP INVESTIMENTOS CCTVM S/A;Comprador
DOLZ26;20/11/2026;10:00:01;72 - BRADESCO S/A CTVM;5733,00;1;8 - UBS BRASIL CCTVM S/A;Vendedor
DOLZ26;20/11/2026;10:00:01;3 - XP INVESTIMENTOS CCTVM S/A;5733,00;2;72 - BRADESCO S/A CTVM;Direto
DOLZ26;20/11/2026;09:00:00;1 - MORGAN STANLEY;5730,50;40;85 - BTG PACTUAL;Leilão
"""


def _write(tmp_path, text: str, encoding: str = "latin-1", name: str = "export.csv"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_real_export_newest_first_latin1_decimal_comma(tmp_path):
    trades, rep = parse_profit_csv(_write(tmp_path, REAL))
    assert rep.encoding == "latin-1" and rep.delimiter == ";" and rep.newest_first and not rep.header
    assert [(t.price, t.qty, t.aggressor) for t in trades] == [
        (5730.5, 40, "auction"), (5733.0, 2, "direct"), (5733.0, 1, "sell"), (5733.5, 5, "buy")]
    # same second: the file's order reversed (true order), ids 1..N in time order
    assert [t.trade_id for t in trades] == [1, 2, 3, 4]
    assert [(t.buyer, t.seller) for t in trades] == [(1, 85), (3, 72), (72, 8), (8, 3)]
    assert trades[0].ts == local_to_ns(2026, 11, 20, 9, 0, 0)
    assert trades[0].ts == 1_795_176_000_000_000_000  # 09:00 B3 (UTC-3) = 12:00 UTC
    assert all(t.exchange == "F" and t.received_ns == 0 for t in trades)
    assert trades[3].volume == 5733.5 * 5 * 50  # R$ per point of DOL
    assert rep.trades == {"DOLZ26": 4} and rep.skipped == 0


def test_header_milliseconds_utf8_comma_separator_english_words(tmp_path):
    text = ("Asset,Date,Time,Buyer,Price,Quantity,Seller,Aggressor\n"
            "WINZ26,2026-11-20,10:00:00.250,85 - BTG,128550,2,72 - BRADESCO,Buyer\n"
            "WINZ26,2026-11-20,10:00:00.100,,128545.0,1,,Seller\n")
    trades, rep = parse_profit_csv(_write(tmp_path, text, "utf-8"))
    assert rep.header and rep.delimiter == "," and rep.encoding == "utf-8" and rep.newest_first
    assert [(t.ts % 1_000_000_000, t.price, t.aggressor, t.buyer, t.seller) for t in trades] == [
        (100_000_000, 128545.0, "sell", 0, 0), (250_000_000, 128550.0, "buy", 85, 72)]
    assert trades[0].volume == pytest.approx(128545.0 * 0.2)


def test_portuguese_header_in_another_order_and_oldest_first(tmp_path):
    text = ("Data;Hora;Ativo;Preço;Quantidade;Agressor;Comprador;Vendedor\n"
            "20/11/2026;10:00:00;WDOZ26;5123,5;1;Comprador;8 - UBS;3 - XP\n"
            "20/11/2026;10:00:00;WDOZ26;5124,0;3;Vendedor;3 - XP;8 - UBS\n"
            "20/11/2026;10:00:01;PETR4;38,45;100;Comprador;8 - UBS;3 - XP\n")
    trades, rep = parse_profit_csv(_write(tmp_path, text, "utf-8"))
    assert rep.header and not rep.newest_first
    assert [(t.ticker, t.price, t.trade_id) for t in trades] == [("WDOZ26", 5123.5, 1), ("WDOZ26", 5124.0, 2),
                                                                 ("PETR4", 38.45, 1)]
    assert trades[2].exchange == "B" and trades[2].volume == pytest.approx(3845.0)


def test_date_and_time_in_one_column_and_a_utf8_bom(tmp_path):
    text = "\ufeffWDOZ26;20/11/2026 10:00:01.5;8 - UBS;5123,5;1;3 - XP;Comprador\n"
    trades, rep = parse_profit_csv(_write(tmp_path, text, "utf-8"))
    assert rep.encoding == "utf-8-sig"
    assert trades[0].ts == local_to_ns(2026, 11, 20, 10, 0, 1, 500)


def test_malformed_rows_are_reported_with_line_numbers_and_skipped(tmp_path, caplog):
    text = (REAL.splitlines()[0] + "\n"
            "DOLZ26;20/11/2026;10:00:01;8 - UBS;not-a-price;1;3 - XP;Vendedor\n"
            "\n"
            "DOLZ26;31/02/2026;10:00:01;8 - UBS;5733,0;1;3 - XP;Vendedor\n"
            "DOLZ26;20/11/2026;25:00:01;8 - UBS;5733,0;1;3 - XP;Vendedor\n"
            "DOLZ26;20/11/2026;10:00:01;8 - UBS;5733,0;-2;3 - XP;Vendedor\n"
            "only;three;cells\n"
            + REAL.splitlines()[3] + "\n")
    caplog.set_level(logging.WARNING, logger="app.feed.replay")
    trades, rep = parse_profit_csv(_write(tmp_path, text))
    assert len(trades) == 2 and rep.skipped == 5
    assert [n for n, _ in rep.skipped_lines] == [2, 4, 5, 6, 7]
    messages = " ".join(r.getMessage() for r in caplog.records)
    for n in (2, 4, 5, 6, 7):
        assert f"export.csv line {n} skipped" in messages


def test_unknown_aggressor_words_are_kept_as_unknown_and_counted(tmp_path):
    text = "WDOZ26;20/11/2026;10:00:00;8 - UBS;5123,5;1;3 - XP;Surpresa\n"
    trades, rep = parse_profit_csv(_write(tmp_path, text))
    assert trades[0].aggressor == "unknown" and rep.unknown_aggressors == {"Surpresa": 1}


def test_parser_gives_the_loop_back_while_parsing_a_big_file():
    row = "WDOZ26;20/11/2026;10:00:00;8 - UBS;5123,5;1;3 - XP;Comprador\n"
    parser = ProfitCsv((row * 12_000).encode(), "big.csv")
    yields = sum(1 for _ in parser.parse(chunk=5000))
    assert yields == 2 and len(parser.finish()) == 12_000


def test_infinite_or_nan_numbers_are_malformed_rows_not_data(tmp_path):
    text = ("WDOZ26;20/11/2026;10:00:03;8 - UBS;inf;1;3 - XP;Comprador\n"
            "WDOZ26;20/11/2026;10:00:02;8 - UBS;5123,50;nan;3 - XP;Comprador\n"
            "WDOZ26;20/11/2026;10:00:01;8 - UBS;5123,00;inf;3 - XP;Vendedor\n"
            "WDOZ26;20/11/2026;10:00:00;8 - UBS;5122,50;1;3 - XP;Vendedor\n")
    trades, rep = parse_profit_csv(_write(tmp_path, text))
    assert [t.price for t in trades] == [5122.5]
    assert rep.skipped == 3 and all("not a finite number" in why for _n, why in rep.skipped_lines)
