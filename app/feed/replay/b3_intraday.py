"""B3's public per-trade file, TradeIntraday_YYYYMMDD_1.txt ("Negócios Intraday", arquivos.b3.com.br rapinegocios).

Layout, confirmed from public samples and readers (GabrielAlonsoCabral/b3-data-provider src/helpers/parseLine.ts;
ThiagoRGoveia/b3-quotations internal/parser/csv.go and its test rows; the brasa catalog entry
"b3-trades-intraday": `;` separator, one header line):

    DataReferencia;CodigoInstrumento;AcaoAtualizacao;PrecoNegocio;QuantidadeNegociada;HoraFechamento;
    CodigoIdentificadorNegocio;TipoSessaoPregao;DataNegocio;CodigoParticipanteComprador;CodigoParticipanteVendedor
    2025-09-08;ETRU25;0;4310,000;1;090000006;10;1;2025-09-08;120;4090

Dates are yyyy-mm-dd, the price has a decimal comma, HoraFechamento is HHMMSSmmm B3 local time (a leading zero
may be missing), CodigoIdentificadorNegocio numbers the instrument's trades in execution order, the participant
codes are the buyer's and seller's brokers. AcaoAtualizacao 0 is a new trade; any other value (B3 uses 2,
"delete") cancels the trade with that instrument and id, which is then dropped and counted as cancelled.

The file has no aggressor: it is inferred with the tick rule (rows.tick_rule) and every such Trade carries
aggressor_inferred=True. The file holds every instrument of the day; all are kept (the user chose the file), each
with its own tick-rule state. Columns are found by header name, so a reordered file still reads; without a header
the layout above is assumed.
"""
from __future__ import annotations

from typing import Any

from app.events import InputEvent
from app.feed.b3time import local_to_ns
from app.feed.replay.profit_csv import RowError, decode_text
from app.feed.replay.rows import TapeReport, build_events, order_rows, parse_price, parse_qty

COLUMNS = ("DataReferencia", "CodigoInstrumento", "AcaoAtualizacao", "PrecoNegocio", "QuantidadeNegociada",
           "HoraFechamento", "CodigoIdentificadorNegocio", "TipoSessaoPregao", "DataNegocio",
           "CodigoParticipanteComprador", "CodigoParticipanteVendedor")
HEADER = ";".join(COLUMNS)
_NEEDED = ("CodigoInstrumento", "PrecoNegocio", "QuantidadeNegociada", "HoraFechamento")


def looks_like(first_line: str) -> bool:
    """The header names enough of the layout, or a headerless row has its shape (11 cells, ISO date first)."""
    cells = [c.strip().lower() for c in first_line.split(";")]
    names = {c.lower() for c in COLUMNS}
    if sum(1 for c in cells if c in names) >= len(_NEEDED) and all(n.lower() in cells for n in _NEEDED):
        return True
    return (len(cells) == len(COLUMNS) and len(cells[0]) == 10 and cells[0][4] == "-" and cells[0][7] == "-"
            and cells[5].isdigit())


def read_b3_intraday(data: bytes, name: str) -> tuple[list[InputEvent], TapeReport]:
    report = TapeReport(path=name, format="b3_intraday", delimiter=";")
    text, report.encoding = decode_text(data)
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        return [], report
    head = [c.strip().lower() for c in lines[first].split(";")]
    if "precoNegocio".lower() in head:
        report.header = lines[first].strip()
        col = {n: head.index(n.lower()) for n in COLUMNS if n.lower() in head}
        start = first + 1
    else:
        col = {n: i for i, n in enumerate(COLUMNS)}
        start = first
    c_tk, c_act, c_px, c_qty, c_hr = (col["CodigoInstrumento"], col.get("AcaoAtualizacao"), col["PrecoNegocio"],
                                      col["QuantidadeNegociada"], col["HoraFechamento"])
    c_id, c_buy, c_sell = (col.get("CodigoIdentificadorNegocio"), col.get("CodigoParticipanteComprador"),
                           col.get("CodigoParticipanteVendedor"))
    c_date = col.get("DataNegocio", col.get("DataReferencia"))
    if c_date is None:
        c_date = -1
    width = max(col.values()) + 1
    dates: dict[str, tuple[int, int, int]] = {}
    rows: list[tuple[Any, ...]] = []
    cancels: set[tuple[str, int]] = set()
    for lineno, line in enumerate(lines[start:], start + 1):
        if not line.strip():
            continue
        report.lines += 1
        cells = line.split(";")
        try:
            if len(cells) < width:
                raise RowError(f"{len(cells)} columns, expected {width}")
            ticker = cells[c_tk].strip().upper()
            if not ticker:
                raise RowError("empty instrument code")
            tid = _int(cells[c_id], "trade id") if c_id is not None else 0
            if c_act is not None and cells[c_act].strip() not in ("0", ""):
                cancels.add((ticker, tid))
                continue
            date_s = cells[c_date].strip() if c_date >= 0 else ""
            if not date_s and "DataReferencia" in col:
                date_s = cells[col["DataReferencia"]].strip()
            ymd = dates.get(date_s)
            if ymd is None:
                ymd = dates[date_s] = _date(date_s)
            ts = _time(ymd, cells[c_hr].strip())
            price = parse_price(cells[c_px], True)
            qty = parse_qty(cells[c_qty], True)
            buyer = _int(cells[c_buy], "buyer", True) if c_buy is not None else 0
            seller = _int(cells[c_sell], "seller", True) if c_sell is not None else 0
        except (RowError, ValueError, IndexError) as err:
            report.skip(lineno, str(err) or type(err).__name__, line)
            continue
        rows.append((ts, ticker, tid, price, qty, buyer, seller, ""))
    if cancels:
        before = len(rows)
        rows = [r for r in rows if (r[1], r[2]) not in cancels]
        report.cancelled = before - len(rows)
    order_rows(rows, report, by_id=True)
    return build_events(rows, report), report


def _int(text: str, what: str, empty_ok: bool = False) -> int:
    s = text.strip()
    if not s and empty_ok:
        return 0
    if not s.isdigit():
        raise RowError(f"{what} {s!r} is not a whole number")
    return int(s)


def _date(text: str) -> tuple[int, int, int]:
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise RowError(f"date {text!r} is not yyyy-mm-dd")
    import datetime as _dt

    try:
        d = _dt.date(int(text[:4]), int(text[5:7]), int(text[8:]))
    except ValueError:
        raise RowError(f"date {text!r} does not exist") from None
    return d.year, d.month, d.day


def _time(ymd: tuple[int, int, int], text: str) -> int:
    """HHMMSSmmm (B3 writes 090000006; a leading zero may be dropped) -> ns UTC through the tz database."""
    if not text.isdigit() or not 8 <= len(text) <= 9:
        raise RowError(f"HoraFechamento {text!r} is not HHMMSSmmm")
    t = text.zfill(9)
    hh, mm, ss, ms = int(t[0:2]), int(t[2:4]), int(t[4:6]), int(t[6:9])
    if hh > 23 or mm > 59 or ss > 59:
        raise RowError(f"HoraFechamento {text!r} is out of range")
    return local_to_ns(ymd[0], ymd[1], ymd[2], hh, mm, ss, ms)
