"""The native ring's records (app/feed/native/ring.h) seen from Python, and their conversion into events.

Every record type is mirrored as a ctypes Structure; `check_layout` compares each size and offset with the ones
the C compiler chose (the library's `ring_layout`), so a stale or foreign build is refused rather than misread.
The struct formats that decode a drained batch are generated from those same Structures.

`RecordDecoder` turns a drained batch into the very events the ctypes callbacks (app/feed/profitdll/callbacks.py)
build, field for field and with the same helpers: aggressor table, book sides, B3 time conversion, state names,
the last trade time per ticker that stamps book updates, errors counted instead of raised. Which depth sides to
read, the Prepare/Flush bracket and the post-flush Add were already decided inside the C callback (they have to
be: the levels can only be read there). Where the C decoder was built (ring_decode.c), it converts the market
records and stops at any record that needs this module, which converts that one and hands back.
"""
from __future__ import annotations

import ctypes
import struct
from ctypes import Structure, c_double, c_int32, c_int64, c_uint8, c_uint16, c_uint32, c_uint64
from typing import Any, Callable

from app.events import Book, InvalidTicker, State, Trade
from app.feed.b3time import hour_base_ns, parse_dll_datetime
from app.feed.profitdll.callbacks import _AGGRESSOR, _SIDE, state_name

try:  # the C copy of decode's common path (ring_decode.c); without it every record is converted here
    from app.feed.native._decode import bind as _native_bind
    from app.feed.native._decode import pump as _native_pump
    from app.feed.native._decode import run as _native_run
except ImportError:  # no C compiler at install time
    _native_run = _native_pump = _native_bind = None

_bound_to: str | None = None  # the ring library ring_decode.c's pump() calls into


def bind_ring(path: str, pump_wait_address: int, drain_address: int) -> None:
    """Give ring_decode.c the ring library's ring_pump_wait and ring_drain (a process loads one ring library)."""
    global _bound_to
    if _native_bind is not None:
        _native_bind(pump_wait_address, drain_address)
        _bound_to = path


RK_STATE, RK_TRADE_V1, RK_TRADE_V2, RK_TINY, RK_DEPTH, RK_INVALID = 1, 2, 3, 4, 5, 6
KIND_NAMES = {0: "test", RK_STATE: "state", RK_TRADE_V1: "trade_v1", RK_TRADE_V2: "trade_v2", RK_TINY: "tiny_book",
              RK_DEPTH: "price_depth", RK_INVALID: "invalid_ticker"}
RF_LOSSY, RF_TICKER_NULL, RF_EXCH_NULL, RF_DATE_NULL = 1, 2, 4, 8
SLOT = 64


class RecHead(Structure):
    _fields_ = [("kind", c_uint8), ("nslots", c_uint8), ("ticker_len", c_uint8), ("exch_len", c_uint8),
                ("date_len", c_uint8), ("flags", c_uint8), ("nlevels", c_uint16), ("feed", c_int32),
                ("version", c_uint16), ("name_id", c_uint16), ("received_ns", c_int64)]


class BodyState(Structure):
    _fields_ = [("conn_type", c_int32), ("result", c_int32)]


class BodyTradeV1(Structure):
    _fields_ = [("number", c_uint32), ("qty", c_int32), ("price", c_double), ("volume", c_double),
                ("buyer", c_int32), ("seller", c_int32), ("trade_type", c_int32), ("edit", c_int32)]


class BodyTradeV2(Structure):
    _fields_ = [("number", c_uint32), ("flags", c_uint32), ("price", c_double), ("qty", c_int64),
                ("volume", c_double), ("buyer", c_int32), ("seller", c_int32), ("date", c_uint16 * 8),
                ("hour_key", c_uint64), ("ms_of_hour", c_int64), ("trade_type", c_uint8), ("pad", c_uint8 * 7)]


class BodyTiny(Structure):
    _fields_ = [("price", c_double), ("qty", c_int32), ("side", c_int32)]


class BodyDepth(Structure):
    _fields_ = [("side", c_uint8), ("notified_side", c_uint8), ("update", c_uint8), ("pad", c_uint8),
                ("position", c_int32)]


