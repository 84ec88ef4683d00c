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
