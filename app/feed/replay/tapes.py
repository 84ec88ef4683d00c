"""One entry point for tapes: which files to read (`expand_paths`) and reading one (`load_tape`), any format.

Formats, told apart by content (never by the file name alone):
- "journal": an hmarl run journal (part files starting with the journal magic, or a run directory of them);
- "b3_intraday": B3's TradeIntraday_YYYYMMDD_1.txt (b3_intraday.py), recognised by its header or row shape;
- "generic_csv": any CSV read through a column mapping (`--columns` or `[replay.columns]`; generic_csv.py);
- "profit_csv": a Profit "Times & Trades" export (profit_csv.py), the fallback for other text.

A tape that yields no trade is a NoTradesRead whose one-line message says what was expected and what was found,
so a file in an unknown layout never replays silently as nothing. Journal events are kept in arrival order (what
the live pipeline saw); the CSV-like formats are put in exchange-time order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.config import Config
from app.events import Book, InputEvent, Trade
from app.feed.replay import b3_intraday
from app.feed.replay.generic_csv import parse_columns, read_generic
from app.feed.replay.profit_csv import ProfitCsv, decode_text
from app.feed.replay.rows import NoTradesRead, TapeError
from app.io import codec
from app.io.journal import SUFFIX, JournalError, JournalReader, is_journal_file, run_parts

__all__ = ["Tape", "TapeError", "NoTradesRead", "expand_paths", "load_tape", "parse_columns", "sniff_format",
           "KNOWN_FORMATS"]

KNOWN_FORMATS = ("known formats: Profit Times & Trades export (asset;date;time;buyer;price;qty;seller;aggressor), "
                 "generic CSV with --columns ts=...,price=...,qty=...[,side=...], B3 TradeIntraday_YYYYMMDD_1.txt, "
                 "hmarl run journal")
_HEAD = 1 << 16
_NUMERIC = re.compile(r"^(?=.*\d)[\d.,:/ T+\-Z]+$")  # a number, a date, a time or a timestamp


@dataclass
class Tape:
    path: Path
    format: str  # "profit_csv" | "generic_csv" | "b3_intraday" | "journal"
    events: list[InputEvent] = field(default_factory=list)  # Trade (and Book) events
    report: dict[str, Any] = field(default_factory=dict)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(_HEAD)
    except OSError as err:
        raise TapeError(f"{path}: cannot read ({err.strerror}); check the path and its permissions") from None


def _first_line(data: bytes) -> str:
    text, _enc = decode_text(data)
    return next((ln for ln in text.splitlines() if ln.strip()), "")


def sniff_format(path: str | Path, columns: dict[str, str] | None = None) -> str:
    """The format of `path` from its content; TapeError when it is missing, binary or a damaged journal."""
    p = Path(path)
    if p.is_dir():
        return "journal"
    if not p.is_file():
        raise TapeError(f"{p}: no such file or directory; give a journal, a run directory or a tape file")
    if is_journal_file(p):
        return "journal"
    head = _head(p)
    if p.suffix == SUFFIX:
        raise TapeError(f"{p}: not an hmarl journal (bad magic); give an intact journal part or its run directory")
    if b"\x00" in head:
        raise TapeError(f"{p}: neither an hmarl journal nor a text (CSV) file; {KNOWN_FORMATS}")
    if columns:
        return "generic_csv"
    if b3_intraday.looks_like(_first_line(head)):
        return "b3_intraday"
    return "profit_csv"


def _recognised(path: Path) -> bool:
    """A file found while searching a folder: a journal part, any .csv/.tsv (one that turns out unreadable is then
    reported by load_tape rather than skipped in silence), or a .txt that reads as a tape at its start (B3's
    TradeIntraday files are .txt; a folder's notes are not tapes)."""
    if is_journal_file(path):
        return True
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return True
    if suffix != ".txt":
        return False
    try:
        head = _head(path)
    except TapeError:
        return False
    if b"\x00" in head:
        return False
    # Profit exports, B3 files and CSVs for --columns all have, within their first rows, a row of three or more
    # delimited cells of which two or more are numbers, dates or times (a note or a README does not); the reader
    # decides later whether the rows make trades, and says so in one line when they do not
    text, _enc = decode_text(head)
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()][:3]
    if lines and b3_intraday.looks_like(lines[0]):
        return True
    for line in lines:
        cells = max((line.split(d) for d in ";,\t"), key=len)
        if len(cells) >= 3 and sum(1 for c in cells if _NUMERIC.match(c.strip())) >= 2:
            return True
    return False