class RecLevel(Structure):
    _fields_ = [("price", c_double), ("qty", c_int64), ("count", c_uint32), ("flags", c_uint32)]


MIRRORED = (RecHead, BodyState, BodyTradeV1, BodyTradeV2, BodyTiny, BodyDepth, RecLevel)
BODY = {RK_STATE: BodyState, RK_TRADE_V1: BodyTradeV1, RK_TRADE_V2: BodyTradeV2, RK_TINY: BodyTiny,
        RK_DEPTH: BodyDepth, RK_INVALID: None}

_CODES = {c_uint8: "B", c_uint16: "H", c_int32: "i", c_uint32: "I", c_int64: "q", c_uint64: "Q", c_double: "d"}


def _format(*structs: type[Structure]) -> str:
    """A struct format for the given Structures laid end to end, padding included, arrays spelled out."""
    fmt, at = "<", 0
    for cls in structs:
        base = at
        for name, ctype in cls._fields_:
            offset = getattr(cls, name).offset + base
            fmt += "x" * (offset - at)
            if name == "pad":
                fmt += f"{ctypes.sizeof(ctype)}x"
            elif issubclass(ctype, ctypes.Array):
                fmt += f"{ctype._length_}{_CODES[ctype._type_]}"
            else:
                fmt += _CODES[ctype]
            at = offset + ctypes.sizeof(ctype)
        fmt += "x" * (base + ctypes.sizeof(cls) - at)
        at = base + ctypes.sizeof(cls)
    return fmt


HEAD = struct.Struct(_format(RecHead))
FORMATS = {kind: struct.Struct(_format(RecHead, body) if body else _format(RecHead)) for kind, body in BODY.items()}
LEVEL = struct.Struct(_format(RecLevel))
# n levels in one unpack: (price, qty, count) of each level, then its flags
LEVELS = [struct.Struct("<" + LEVEL.format[1:] * n) for n in range(51)]
_HOURS_MAX = 200_000  # as app.feed.b3time's own cache: cleared, never grown without bound


def check_layout(layout: Callable[[bytes], int]) -> list[str]:
    """Every size and offset where this mirror and the C build disagree ([] = none)."""
    wrong = []
    for cls in MIRRORED:
        expected = {cls.__name__: ctypes.sizeof(cls)}
        expected.update({f"{cls.__name__}.{name}": getattr(cls, name).offset
                         for name, _ in cls._fields_ if name != "pad"})
        for key, value in expected.items():
            got = layout(key.encode())
            if got != value:
                wrong.append(f"{key}: C {got}, Python {value}")
    if layout(b"RING_SLOT") != SLOT:
        wrong.append(f"RING_SLOT: C {layout(b'RING_SLOT')}, Python {SLOT}")
    return wrong


def _v1_hour(date: str) -> tuple[int, int, int, int, int] | None:
    """(hour_key, year, month, day, hour) of a V1 date in ASCII digits, packed as the V2 record's hour_key; None for
    anything else (ring_decode.c leaves such a date to this module)."""
    try:
        if len(date) < 19 or not (date[0:2] + date[3:5] + date[6:10] + date[11:13]).isascii():
            return None
        y, mo, d, h = int(date[6:10]), int(date[3:5]), int(date[0:2]), int(date[11:13])
    except ValueError:
        return None
    return y << 48 | mo << 32 | d << 16 | h, y, mo, d, h


def _text(raw: bytes) -> str:
    # lone surrogates pass, as a ctypes c_wchar_p read of the same wchar_t string would give them
    return raw.decode("utf-16-le", "surrogatepass")


