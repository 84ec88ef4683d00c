"""The one msgpack form of an event, shared by the journal, ZeroMQ and Valkey.

A payload is a msgpack map: {"v": SCHEMA_VERSION, "type": "Trade", <the event's fields>}. msgspec writes the
tagged map ("type" first); "v" is spliced in front of it by rewriting the map header, so encoding stays one
msgspec call plus a bytes concatenation (no dict is built). Decoders ignore keys they do not know, so "v" and
the publisher's "seq" cost nothing on the way back. docs/OUTPUTS.md describes the format for other languages.
"""
from __future__ import annotations

import struct
from typing import Any

import msgspec

from app.events import SCHEMA_VERSION, AnyEvent, Event, InputEvent

_encoder = msgspec.msgpack.Encoder()
_any_decoder = msgspec.msgpack.Decoder(AnyEvent)
_input_decoder = msgspec.msgpack.Decoder(InputEvent)
_raw_decoder = msgspec.msgpack.Decoder()

_V_ENTRY = b"\xa1v" + msgspec.msgpack.encode(SCHEMA_VERSION)  # "v": SCHEMA_VERSION
_SEQ_KEY = b"\xa3seq"


class CodecError(ValueError):
    """A payload that is not an hmarl event of a schema version this code reads."""


def _grow_header(body: bytes, extra: int) -> tuple[bytes, int]:
    """The map header of `body` with `extra` more entries, and where the entries start."""
    first = body[0]
    if 0x80 <= first <= 0x8F:
        n, start = first & 0x0F, 1
    elif first == 0xDE:
        (n,), start = struct.unpack_from(">H", body, 1), 3
    else:  # pragma: no cover - msgspec never writes a map32 for our events
        raise CodecError("event did not encode as a msgpack map")
    n += extra
    if n <= 15:
        return bytes((0x80 | n,)), start
    return b"\xde" + struct.pack(">H", n), start


# The hot path: a fixmap header (every event type has fewer than 15 fields) maps straight to the header of the
# payload with "v" spliced in, and that payload's header to the one with "v" and "seq". One table lookup, one slice,
# one concatenation per event.
_WITH_V = {h: _grow_header(bytes((h,)), 1)[0] + _V_ENTRY for h in range(0x80, 0x90)}
_WITH_V_SEQ = {h + 1: _grow_header(bytes((h,)), 2)[0] + _V_ENTRY + _SEQ_KEY for h in range(0x80, 0x8F)}
_V_LEN = len(_V_ENTRY)
_AFTER_V = 1 + _V_LEN  # where the event's entries start in a payload with a fixmap header


def encode(event: Event) -> bytes:
    """One event -> msgpack payload carrying the schema version."""
    body = _encoder.encode(event)
    head = _WITH_V.get(body[0])
    if head is not None:
        return head + body[1:]
    header, start = _grow_header(body, 1)
    return header + _V_ENTRY + body[start:]


def encode_batch(events: list[Event]) -> list[bytes]:
    """`encode` of every event: what the journal, the publisher and the Valkey writer share."""
    heads = _WITH_V
    out = []
    append = out.append
    for body in map(_encoder.encode, events):
        head = heads.get(body[0])
        if head is None:
            header, start = _grow_header(body, 1)
            append(header + _V_ENTRY + body[start:])
        else:
            append(head + body[1:])
    return out


def with_seq(payload: bytes, seq: int) -> bytes:
    """An `encode` payload with "seq" spliced in after "v" (the publisher's per-topic counter), without decoding or
    encoding the event again."""
    head = _WITH_V_SEQ.get(payload[0])
    if head is not None:
        return b"".join((head, _encoder.encode(seq), payload[_AFTER_V:]))
    header, start = _grow_header(payload, 1)
    return header + _V_ENTRY + _SEQ_KEY + _encoder.encode(seq) + payload[start + _V_LEN:]


def encode_with_seq(event: Event, seq: int) -> bytes:
    """The payload plus "seq" (the publisher's per-topic counter, so a subscriber can see what it missed)."""
    return with_seq(encode(event), seq)


def version_of(payload: bytes | memoryview) -> int:
    """The schema version of a payload written by `encode` ("v" is always the first key)."""
    start = 3 if payload[0] == 0xDE else 1
    if bytes(payload[start:start + 2]) != b"\xa1v":
        raise CodecError("payload has no schema version ('v' must be the first key)")
    v = payload[start + 2]
    if v > 0x7F:
        raise CodecError(f"unreadable schema version byte 0x{v:02x}")
    return v


def _check(payload: bytes | memoryview) -> None:
    v = version_of(payload)
    if v > SCHEMA_VERSION:
        raise CodecError(f"payload schema v{v} is newer than this code (v{SCHEMA_VERSION}); upgrade hmarl")


def decode(payload: bytes | memoryview) -> AnyEvent:
    """Payload -> the typed event it came from."""
    _check(payload)
    try:
        return _any_decoder.decode(payload)
    except msgspec.DecodeError as err:
        raise CodecError(f"not an hmarl event: {err}") from None


def decode_input(payload: bytes | memoryview) -> InputEvent:
    """Payload -> an input event (Trade, Book, State, InvalidTicker); anything else is a CodecError."""
    _check(payload)
    try:
        return _input_decoder.decode(payload)
    except msgspec.DecodeError as err:
        raise CodecError(f"not an input event: {err}") from None


def decode_raw(payload: bytes | memoryview) -> dict[str, Any]:
    """Payload -> a plain dict (for tools that print whatever arrives, including newer event types)."""
    return _raw_decoder.decode(payload)


def to_builtins(event: Event) -> dict[str, Any]:
    """An event as a plain dict with its "type", as query() and the CLI return them."""
    return msgspec.to_builtins(event)