def _search(directory: Path) -> list[Path]:
    if run_parts(directory):
        return [directory]  # a run directory is one tape
    found: list[Path] = []
    for child in sorted(directory.iterdir()):
        if child.is_dir():
            found.extend(_search(child))
        elif child.is_file() and _recognised(child):
            found.append(child)
    return found


def expand_paths(paths: list[str] | list[Path] | list[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively (recognised tape files and run-journal directories), sorted,
    each once. A path that does not exist is a TapeError."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise TapeError(f"{p}: no such file or directory; give tape files or folders holding them")
        out.extend([p] if p.is_file() else _search(p))
    unique: dict[Path, Path] = {}
    for p in out:
        unique.setdefault(p.resolve(), p)
    return sorted(unique.values(), key=lambda q: str(q))


def load_tape(path: str | Path, cfg: Config, columns: dict[str, str] | None = None) -> Tape:
    """Read one tape; `columns` (else `[replay.columns]`) selects the generic CSV reader."""
    p = Path(path)
    mapping = columns or {role: str(col) for role, col in cfg.replay.columns.items()} or None
    fmt = sniff_format(p, mapping)
    if fmt == "journal":
        return _journal(p)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise TapeError(f"{p}: cannot read ({err.strerror}); check the path and its permissions") from None
    if fmt == "generic_csv":
        assert mapping is not None
        events, rep = read_generic(data, str(p), mapping, cfg.replay.ticker, cfg.replay.decimal)
        report = rep.as_dict()
    elif fmt == "b3_intraday":
        events, rep = b3_intraday.read_b3_intraday(data, str(p))
        report = rep.as_dict()
    else:
        parser = ProfitCsv(data, str(p))
        for _ in parser.parse():
            pass
        events = list(parser.finish())
        report = {"format": fmt, **parser.report.as_dict(), "books": 0, "inferred_aggressors": 0}
    if not any(type(e) is Trade for e in events):
        raise NoTradesRead(_nothing_read(p, fmt, data, report))
    return Tape(p, fmt, events, report)


def _nothing_read(p: Path, fmt: str, data: bytes, report: dict[str, Any]) -> str:
    line = _first_line(data[:_HEAD])
    ncols = max(len(line.split(d)) for d in ";,\t") if line else 0
    shown = line.strip()[:120] + ("..." if len(line.strip()) > 120 else "")
    why = f"; first skipped: line {report['skipped_lines'][0]}" if report.get("skipped_lines") else ""
    read_as = {"profit_csv": "", "b3_intraday": " (read as B3 TradeIntraday)",
               "generic_csv": " (read with the column mapping)"}[fmt]
    if not line:
        return f"{p}: no trade read: the file is empty; {KNOWN_FORMATS}"
    cells = [c.strip() for c in line.replace("\t", ";").replace(",", ";").split(";")]
    titled = report.get("header") or not any(c.replace(".", "").replace("/", "").replace(":", "").isdigit()
                                             for c in cells)  # no number or date in it: a header row
    found = f"found header '{shown}'" if titled else f"found first line '{shown}'"
    return (f"{p}: no trade read from {report.get('lines', 0)} lines{read_as} ({report.get('skipped', 0)} "
            f"malformed{why}); {found} ({ncols} columns); {KNOWN_FORMATS}")


def _journal(p: Path) -> Tape:
    try:
        reader = JournalReader(p)
        events: list[InputEvent] = []
        undecodable = 0
        for _seq, payload in reader:
            try:
                ev = codec.decode_input(payload)
            except codec.CodecError:
                undecodable += 1
                continue
            if type(ev) is Trade or type(ev) is Book:
                events.append(ev)
    except JournalError as err:
        raise TapeError(f"{err}; give an intact journal or its run directory") from None
    trades: dict[str, int] = {}
    books = 0
    for ev in events:
        if type(ev) is Trade:
            trades[ev.ticker] = trades.get(ev.ticker, 0) + 1
        else:
            books += 1
    report = {"path": str(p), "format": "journal", "frames": reader.frames, "undecodable": undecodable,
              "lines": reader.frames, "skipped": undecodable, "skipped_lines": [], "trades": trades, "books": books,
              "inferred_aggressors": sum(1 for e in events if type(e) is Trade and e.aggressor_inferred),
              "damaged": list(reader.truncated), "encoding": "msgpack"}
    if not trades:
        raise NoTradesRead(f"{p}: no trade read from the run journal ({reader.frames} frames, {books} books, "
                           f"{undecodable} undecodable, {len(reader.damage)} damaged stretches); {KNOWN_FORMATS}")
    return Tape(p, "journal", events, report)
