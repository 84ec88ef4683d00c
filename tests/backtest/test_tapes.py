"""What the backtest reads from a folder: one tape per export and per run journal (app.feed.replay.tapes reads)."""
from pathlib import Path

import msgspec

from app.backtest.sources import expand_paths, load_tape
from app.config import Config
from app.events import Book
from tests.backtest.make import write_tape
from tests.conftest import write_journal


_journal = write_journal


def test_a_folder_of_run_journals_and_exports_expands_to_one_tape_each(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    csv = write_tape(tmp_path / "exports" / "wdo.csv", [("WDOZ26", "23/11/2026", 200, 1)])
    trades = load_tape(csv, Config()).events
    book = Book(ticker="WDOZ26", ts=trades[0].ts, side="bid", levels=((5300.0, 3, 1),), received_ns=0)
    journal_dir = tmp_path / "journal"
    _journal(journal_dir, "run-b", [book, *trades[100:]])
    _journal(journal_dir, "run-a", trades[:100])
    (tmp_path / "notes.md").write_text("not a tape")
    found = expand_paths([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["exports/wdo.csv", "journal/run-a", "journal/run-b"]
    tape = load_tape(found[2], Config())
    assert tape.format == "journal" and tape.events[0] == book
    assert [msgspec.structs.replace(e, received_ns=0) for e in tape.events[1:]] == trades[100:]
