from pathlib import Path

from app.agents.base import session_day
from app.backtest.days import group_days
from app.backtest.sources import load_tape
from app.config import Config
from app.events import Book, Trade
from tests.backtest.make import day_rows, write_tape


def _sources(*paths: Path) -> list[tuple[str, list]]:
    return [(str(p), load_tape(p, Config()).events) for p in paths]


def test_tapes_are_grouped_by_ticker_and_session_day_in_time_order(tapes: Path) -> None:
    # wdo.csv is newest first and holds three days; the groups come out per ticker, days ascending, in time order
    by = group_days(_sources(tapes / "win.csv", tapes / "wdo.csv"))
    assert list(by) == ["WDOZ26", "WINZ26"]
    wdo = by["WDOZ26"]
    assert [d.trades for d in wdo] == [3000, 3000, 3000]
    assert [d.day for d in wdo] == sorted(d.day for d in wdo) and len({d.day for d in wdo}) == 3
    for d in wdo:
        ts = [e.ts for e in d.events]
        assert ts == sorted(ts)
        assert {session_day(t) for t in ts} == {d.day}
        assert [e.trade_id for e in d.events] == sorted(e.trade_id for e in d.events)
    assert by["WINZ26"][0].day == wdo[0].day


def test_overlapping_exports_merge_in_time_order_and_drop_exact_duplicates(tmp_path: Path) -> None:
    rows = day_rows("WDOZ26", "23/11/2026", 3000, 5)
    full, a, b = tmp_path / "full.csv", tmp_path / "a.csv", tmp_path / "b.csv"
    for path, part in ((full, rows), (a, rows[:2000]), (b, rows[1500:])):
        path.write_bytes(("\n".join(reversed(part)) + "\n").encode("latin-1"))
    merged = group_days(_sources(b, a))["WDOZ26"][0]
    alone = group_days(_sources(full))["WDOZ26"][0]
    key = lambda e: (e.ts, e.price, e.qty, e.aggressor, e.buyer, e.seller)  # noqa: E731
    assert merged.duplicates == 500
    assert [key(e) for e in merged.events] == [key(e) for e in alone.events]
    # ids from the two files collided, so they are renumbered 1..N in the merged order
    assert merged.renumbered and [e.trade_id for e in merged.events] == list(range(1, 3001))


def test_identical_prints_within_one_export_are_all_kept(tmp_path: Path) -> None:
    row = "WDOZ26;23/11/2026;09:00:01;8 - UBS;5300,50;1;3 - XP;Comprador"
    other = "WDOZ26;23/11/2026;09:00:02;8 - UBS;5301,00;1;3 - XP;Comprador"
    p, q = tmp_path / "p.csv", tmp_path / "q.csv"
    p.write_text(f"{other}\n{row}\n{row}\n", encoding="latin-1")
    q.write_text(f"{row}\n", encoding="latin-1")  # a second export overlapping one of the two identical prints
    day = group_days(_sources(p, q))["WDOZ26"][0]
    prices = [e.price for e in day.events if type(e) is Trade]
    assert prices == [5300.5, 5300.5, 5301.0]
    assert day.duplicates == 1


def test_tickers_in_one_export_are_split_into_their_own_days(tmp_path: Path) -> None:
    write_tape(tmp_path / "x.csv", [("WINZ26", "24/11/2026", 500, 1), ("WDOZ26", "24/11/2026", 400, 2)])
    by = group_days(_sources(tmp_path / "x.csv"))
    assert {t: [d.trades for d in days] for t, days in by.items()} == {"WDOZ26": [400], "WINZ26": [500]}
    assert all(e.ticker == t for t, days in by.items() for d in days for e in d.events)


def test_books_go_with_the_next_trade_of_their_ticker(tmp_path: Path) -> None:
    # the DLL's initial snapshot is stamped 0 and a pre-open book at 08:59 belongs to the session day before by
    # the clock; both are the market the next trade meets, so they join that trade's day
    write_tape(tmp_path / "x.csv", [("WDOZ26", "23/11/2026", 50, 1), ("WDOZ26", "24/11/2026", 50, 2)])
    trades = load_tape(tmp_path / "x.csv", Config()).events
    day2 = next(i for i, t in enumerate(trades) if session_day(t.ts) != session_day(trades[0].ts))

    def book(ts: int) -> Book:
        return Book(ticker="WDOZ26", ts=ts, side="ask", levels=((5300.0, 1, 1),), received_ns=0)

    snapshot, preopen, closing = book(0), book(trades[day2].ts - 60 * 10**9), book(trades[-1].ts)
    events = [snapshot, *trades[:day2], preopen, *trades[day2:], closing]
    days = group_days([("journal", events)])["WDOZ26"]
    assert [len(d.events) for d in days] == [51, 52]
    assert days[0].events[0] is snapshot
    assert days[1].events[0] is preopen and days[1].events[-1] is closing
    assert session_day(preopen.ts) == days[0].day  # by the clock alone it would have closed day one
