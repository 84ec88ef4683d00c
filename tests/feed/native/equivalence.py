"""One stand-in stream through both callback paths at once, in a process of its own (one DLL init per process).

The stand-in calls the native C callbacks; each of them, once its record is pushed, calls the ctypes callback of
app/feed/profitdll/callbacks.py with the very same arguments inside the same DLL callback (ring_set_tee). So both
paths see one stream - same trades, same book states, same hostile quirks, same moment - and their events must be
identical but for received_ns (which the native side stamps first).

Run as `python -m tests.feed.native.equivalence JSON-ARGS`; prints one JSON line.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import date
from types import SimpleNamespace
from typing import Any

import msgspec

from app import config as config_mod
from app.feed.native import ring
from app.feed.native.ring_records import RecordDecoder
from app.feed.profitdll import abi, credentials, library
from app.feed.profitdll.callbacks import Callbacks
from app.feed.simulator import SimControl, library_path
from app.feed.tickers import resolve


def run(trades: int = 20_000, depth_levels: int = 5, flush_add: str = "ends_bracket", garbage: int = 1,
        capacity: int = 4096, stall_s: float = 0.0) -> dict[str, Any]:
    """stall_s: the consumer stops draining that long once the market flows (the ring then overflows)."""
    native = ring.get()
    assert native is not None, "native ring not built"
    cfg = config_mod.load(None, {"simulator.pace": False, "simulator.bursts": False, "simulator.max_trades": trades,
                                 "simulator.start": "2026-03-02 10:00:00", "simulator.seed": 11})
    dll = library.load(library_path())
    control = SimControl(dll.handle)
    control.configure(cfg.simulator)
    for name, value in (("garbage", garbage), ("theoric_every", 97), ("drop_after", trades // 3), ("drop_ms", 5),
                        ("perf_warn_after", trades // 2)):
        control.set(name, value)

    ctypes_events: list[Any] = []
    session = SimpleNamespace(lib=dll, owner=SimpleNamespace(ident=0), bridge=SimpleNamespace(put=ctypes_events.append),
                              invalid_tickers=set(), on_state=lambda conn_type, result: None)
    classic = Callbacks(session, depth_levels, keep_thread_state=True,  # type: ignore[arg-type]
                        flush_add_ends_bracket=flush_add == "ends_bracket")
    native.start(depth_levels, flush_add == "ends_bracket", ring.accessors_of(dll), capacity=capacity)
    for attr in ring.CALLBACKS.values():
        native.set_tee(attr[0], getattr(classic, attr[0]))

    creds = credentials.SIMULATOR
    # V1 trades in the init slot and V2 through the setter: the stand-in delivers every trade through both
    rc = dll.DLLInitializeMarketLogin(creds.key, creds.user, creds.password, native.state, native.trade_v1, None,
                                      None, None, None, None, native.tiny_book)
    assert rc == 0, rc
    for setter, cb in (("SetTradeCallbackV2", native.trade_v2), ("SetPriceDepthCallback", native.price_depth),
                       ("SetInvalidTickerCallback", native.invalid_ticker)):
        assert getattr(dll, setter)(cb) == 0, setter

    native_events: list[Any] = []
    drained: list[bytes] = []  # every batch as drained: decoded again below in Python alone

    def drain() -> list[Any]:
        view, _, nbytes = native.drain_records()
        drained.append(bytes(view[:nbytes]))
        return native.decoder.decode(view, nbytes) if nbytes else []

    names: set[str] = set()
    deadline = time.monotonic() + 60
    while not {"MARKET_CONNECTED", "ACTIVATE_VALID"} <= names and time.monotonic() < deadline:
        native.wait(0.05)
        batch = drain()
        native_events += batch
        names.update(getattr(e, "name", "") for e in batch)
    subscribed = resolve(["WDO", "WIN"], date(2026, 3, 2)) + ["ZZZ9"]
    for ticker in subscribed:
        assert dll.SubscribePriceDepth(abi.TConnectorAssetIdentifier(0, ticker, "F", 0)) == 0
        assert dll.SubscribeTicker(ticker, "F") == 0
    time.sleep(stall_s)
    while time.monotonic() < deadline and control.stat("trades_generated") < trades:
        native.wait(0.05)
        native_events += drain()
    dll.DLLFinalize()  # joins the connector thread: every callback has returned
    while drained[-1]:
        native_events += drain()
    python = RecordDecoder(native=False)
    python_events = [e for batch in drained for e in python.decode(memoryview(batch), len(batch))]

    plain = [msgspec.structs.replace(e, received_ns=0) for e in native_events]
    expected = [msgspec.structs.replace(e, received_ns=0) for e in ctypes_events]
    first_diff = next((i for i, (a, b) in enumerate(zip(plain, expected)) if a != b), None)
    later = sum(a.received_ns <= b.received_ns for a, b in zip(native_events, ctypes_events))
    kinds: dict[str, int] = {}
    for e in native_events:
        key = type(e).__name__ + (f".{e.source}" if hasattr(e, "source") else "")
        kinds[key] = kinds.get(key, 0) + 1
    return {
        "native": len(native_events), "ctypes": len(ctypes_events), "identical": plain == expected,
        "decoders_identical": python_events == native_events, "python_errors": python.errors,
        "records_decoded_in_c": native.decoder.native_records, "records": native.decoder.records,
        "first_diff": None if first_diff is None else [repr(plain[first_diff]), repr(expected[first_diff])],
        "native_stamped_first": later, "kinds": kinds,
        "states": sorted({e.name for e in native_events if hasattr(e, "name")}),
        "ring": {k: v for k, v in native.stats().items() if k != "dwell"}, "dwell": native.stats()["dwell"],
        "classic": classic.stats(), "sim": control.stats(),
    }


if __name__ == "__main__":
    print(json.dumps(run(**(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))))
