"""ring_decode.c converts records exactly as the Python decoder does, and leaves it whatever it cannot take.

The stand-in stream through both decoders is in test_equivalence.py; here are the records a real DLL might send that
the stream does not: V1 dates Python's int() reads but ASCII digits do not spell, impossible dates, names the cache
has never seen.
"""
import ctypes

import pytest

from app.feed.native import ring_records
from app.feed.native.ring_records import SLOT, BodyTradeV1, RecHead, RecordDecoder

pytestmark = pytest.mark.skipif(ring_records._native_run is None, reason="the decoder not built (no C compiler)")

DATE_AT = ctypes.sizeof(RecHead) + ctypes.sizeof(BodyTradeV1)


@pytest.fixture(scope="module")
def v1_record() -> bytes:
    """One V1 trade record laid out as ring_callbacks.c writes it (the layout check holds these Structures to the C
    build's offsets), built here: the process's ring may belong to a DLL session of another test by now."""
    ticker, exchange, date = "WDOZ26", "F", "02/01/2026 10:00:00.000"
    head = RecHead(kind=ring_records.RK_TRADE_V1, ticker_len=len(ticker), exch_len=len(exchange),
                   date_len=len(date), name_id=1, received_ns=123)
    body = BodyTradeV1(number=7, qty=2, price=5000.5, volume=50005.0, buyer=3, seller=72, trade_type=2, edit=0)
    raw = bytes(head) + bytes(body) + (ticker + exchange + date).encode("utf-16-le")
    raw += bytes(-len(raw) % SLOT)
    rec = bytearray(raw)
    rec[RecHead.nslots.offset] = len(raw) // SLOT
    return bytes(rec)


def with_date(record: bytes, date: str, date_len: int | None = None) -> bytes:
    rec = bytearray(record)
    at = DATE_AT + 2 * (rec[2] + rec[3])
    units = date.encode("utf-16-le")
    assert len(units) <= 2 * rec[4], "the test keeps the record's length"
    rec[at:at + len(units)] = units
    rec[4] = len(date) if date_len is None else date_len
    return bytes(rec)


def both(buf: bytes) -> tuple[RecordDecoder, list, RecordDecoder, list]:
    c, py = RecordDecoder(), RecordDecoder(native=False)
    return c, c.decode(memoryview(buf), len(buf)), py, py.decode(memoryview(buf), len(buf))


@pytest.mark.parametrize("date,date_len", [
    ("02/01/2026 10:00:00.000", None),  # the plain one: C takes every record after the first
    (" 2/01/2026 10:00:00.000", None),  # int(" 2") == 2: Python reads it, C leaves it to Python
    ("02/01/2026 1\u0660:00:00.000", None),  # an Arabic-Indic zero: int() reads that too
    ("02/01/2026 10:00:00.000", 19),  # no milliseconds
    ("02/01/2026 10:00:00.000", 21),  # a cut millisecond field: not read, as in Python
    ("02/13/2026 10:00:00.000", None),  # month 13: an error counted, never cached for C
    ("02-01-2026 10:00:00.000", None),  # not the format
    ("02/01/2026", None),  # too short
])
def test_v1_dates_decode_identically(v1_record, date, date_len):
    odd = with_date(v1_record, date, date_len)
    buf = v1_record + odd + v1_record + odd + v1_record
    c, c_events, py, py_events = both(buf)
    assert c_events == py_events
    assert (c.errors, c.last_error, c.records) == (py.errors, py.last_error, py.records) == (c.errors, c.last_error, 5)
    assert c.last_ts == py.last_ts
    # the first record fills the caches; the later plain ones are C's (the odd ones only when plain ASCII digits)
    assert c.native_records >= 2 and len(c_events) >= 3


def test_a_name_the_cache_never_saw_and_a_bad_record_length_go_to_python(v1_record):
    unknown = bytearray(v1_record)
    at = RecHead.name_id.offset
    unknown[at:at + 2] = (2000).to_bytes(2, "little")  # past the name table: an IndexError in Python
    zero = bytearray(v1_record)
    zero[1] = 0  # nslots 0: converted, counted as an error, and the rest of the batch is not read
    buf = v1_record + v1_record + bytes(unknown) + v1_record + bytes(zero) + v1_record
    c, c_events, py, py_events = both(buf)
    assert c_events == py_events and len(c_events) == 4  # the 0-slot record is converted, then the batch ends
    assert (c_events[0].ticker, c_events[0].price, c_events[0].qty, c_events[0].aggressor) == ("WDOZ26", 5000.5, 2,
                                                                                               py_events[0].aggressor)
    assert (c.errors, c.last_error) == (py.errors, py.last_error) and c.errors == 2
    assert c.native_records == 2
