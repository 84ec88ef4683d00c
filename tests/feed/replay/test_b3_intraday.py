"""B3's TradeIntraday_YYYYMMDD_1.txt in the layout confirmed from public samples (app/feed/replay/b3_intraday.py)."""
import time

import msgspec

from app import config as config_mod
from app.feed.b3time import local_to_ns
from app.feed.replay.b3_intraday import HEADER, read_b3_intraday
from app.feed.replay.rows import tick_rule
from app.feed.replay.tapes import load_tape, sniff_format

# a morning of the file as B3 publishes it: every instrument, decimal comma, HHMMSSmmm, ids stepping by 10,
# a trade deleted later in the file (AcaoAtualizacao 2), a missing participant code
SAMPLE = HEADER + """
2026-11-20;WDOZ26;0;5123,500;5;090000006;10;1;2026-11-20;120;4090
2026-11-20;PETR4;0;38,450;100;100000120;10;1;2026-11-20;3;
2026-11-20;WDOZ26;0;5124,000;2;090000010;20;1;2026-11-20;3;8
2026-11-20;WDOZ26;0;5124,000;1;090000010;30;1;2026-11-20;8;3
2026-11-20;WDOZ26;0;5123,500;3;090001500;40;1;2026-11-20;72;85
2026-11-20;WDOZ26;0;5123,500;1;090001600;50;1;2026-11-20;72;85
2026-11-20;WDOZ26;0;5122,000;9;090002000;60;1;2026-11-20;1;1
2026-11-20;WDOZ26;2;5122,000;9;090002000;60;1;2026-11-20;1;1
2026-11-20;PETR4;0;38,460;200;100000500;20;1;2026-11-20;3;8
"""


def _tape(tmp_path, text=SAMPLE, name="TradeIntraday_20261120_1.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_the_confirmed_layout_reads_every_instrument_in_time_order(tmp_path):
    p = _tape(tmp_path)
    assert sniff_format(p) == "b3_intraday"
    tape = load_tape(p, config_mod.load(None))
    assert tape.format == "b3_intraday"
    wdo = [e for e in tape.events if e.ticker == "WDOZ26"]
    assert [(t.price, t.qty, t.buyer, t.seller) for t in wdo] == [
        (5123.5, 5, 120, 4090), (5124.0, 2, 3, 8), (5124.0, 1, 8, 3), (5123.5, 3, 72, 85), (5123.5, 1, 72, 85)]
    assert wdo[0].ts == local_to_ns(2026, 11, 20, 9, 0, 0, 6)  # HHMMSSmmm, B3 local time
    assert [t.trade_id for t in wdo] == [1, 2, 3, 4, 5]  # renumbered: B3's ids step by 10 and have holes
    assert all(t.exchange == "F" and t.volume == t.price * t.qty * 10 for t in wdo)
    petr = [e for e in tape.events if e.ticker == "PETR4"]
    assert [(t.exchange, t.seller) for t in petr] == [("B", 0), ("B", 8)]
    assert [e.ts for e in tape.events] == sorted(e.ts for e in tape.events)
    assert tape.report["trades"] == {"WDOZ26": 5, "PETR4": 2}
    assert tape.report["cancelled"] == 1 and tape.report["skipped"] == 0  # the deleted trade is dropped


def test_aggressor_is_inferred_by_the_tick_rule_and_flagged(tmp_path):
    tape = load_tape(_tape(tmp_path), config_mod.load(None))
    wdo = [e for e in tape.events if e.ticker == "WDOZ26"]
    # first trade unknown; uptick buy; zero tick keeps buy; downtick sell; zero tick keeps sell
    assert [(t.aggressor, t.aggressor_inferred) for t in wdo] == [
        ("unknown", False), ("buy", True), ("buy", True), ("sell", True), ("sell", True)]
    petr = [e for e in tape.events if e.ticker == "PETR4"]  # its own state: the WDO moves do not leak into it
    assert [(t.aggressor, t.aggressor_inferred) for t in petr] == [("unknown", False), ("buy", True)]
    assert tape.report["inferred_aggressors"] == 5


def test_tick_rule_zero_ticks_before_any_move_stay_unknown():
    rows = [(0, "X", 0, 10.0), (1, "X", 0, 10.0), (2, "X", 0, 9.5), (3, "X", 0, 9.5), (4, "X", 0, 10.0)]
    assert tick_rule(rows) == ["", "", "sell", "sell", "buy"]


def test_headerless_file_reordered_columns_and_malformed_rows(tmp_path):
    headerless = SAMPLE.split("\n", 1)[1].replace("090000006", "90000006")  # a dropped leading zero still reads
    tape = load_tape(_tape(tmp_path, headerless, "b3.txt"), config_mod.load(None))
    assert tape.format == "b3_intraday" and tape.report["trades"]["WDOZ26"] == 5
    assert tape.events[0].ts == local_to_ns(2026, 11, 20, 9, 0, 0, 6)
    reordered = ("CodigoInstrumento;PrecoNegocio;QuantidadeNegociada;HoraFechamento;DataNegocio\n"
                 "WINZ26;128550,000;2;101500250;2026-11-20\n"
                 "WINZ26;inf;2;101500260;2026-11-20\n"
                 "WINZ26;128555,000;1;251500260;2026-11-20\n"
                 "WINZ26;128560,000;1;101500270;2026-11-20\n")
    events, rep = read_b3_intraday(reordered.encode(), "x.txt")
    assert [(e.price, e.aggressor) for e in events] == [(128550.0, "unknown"), (128560.0, "buy")]
    assert rep.skipped == 2 and [n for n, _ in rep.skipped_lines] == [3, 4]
    assert "finite" in rep.skipped_lines[0][1] and "out of range" in rep.skipped_lines[1][1]


def test_an_old_trade_without_the_inferred_flag_still_decodes():
    from app.io import codec

    class OldTrade(msgspec.Struct, frozen=True, tag="Trade"):  # Trade as journals before the flag wrote it
        ticker: str
        exchange: str
        ts: int
        trade_id: int
        price: float
        qty: int
        volume: float
        buyer: int
        seller: int
        aggressor: str
        received_ns: int
        edit: bool = False

    old = OldTrade("WDOZ26", "F", 1, 7, 5123.5, 1, 51235.0, 8, 3, "buy", 9)
    decoded = codec.decode_input(codec.encode(old))  # type: ignore[arg-type]
    assert decoded.trade_id == 7 and decoded.aggressor == "buy" and decoded.aggressor_inferred is False


def test_a_large_file_loads_in_seconds(tmp_path):
    lines = [HEADER]
    price = 5123.5
    for i in range(60_000):
        price += (-0.5, 0.0, 0.5)[i * 7 % 3]
        ms = 9 * 3_600_000 + i * 200
        h, rem = divmod(ms, 3_600_000)
        m, rem = divmod(rem, 60_000)
        s, milli = divmod(rem, 1000)
        lines.append(f"2026-11-20;WDOZ26;0;{price:.3f};1;{h:02d}{m:02d}{s:02d}{milli:03d};{(i + 1) * 10};1;"
                     f"2026-11-20;8;3".replace(".", ",", 1))
    p = _tape(tmp_path, "\n".join(lines) + "\n")
    t0 = time.perf_counter()
    tape = load_tape(p, config_mod.load(None))
    elapsed = time.perf_counter() - t0
    assert tape.report["trades"] == {"WDOZ26": 60_000} and tape.report["skipped"] == 0
    assert elapsed < 10.0, f"60k rows took {elapsed:.1f}s"  # ~0.35 s measured; 300k rows ~1.7 s
