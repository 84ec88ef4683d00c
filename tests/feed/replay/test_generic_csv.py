"""Any per-trade CSV through a column mapping: times, sides, decimals, quotes -> Book events, and bad mappings."""
import pytest

from app import config as config_mod
from app.config import ConfigError
from app.events import Book, Trade
from app.feed.b3time import local_to_ns
from app.feed.replay.generic_csv import parse_timestamp, read_generic
from app.feed.replay.tapes import TapeError, load_tape, parse_columns

# an export from another platform: English header, ISO times, a top-of-book pair on every row
WITH_BOOK = """Time,Symbol,Price,Volume,Aggressor,Bid,Ask,BidSize,AskSize
2026-11-20T10:00:00.250,WDOZ26,5123.5,2,Buy,5123.0,5123.5,12,4
2026-11-20T10:00:00.400,WDOZ26,5123.0,1,Sell,5123.0,5123.5,11,4
2026-11-20T10:00:01.000,WDOZ26,5123.5,3,B,5123.0,5124.0,11,9
2026-11-20T10:00:02.000,WDOZ26,inf,1,S,5123.0,5124.0,11,9
2026-11-20T10:00:03.000,WDOZ26,nan,1,S,5123.0,5124.0,11,9
"""
MAP = "ts=Time,price=Price,qty=Volume,side=Aggressor,ticker=Symbol,bid=Bid,ask=Ask,bid_qty=BidSize,ask_qty=AskSize"


def _cfg(**replay):
    return config_mod.load(None, {f"replay.{k}": v for k, v in replay.items()})


def test_bid_ask_columns_give_top_of_book_before_each_changed_quote(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text(WITH_BOOK)
    tape = load_tape(p, _cfg(), parse_columns(MAP))
    assert tape.format == "generic_csv"
    kinds = [(type(e).__name__, getattr(e, "side", getattr(e, "aggressor", None))) for e in tape.events]
    assert kinds == [("Book", "bid"), ("Book", "ask"), ("Trade", "buy"),  # first quote, then the trade
                     ("Book", "bid"), ("Trade", "sell"),  # bid size 12 -> 11
                     ("Book", "ask"), ("Trade", "buy")]  # ask 5123.5 -> 5124.0
    books = [e for e in tape.events if type(e) is Book]
    assert books[0].levels == ((5123.0, 12, 0),) and books[0].source == "replay"
    assert books[-1].levels == ((5124.0, 9, 0),)
    trades = [e for e in tape.events if type(e) is Trade]
    assert trades[0].ts == local_to_ns(2026, 11, 20, 10, 0, 0, 250)  # naive ISO = B3 local time
    assert [t.trade_id for t in trades] == [1, 2, 3] and not any(t.aggressor_inferred for t in trades)
    # inf and nan prices are malformed rows, reported with their line numbers; the rest still replays
    assert tape.report["skipped"] == 2 and tape.report["skipped_lines"][0].startswith("5: ")
    assert tape.report["books"] == 4 and tape.report["trades"] == {"WDOZ26": 3}


def test_semicolon_file_with_date_and_time_columns_decimal_comma_and_a_fixed_ticker(tmp_path):
    text = ("Data;Hora;Preço;Qtd;Lado\n"
            "20/11/2026;10:00:01;5.123,50;1;-1\n"  # newest first, like Profit
            "20/11/2026;10:00:00;5.124,00;2;1\n")
    events, rep = read_generic(text.encode("latin-1"), "x.csv",
                               parse_columns("date=Data,time=Hora,price=preco,qty=QTD,side=Lado"), ticker="wdoz26")
    assert rep.newest_first and rep.encoding == "latin-1"
    assert [(e.ticker, e.price, e.qty, e.aggressor) for e in events] == [
        ("WDOZ26", 5124.0, 2, "buy"), ("WDOZ26", 5123.5, 1, "sell")]


def test_without_a_side_column_the_tick_rule_infers_and_flags(tmp_path):
    text = "1795179600,5000.0,1\n1795179601,5000.5,1\n1795179602,5000.5,2\n1795179603,4999.5,1\n"
    events, rep = read_generic(text.encode(), "n.csv", parse_columns("ts=1,price=2,qty=3"), ticker="WDOZ26")
    assert [(e.aggressor, e.aggressor_inferred) for e in events] == [
        ("unknown", False), ("buy", True), ("buy", True), ("sell", True)]
    assert rep.inferred_aggressors == 3 and rep.header == ""


@pytest.mark.parametrize("text, expected", [
    ("2026-11-20T10:00:00", local_to_ns(2026, 11, 20, 10, 0, 0)),
    ("2026-11-20 10:00:00.123456789", local_to_ns(2026, 11, 20, 10, 0, 0) + 123_456_789),
    ("2026-11-20T13:00:00Z", local_to_ns(2026, 11, 20, 10, 0, 0)),
    ("2026-11-20T10:00:00-03:00", local_to_ns(2026, 11, 20, 10, 0, 0)),
    ("20/11/2026 10:00:00.250", local_to_ns(2026, 11, 20, 10, 0, 0, 250)),
    ("2018-11-20T10:00:00", 1_542_715_200 * 10**9),  # 12:00 UTC: daylight saving time then (UTC-2)
    ("1795179600", 1_795_179_600 * 10**9),
    ("1795179600.5", 1_795_179_600_500_000_000),
    ("1795179600250", 1_795_179_600_250_000_000),
    ("1795179600250000000", 1_795_179_600_250_000_000),
])
def test_time_formats(text, expected):
    assert parse_timestamp(text) == expected


def test_bad_mappings_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown role 'when'"):
        parse_columns("when=Time,price=Price,qty=Volume")
    with pytest.raises(ConfigError, match="needs qty"):
        parse_columns("ts=Time,price=Price")
    with pytest.raises(ConfigError, match="not role=COLUMN"):
        parse_columns("ts=Time,price,qty=Volume")
    p = tmp_path / "other.csv"
    p.write_text(WITH_BOOK)
    with pytest.raises(TapeError, match=r"column 'Quantity' \(qty\) is not in the header 'Time,Symbol"):
        load_tape(p, _cfg(), parse_columns("ts=Time,price=Price,qty=Quantity,ticker=Symbol"))
    with pytest.raises(TapeError, match="no ticker column"):
        load_tape(p, _cfg(), parse_columns("ts=Time,price=Price,qty=Volume"))


def test_config_columns_select_the_generic_reader_without_the_option(tmp_path):
    p = tmp_path / "other.csv"
    p.write_text(WITH_BOOK)
    # a column may be a header name or a 1-based number, as TOML writes it (price = 3)
    cfg = _cfg(columns={"ts": "Time", "price": 3, "qty": "Volume", "side": "Aggressor"}, ticker="WDOZ26")
    tape = load_tape(p, cfg)
    assert tape.format == "generic_csv" and tape.report["trades"] == {"WDOZ26": 3} and tape.report["books"] == 0