class RecordDecoder:
    """Converts drained records into events; keeps what the ctypes callbacks keep across calls (last_ts)."""

    def __init__(self, on_state: Callable[[int, int], None] | None = None,
                 on_invalid: Callable[[str], None] | None = None, native: bool = True) -> None:
        self.on_state = on_state  # the session's bookkeeping the state callback does in the ctypes path
        self.on_invalid = on_invalid
        self.last_ts: dict[str, int] = {}
        self.errors = 0
        self.last_error = ""
        self.records = 0
        self.native_records = 0  # of which ring_decode.c converted
        self._names: list[tuple[Any, Any] | None] = [None] * 1025  # RecHead.name_id -> (ticker, exchange)
        self._hours: dict[int, int] = {}  # BodyTradeV2.hour_key -> b3time.hour_base_ns of that hour
        self.native = native and _native_run is not None  # ring_decode.c takes the records it can

    def _strings(self, buf: memoryview, at: int, tl: int, el: int, flags: int, name_id: int) -> tuple[Any, Any]:
        # a NULL pointer reads as None through ctypes; lone surrogates pass as they would there
        end = at + 2 * tl
        ticker = None if flags & RF_TICKER_NULL else _text(bytes(buf[at:end]))
        pair = (ticker, None if flags & RF_EXCH_NULL else _text(bytes(buf[end:end + 2 * el])))
        if name_id:
            self._names[name_id] = pair
        return pair

    def _hour(self, hour_key: int, year: int, month: int, day: int, hour: int) -> int:
        base = hour_base_ns(year, month, day, hour)  # raises on an impossible date, as local_to_ns does
        if len(self._hours) > _HOURS_MAX:
            self._hours.clear()
        self._hours[hour_key] = base
        return base

    def decode(self, buf: memoryview, nbytes: int) -> list[Any]:
        """The events of the records in buf[:nbytes], in order; a record that fails to convert is counted."""
        out: list[Any] = []
        if self.native:  # the common batch: C takes every record, and none of the set-up below is needed
            off, n = _native_run(buf, 0, nbytes, out, self._names, self._hours, self.last_ts, Trade, Book, _AGGRESSOR,
                                 _SIDE)
            self.native_records += n
            self.records += n
            if off >= nbytes:
                return out
            return self._decode_from(buf, nbytes, out, off)
        return self._decode_from(buf, nbytes, out, 0)

    def pump(self, buf: memoryview, max_records: int, wait: bool, nap_ns: int, naps: int, idle_ns: int,
             window_ns: int) -> tuple[int, int, int, list[Any]]:
        """The owner thread's turn in one C call (ring_decode.c pump; NativeRing.pump_batch says what it does):
        (flags, records, bytes, events). Only where `fused()`."""
        out: list[Any] = []
        flags, n, nbytes, off, converted = _native_pump(buf, max_records, wait, out, self._names, self._hours,
                                                        self.last_ts, Trade, Book, _AGGRESSOR, _SIDE, nap_ns, naps,
                                                        idle_ns, window_ns)
        self.native_records += converted
        self.records += converted
        if off < nbytes:
            self._decode_from(buf, nbytes, out, off)
        return flags, n, nbytes, out

    def fused(self) -> bool:
        """Whether pump() can run: the C decoder built and bound to the ring library (`bind_ring`)."""
        return self.native and _bound_to is not None

    def _decode_from(self, buf: memoryview, nbytes: int, out: list[Any], off: int) -> list[Any]:
        """decode() from byte `off`, where a record needs Python (or C is not built)."""
        emit = out.append
        last_ts, aggressor, sides, names, hours = self.last_ts, _AGGRESSOR, _SIDE, self._names, self._hours
        strings, hour_of = self._strings, self._hour
        f_state, f_v1, f_v2 = FORMATS[RK_STATE], FORMATS[RK_TRADE_V1], FORMATS[RK_TRADE_V2]
        f_tiny, f_depth, f_head = FORMATS[RK_TINY], FORMATS[RK_DEPTH], FORMATS[RK_INVALID]
        s_v1, s_v2, s_tiny, s_depth = f_v1.size, f_v2.size, f_tiny.size, f_depth.size
        levels_of = LEVELS
        fast = _native_run if self.native else None
        records = 0
        while off < nbytes:
            kind, nslots = buf[off], buf[off + 1]
            records += 1
            try:
                if kind == RK_TRADE_V2:
                    (_, _, tl, el, _, flags, _, _, _, name_id, received, number, cb_flags, price, qty, volume, buyer,
                     seller, year, month, _, day, hour, _, _, _, hour_key, ms_of_hour,
                     trade_type) = f_v2.unpack_from(buf, off)
                    ticker, exchange = names[name_id] or strings(buf, off + s_v2, tl, el, flags, name_id)
                    base = hours.get(hour_key)
                    if base is None:
                        base = hour_of(hour_key, year, month, day, hour)
                    ts = base + ms_of_hour * 1_000_000  # = local_to_ns(...) of the SYSTEMTIME, term for term
                    last_ts[ticker] = ts
                    emit(Trade(ticker, exchange, ts, number, price, qty, volume, buyer, seller, aggressor[trade_type],
                               received, bool(cb_flags & 1)))
                elif kind == RK_DEPTH:
                    (_, _, tl, el, _, flags, nlevels, _, _, name_id, received, side, _, _,
                     _) = f_depth.unpack_from(buf, off)
                    ticker = (names[name_id] or strings(buf, off + s_depth, tl, el, flags, name_id))[0]
                    flat = levels_of[nlevels].unpack_from(buf, (off + s_depth + 2 * (tl + el) + 7) & ~7)
                    levels = tuple(zip(flat[0::4], flat[1::4], flat[2::4]))
                    emit(Book(ticker, last_ts.get(ticker, 0), sides[side], levels, received, "depth"))
                elif kind == RK_TINY:
                    (_, _, tl, el, _, flags, _, _, _, name_id, received, price, qty,
                     side) = f_tiny.unpack_from(buf, off)
                    ticker = (names[name_id] or strings(buf, off + s_tiny, tl, el, flags, name_id))[0]
                    # the callback has no time: the book is stamped with the ticker's last trade time
                    emit(Book(ticker, last_ts.get(ticker, 0), sides[side & 1], ((price, qty, 0),), received, "tiny"))
                elif kind == RK_TRADE_V1:
                    (_, _, tl, el, dl, flags, _, _, _, name_id, received, number, qty, price, volume, buyer, seller,
                     trade_type, edit) = f_v1.unpack_from(buf, off)
                    ticker, exchange = names[name_id] or strings(buf, off + s_v1, tl, el, flags, name_id)
                    at = off + s_v1 + 2 * (tl + el)
                    date = None if flags & RF_DATE_NULL else _text(bytes(buf[at:at + 2 * dl]))
                    ts = parse_dll_datetime(date)  # type: ignore[arg-type]  # None fails as it does via ctypes
                    hour = _v1_hour(date)  # type: ignore[arg-type]
                    if hour is not None and hour[0] not in hours:  # what lets ring_decode.c take the next ones
                        hour_of(*hour)
                    last_ts[ticker] = ts
                    emit(Trade(ticker, exchange, ts, number, price, qty, volume, buyer, seller,
                               aggressor[trade_type & 0xFF], received, (edit & 0xFFFF) != 0))
                elif kind == RK_STATE:
                    (_, _, _, _, _, _, _, _, _, _, received, conn_type, result) = f_state.unpack_from(buf, off)
                    if self.on_state is not None:
                        self.on_state(conn_type, result)
                    emit(State(conn_type, result, state_name(conn_type, result), received))
                elif kind == RK_INVALID:
                    (_, _, tl, el, _, flags, _, _, _, name_id, received) = f_head.unpack_from(buf, off)
                    ticker, exchange = strings(buf, off + f_head.size, tl, el, flags, name_id)
                    if self.on_invalid is not None:
                        self.on_invalid(ticker)
                    emit(InvalidTicker(ticker, exchange, received))
                else:
                    raise ValueError(f"record kind {kind} at byte {off} is not one this build knows")
            except Exception as exc:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            if nslots == 0:  # a zero-length record would loop forever; the C side never writes one
                self.errors += 1
                self.last_error = f"record of 0 slots at byte {off}"
                break
            off += nslots * SLOT
            if fast is not None and off < nbytes:  # as many records as C can take; the next it stops at comes here
                off, n = fast(buf, off, nbytes, out, names, hours, last_ts, Trade, Book, aggressor, sides)
                records += n
                self.native_records += n
        self.records += records
        return out
