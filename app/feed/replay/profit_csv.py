"""Profit "Times & Trades" CSV exports -> Trade events in time order (format: shared market-facts.md).

What real exports look like: no header (sometimes one), `;` separator, decimal comma, Latin-1, rows newest first,
columns asset; dd/mm/yyyy; HH:MM:SS[.mmm]; buyer agent "8 - UBS ..."; price; quantity; seller agent; aggressor
word (Comprador / Vendedor / Direto / Leilão). Tolerated too: a header row (Portuguese or English names, any
column order), `,` separator with decimal dot, UTF-8 (with or without BOM), English aggressor words, date and time
in one column, missing agent codes (-> 0), thousands separators in pt-BR numbers ("128.550").

Nothing is invented: a row that cannot be read is reported with its line number and skipped. An aggressor word
that is not recognised becomes "unknown" and is counted. Time order is restored with a stable sort after
reversing newest-first files, so trades of the same timestamp keep the file's relative order reversed (that is,
their true order). trade_id is a sequence number per ticker, 1..N in time order. ts is B3 local time
(America/Sao_Paulo) as ns since the epoch, UTC. received_ns is 0 here: the replay feed stamps it on delivery.
"""
from __future__ import annotations

import csv
import logging
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from app.events import Trade
from app.feed.b3time import local_to_ns

log = logging.getLogger("app.feed.replay")

FUTURES_ROOTS = {"WDO": 10.0, "DOL": 50.0, "WIN": 0.2, "IND": 1.0}  # R$ per point (market-facts.md)
MAX_REPORTED = 20  # malformed rows logged one by one; the rest are counted and summarised

_AGGRESSOR = {
    "comprador": "buy", "compra": "buy", "buyer": "buy", "buy": "buy", "c": "buy",
    "vendedor": "sell", "venda": "sell", "seller": "sell", "sell": "sell", "v": "sell",
    "direto": "direct", "direct": "direct", "cross": "direct", "d": "direct",
    "leilao": "auction", "auction": "auction", "l": "auction",
    "": "unknown", "-": "unknown", "indefinido": "unknown", "unknown": "unknown", "rlp": "unknown",
}
_HEADER = {
    "ativo": "asset", "asset": "asset", "symbol": "asset", "papel": "asset", "ticker": "asset", "codigo": "asset",
    "data": "date", "date": "date", "dia": "date",
    "hora": "time", "time": "time", "horario": "time",
    "data/hora": "datetime", "datahora": "datetime", "data hora": "datetime", "datetime": "datetime",
    "date/time": "datetime", "timestamp": "datetime",
    "comprador": "buyer", "compradora": "buyer", "buyer": "buyer", "agente comprador": "buyer",
    "corretora compradora": "buyer", "buy agent": "buyer", "buyer agent": "buyer",
    "preco": "price", "price": "price", "valor": "price",
    "quantidade": "qty", "qtd": "qty", "qtde": "qty", "quantity": "qty", "qty": "qty", "quant": "qty",
    "vendedor": "seller", "vendedora": "seller", "seller": "seller", "agente vendedor": "seller",
    "corretora vendedora": "seller", "sell agent": "seller", "seller agent": "seller",
    "agressor": "aggressor", "aggressor": "aggressor", "tipo": "aggressor", "side": "aggressor",
    "lado": "aggressor", "agressao": "aggressor",
}
_POSITIONAL_8 = ("asset", "date", "time", "buyer", "price", "qty", "seller", "aggressor")
_POSITIONAL_7 = ("asset", "datetime", "buyer", "price", "qty", "seller", "aggressor")
_THOUSANDS = re.compile(r"^\d{1,3}(\.\d{3})+$")
_AGENT = re.compile(r"^\s*(\d+)")
_TICKER = re.compile(r"^[A-Z0-9]{3,16}$")


def _fold(text: str) -> str:
    """Lower case without accents: 'Leilão' -> 'leilao' (and a mis-decoded 'LeilÃ£o' is not matched by accident)."""
    norm = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(c for c in norm if not unicodedata.combining(c))


class RowError(ValueError):
    pass


@dataclass
class CsvReport:
    """What the import read and what it had to skip."""

    path: str
    encoding: str = ""
    delimiter: str = ""
    header: bool = False
    newest_first: bool = False
    lines: int = 0  # data rows seen (blank lines excluded)
    skipped: int = 0
    skipped_lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, why), first 100
    trades: dict[str, int] = field(default_factory=dict)  # per ticker
    unknown_aggressors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "encoding": self.encoding, "delimiter": self.delimiter, "header": self.header,
                "newest_first": self.newest_first, "lines": self.lines, "skipped": self.skipped,
                "skipped_lines": [f"{n}: {why}" for n, why in self.skipped_lines[:20]], "trades": dict(self.trades),
                "unknown_aggressors": dict(self.unknown_aggressors)}


