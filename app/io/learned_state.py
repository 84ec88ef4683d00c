"""Learned state as a Valkey hash: one field per top-level key, msgpack values, plus two metadata fields."""
from __future__ import annotations

import time
from typing import Any

import msgspec

STATE_META = ("_v", "_saved_ns")


def state_fields(state: dict[str, Any]) -> dict[str, bytes]:
    if not isinstance(state, dict):
        raise TypeError("state must be a dict of plain values")
    fields: dict[str, bytes] = {}
    for k, v in state.items():
        if not isinstance(k, str) or k in STATE_META:
            raise TypeError(f"state key {k!r} must be a str and not one of {STATE_META}")
        try:
            fields[k] = msgspec.msgpack.encode(v)
        except TypeError as err:
            raise TypeError(f"state[{k!r}] is not plain data ({err}); use lists, dicts, numbers, strings") from None
    fields["_v"] = b"1"
    fields["_saved_ns"] = str(time.time_ns()).encode()
    return fields


def state_from_fields(raw: dict[Any, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else k
        if name in STATE_META:
            continue
        out[name] = msgspec.msgpack.decode(v)
    return out
