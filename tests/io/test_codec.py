import msgspec
import pytest

from app.events import SCHEMA_VERSION
from app.io import codec
from tests.io.samples import one_of_each, trade


@pytest.mark.parametrize("event", one_of_each(), ids=lambda e: type(e).__name__)
def test_every_event_type_round_trips_with_version_first(event):
    payload = codec.encode(event)
    assert codec.decode(payload) == event
    raw = msgspec.msgpack.decode(payload)
    assert list(raw)[:2] == ["v", "type"] and raw["v"] == SCHEMA_VERSION and raw["type"] == type(event).__name__
    with_seq = codec.encode_with_seq(event, 123456)
    assert codec.decode(with_seq) == event
    assert msgspec.msgpack.decode(with_seq)["seq"] == 123456


def test_a_newer_schema_is_refused_with_a_clear_error():
    raw = msgspec.msgpack.decode(codec.encode(trade(1)))
    raw["v"] = SCHEMA_VERSION + 1
    with pytest.raises(codec.CodecError, match="newer"):
        codec.decode(msgspec.msgpack.encode(raw))


def test_decode_input_refuses_derived_events():
    with pytest.raises(codec.CodecError):
        codec.decode_input(codec.encode(one_of_each()[4]))


def test_encode_batch_and_seq_splice_equal_the_one_event_forms():
    """The hot path encodes a batch once and splices "seq" in at the byte level: same bytes as a fresh encode."""
    events = one_of_each()
    assert codec.encode_batch(events) == [codec.encode(e) for e in events]
    for event in events:
        body = msgspec.msgpack.encode(event)
        for seq in (1, 127, 128, 65_535, 65_536, 2**32, 2**40):
            spliced = codec.with_seq(codec.encode(event), seq)
            assert list(msgspec.msgpack.decode(spliced))[:3] == ["v", "seq", "type"]
            assert spliced == codec.encode_with_seq(event, seq)
            assert codec.decode(spliced) == event and msgspec.msgpack.decode(spliced)["seq"] == seq
        assert codec.encode(event)[4:] == body[1:]  # header, "v", then msgspec's entries untouched


def test_events_with_many_fields_take_the_map16_path():
    class Wide(msgspec.Struct, tag=True, frozen=True):  # 14 fields + "type": "v" makes 16 entries, "seq" 17
        a: int = 0
        b: int = 1
        c: int = 2
        d: int = 3
        e: int = 4
        f: int = 5
        g: int = 6
        h: int = 7
        i: int = 8
        j: int = 9
        k: int = 10
        m: int = 11
        n: int = 12
        o: int = 13

    payload = codec.encode(Wide())
    assert payload[0] == 0xDE and codec.version_of(payload) == SCHEMA_VERSION
    raw = msgspec.msgpack.decode(codec.with_seq(payload, 300))
    assert list(raw)[:3] == ["v", "seq", "type"] and raw["seq"] == 300 and raw["o"] == 13 and len(raw) == 17
    assert codec.encode_batch([Wide()]) == [payload]