def decode_text(data: bytes) -> tuple[str, str]:
    """UTF-8 when it is valid UTF-8 (BOM dropped), else Latin-1 (which Profit writes and which never fails)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _sniff_delimiter(lines: list[str]) -> str:
    sample = [ln for ln in lines[:50] if ln.strip()]
    semis = sum(ln.count(";") for ln in sample)
    tabs = sum(ln.count("\t") for ln in sample)
    if semis >= max(len(sample), 1) * 3:
        return ";"
    if tabs >= max(len(sample), 1) * 3:
        return "\t"
    return ","


class ProfitCsv:
    """Incremental parser: `for _ in parser.parse(): ...` (yields every `chunk` rows, so a coroutine can give the
    loop back between chunks), then `parser.finish()` -> trades in time order."""

    def __init__(self, data: bytes, name: str = "<csv>") -> None:
        self.report = CsvReport(path=name)
        text, self.report.encoding = decode_text(data)
        self._lines = text.splitlines()
        self.delim = _sniff_delimiter(self._lines)
        self.report.delimiter = self.delim
        self._ptbr = self.delim == ";"
        self._rows: list[tuple[int, str, int, float, int, int, int, str]] = []
        self._columns: dict[str, int] | None = None
        self._dates: dict[str, tuple[int, int, int]] = {}
        self._done_lines = 0

    @property
    def progress(self) -> float:
        return self._done_lines / len(self._lines) if self._lines else 1.0

    # -- parsing -------------------------------------------------------------------------------------------------
    def parse(self, chunk: int = 5000) -> Iterator[int]:
        split_simple = self.delim
        for index, line in enumerate(self._lines):
            lineno = index + 1
            self._done_lines = lineno
            if lineno % chunk == 0:
                yield lineno
            if not line.strip():
                continue
            cells = (next(csv.reader([line], delimiter=self.delim)) if '"' in line else line.split(split_simple))
            while cells and not cells[-1].strip() and len(cells) > 7:
                cells.pop()  # a trailing separator
            if self._columns is None:
                if self._is_header(cells):
                    self.report.header = True
                    continue
                if self._columns is None:
                    self._columns = self._positional(cells)
            self.report.lines += 1
            try:
                self._rows.append(self._row(cells))
            except (RowError, ValueError, IndexError) as err:
                self._skip(lineno, str(err) or type(err).__name__, line)
        self._done_lines = len(self._lines)

    def _is_header(self, cells: list[str]) -> bool:
        names = [_HEADER.get(_fold(c)) for c in cells]
        if sum(1 for n in names if n) < 3 or any(_looks_like_date(c) for c in cells):
            return False
        columns = {n: i for i, n in enumerate(names) if n}
        need = {"asset", "price", "qty"}
        if not need <= columns.keys() or not ({"date", "time"} <= columns.keys() or "datetime" in columns):
            log.warning("%s: header %r lacks asset/date/time/price/quantity; reading columns by position",
                        self.report.path, ";".join(cells))
            return True
        self._columns = columns
        return True

    def _positional(self, cells: list[str]) -> dict[str, int]:
        layout = _POSITIONAL_7 if len(cells) == 7 else _POSITIONAL_8
        return {name: i for i, name in enumerate(layout)}

    def _row(self, cells: list[str]) -> tuple[int, str, int, float, int, int, int, str]:
        col = self._columns
        assert col is not None
        if len(cells) <= max(col.values()):
            raise RowError(f"{len(cells)} columns, expected {max(col.values()) + 1}")
        ticker = cells[col["asset"]].strip().upper()
        if not _TICKER.match(ticker):
            raise RowError(f"asset {ticker!r} is not a ticker")
        if "datetime" in col:
            both = cells[col["datetime"]].strip().split()
            if len(both) != 2:
                raise RowError(f"date/time {cells[col['datetime']]!r} is not 'dd/mm/yyyy HH:MM:SS'")
            date_s, time_s = both
        else:
            date_s, time_s = cells[col["date"]].strip(), cells[col["time"]].strip()
        ts = self._ts(date_s, time_s)
        price = self._number(cells[col["price"]])
        if not price > 0:
            raise RowError(f"price {cells[col['price']].strip()!r} is not positive")
        qty_f = self._number(cells[col["qty"]])
        qty = int(qty_f)
        if qty != qty_f or qty <= 0:
            raise RowError(f"quantity {cells[col['qty']].strip()!r} is not a positive whole number")
        buyer = _agent(cells[col["buyer"]]) if "buyer" in col and col["buyer"] < len(cells) else 0
        seller = _agent(cells[col["seller"]]) if "seller" in col and col["seller"] < len(cells) else 0
        aggressor = "unknown"
        if "aggressor" in col and col["aggressor"] < len(cells):
            word = _fold(cells[col["aggressor"]])
            aggressor = _AGGRESSOR.get(word, "")
            if not aggressor:
                aggressor = "unknown"
                raw = cells[col["aggressor"]].strip()
                if raw not in self.report.unknown_aggressors:
                    log.warning("%s: aggressor word %r not recognised; stored as unknown", self.report.path, raw)
                self.report.unknown_aggressors[raw] = self.report.unknown_aggressors.get(raw, 0) + 1
        return ts, ticker, 0, price, qty, buyer, seller, aggressor

    def _ts(self, date_s: str, time_s: str) -> int:
        ymd = self._dates.get(date_s)
        if ymd is None:
            ymd = self._dates[date_s] = _parse_date(date_s)
        t = time_s.replace(",", ".")
        frac = 0
        if "." in t:
            t, f = t.split(".", 1)
            if not f.isdigit():
                raise RowError(f"time {time_s!r} is not HH:MM:SS[.mmm]")
            frac = int((f + "000")[:3])
        parts = t.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise RowError(f"time {time_s!r} is not HH:MM:SS[.mmm]")
        hh, mm, ss = int(parts[0]), int(parts[1]), int(parts[2])
        if hh > 23 or mm > 59 or ss > 59:
            raise RowError(f"time {time_s!r} is out of range")
        return local_to_ns(ymd[0], ymd[1], ymd[2], hh, mm, ss, frac)

    def _number(self, text: str) -> float:
        s = text.strip().replace("\u00a0", "").replace(" ", "")
        if not s:
            raise RowError("empty number")
        if "," in s:
            if self._ptbr or "." not in s:
                s = s.replace(".", "").replace(",", ".")  # 1.234,50 / 3733,50
            else:
                s = s.replace(",", "")  # 1,234.50 quoted in a comma file
        elif self._ptbr and _THOUSANDS.match(s):
            s = s.replace(".", "")  # 128.550 in a pt-BR export is 128550
        try:
            value = float(s)
        except ValueError:
            raise RowError(f"{text.strip()!r} is not a number") from None
        if not math.isfinite(value):  # float() accepts "inf" and "nan": malformed here, never data
            raise RowError(f"{text.strip()!r} is not a finite number")
        return value

    def _skip(self, lineno: int, why: str, line: str) -> None:
        record_skip(self.report, lineno, why, line)

    # -- result --------------------------------------------------------------------------------------------------
    def finish(self) -> list[Trade]:
        """Trades in time order with per-ticker sequence numbers."""
        rows = self._rows
        rep = self.report
        if rep.skipped > MAX_REPORTED:
            log.warning("%s: %d malformed rows skipped in all (first lines: %s)", rep.path, rep.skipped,
                        ", ".join(str(n) for n, _ in rep.skipped_lines[:10]))
        if len(rows) > 1 and rows[0][0] >= rows[-1][0]:
            rep.newest_first = True
            rows.reverse()  # equal timestamps now in their true order
        rows.sort(key=lambda r: r[0])  # stable: only needed when the file is not strictly ordered
        counters: dict[str, int] = {}
        trades = []
        for ts, ticker, _z, price, qty, buyer, seller, aggressor in rows:
            n = counters.get(ticker, 0) + 1
            counters[ticker] = n
            root = ticker[:3]
            mult = FUTURES_ROOTS.get(root)
            trades.append(Trade(ticker=ticker, exchange="F" if mult is not None else "B", ts=ts, trade_id=n,
                                price=price, qty=qty, volume=price * qty * (mult if mult is not None else 1.0),
                                buyer=buyer, seller=seller, aggressor=aggressor,  # type: ignore[arg-type]
                                received_ns=0))
        rep.trades = counters
        self._rows = []
        return trades


def record_skip(rep: Any, lineno: int, why: str, line: str) -> None:
    """Count a malformed row on a report (`skipped`, `skipped_lines`, `path`); warn for the first MAX_REPORTED."""
    rep.skipped += 1
    if len(rep.skipped_lines) < 100:
        rep.skipped_lines.append((lineno, why))
    if rep.skipped <= MAX_REPORTED:
        log.warning("%s line %d skipped: %s: %r", rep.path, lineno, why, line[:120])
    elif rep.skipped == MAX_REPORTED + 1:
        log.warning("%s: more malformed rows; counting them without one warning each", rep.path)


def _looks_like_date(text: str) -> bool:
    t = text.strip()
    return bool(re.match(r"^\d{1,2}/\d{1,2}/\d{4}", t) or re.match(r"^\d{4}-\d{2}-\d{2}", t))


def _parse_date(text: str) -> tuple[int, int, int]:
    m = re.match(r"^(\d{1,2})/(\d{1,2})/(\d{4})$", text)
    if m:
        d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        m = re.match(r"^(\d{4})-(\d{2})-(\d{2})$", text)
        if not m:
            raise RowError(f"date {text!r} is not dd/mm/yyyy")
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    import datetime as _dt

    try:
        _dt.date(y, mo, d)
    except ValueError:
        raise RowError(f"date {text!r} does not exist") from None
    return y, mo, d


def _agent(text: str) -> int:
    m = _AGENT.match(text)
    return int(m.group(1)) if m else 0


def parse_profit_csv(path: str | Path) -> tuple[list[Trade], CsvReport]:
    """The whole file at once (notebooks, tests): (trades in time order, report)."""
    p = Path(path)
    parser = ProfitCsv(p.read_bytes(), str(p))
    for _ in parser.parse():
        pass
    trades = parser.finish()
    return trades, parser.report
