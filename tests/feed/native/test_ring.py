"""The native ring on its own, through ctypes: native producer threads (no GIL), overflow, order, wait/notify,
dwell histograms, strings, the layout check, and callbacks after the ring was freed."""
import ctypes
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from types import SimpleNamespace
from pathlib import Path

import pytest

from app.events import Book, InvalidTicker, State, Trade
from app.feed.native import ring
from app.feed.native.ring_records import check_layout
from app.feed.profitdll import native_intake
from app.feed.profitdll import abi

NATIVE = ring.get()
pytestmark = pytest.mark.skipif(NATIVE is None, reason="native ring not built (no C compiler)")


@pytest.fixture
def native():
    assert NATIVE is not None
    if native_intake._claimed[0] is not None:  # conftest runs these tests first so that this does not happen
        pytest.skip("a DLL session of this process owns the native ring (its owner thread drains it)")
    NATIVE.free()  # one ring per process: whatever an earlier test left is dropped
    yield NATIVE
    NATIVE.free()


def fake_depth_accessors(r) -> tuple[int, int, int]:
    addr = lambda fn: ctypes.cast(fn, ctypes.c_void_p).value  # noqa: E731
    return 0, addr(r.lib.ring_test_side_count), addr(r.lib.ring_test_price_group)


def drain_until(r, expected: int, slow_every: int = 0, deadline_s: float = 15.0) -> list:
    out: list = []
    end = time.monotonic() + deadline_s
    rounds = 0
    while len(out) < expected and time.monotonic() < end:
        r.wait(0.05)
        out += r.drain_events(max_records=500)
        rounds += 1
        if slow_every and rounds % slow_every == 0:
            time.sleep(0.002)  # a consumer that falls behind: the 256-slot ring overflows
    return out


def test_native_producers_deliver_every_record_once_in_per_producer_order_through_overflow(native):
    threads, per_thread, levels = 4, 30_000, 3
    native.start(depth_levels=5, accessors=fake_depth_accessors(native), capacity=256)
    assert native.lib.ring_test_start(threads, per_thread, levels) == 0
    try:
        events = drain_until(native, threads * per_thread, slow_every=3)
    finally:
        native.lib.ring_test_join()
    events += native.drain_all()

    per_producer = defaultdict(list)  # producer -> [(kind, id)] in delivery order
    for ev in events:
        if isinstance(ev, State):
            per_producer[ev.conn_type].append(("state", ev.result))
        elif isinstance(ev, Trade):
            per_producer[ord(ev.ticker[1]) - ord("A")].append(("trade", ev.trade_id))
        else:
            assert isinstance(ev, Book) and ev.levels == ((100.0, 10, 1), (101.0, 20, 2), (102.0, 30, 3))
            per_producer[ord(ev.ticker[1]) - ord("A")].append(("book", None))
    kinds = ("state", "trade", "book")
    for producer in range(threads):
        expected = [(kinds[j % 3], None if j % 3 == 2 else j) for j in range(per_thread)]
        assert per_producer[producer] == expected, f"producer {producer}: lost, repeated or reordered records"

    s = native.stats()
    assert s["pushed"] == s["drained"] == threads * per_thread
    assert s["overflowed"] > 0 and s["overflow_blocks"] > 0, "the test did not reach the overflow chain"
    assert s["lost"] == 0 and s["depth"] == 0 and s["callback_errors"] == 0
    assert s["max_depth"] <= 256
    dwell = native.dwell()
    share = threads * per_thread // 3
    assert {name: h.count for name, h in dwell.items()} == {"state": share, "trade_v1": share, "price_depth": share}
    assert all(sum(h.counts) == h.count and 0 < h.max for h in dwell.values())


def test_python_threads_calling_the_c_callback_keep_their_order(native):
    native.start(depth_levels=5, capacity=256)
    on_state = native.lib.ring_on_state
    on_state.restype, on_state.argtypes = None, [ctypes.c_int32, ctypes.c_int32]

    def produce(producer: int) -> None:
        for j in range(5_000):
            on_state(producer, j)

    workers = [threading.Thread(target=produce, args=(p,)) for p in range(3)]
    for w in workers:
        w.start()
    events = drain_until(native, 15_000)
    for w in workers:
        w.join()
    events += native.drain_all()
    results = defaultdict(list)
    for ev in events:
        results[ev.conn_type].append(ev.result)
    assert {p: results[p] for p in range(3)} == {p: list(range(5_000)) for p in range(3)}


def test_wait_wakes_on_notify_and_on_records_and_times_out_otherwise(native):
    native.start(depth_levels=5)
    t0 = time.monotonic()
    assert native.wait(0.05) == 0
    assert time.monotonic() - t0 >= 0.04

    got: list = []
    waiter = threading.Thread(target=lambda: got.append((native.wait(10.0), time.monotonic())))
    waiter.start()
    time.sleep(0.05)
    notified_at = time.monotonic()
    native.notify()
    waiter.join(5)
    assert got and got[0][0] == 2 and got[0][1] - notified_at < 1.0

    waiter = threading.Thread(target=lambda: got.append((native.wait(10.0), time.monotonic())))
    waiter.start()
    time.sleep(0.05)
    pushed_at = time.monotonic()
    native.state(2, 4)  # the C callback, called as the DLL would call it
    waiter.join(5)
    assert got[1][0] & 1 and got[1][1] - pushed_at < 1.0
    assert [(e.conn_type, e.result, e.name) for e in native.drain_events()] == [(2, 4, "MARKET_CONNECTED")]
    assert native.stat("wakes") >= 1

    # a nap: records do not end it (the producer makes no wake call), the timeout or notify() do
    wakes = native.stat("wakes")
    waiter = threading.Thread(target=lambda: got.append((native.wait(0.3, records_wake=False), time.monotonic())))
    waiter.start()
    time.sleep(0.05)
    native.state(2, 4)
    waiter.join(5)
    assert got[2][0] == 1 and got[2][1] - pushed_at >= 0.25 and native.stat("wakes") == wakes
    native.drain_events()
    waiter = threading.Thread(target=lambda: got.append((native.wait(10.0, records_wake=False), time.monotonic())))
    waiter.start()
    time.sleep(0.05)
    notified_at = time.monotonic()
    native.notify()
    waiter.join(5)
    assert got[3][0] == 2 and got[3][1] - notified_at < 1.0


def test_a_hold_is_not_ended_by_records_already_in_the_ring_only_by_notify_or_its_timeout(native):
    """The owner thread holding for a loop with a backlog: records waiting must not end the wait (it would spin,
    taking the GIL from the loop each time round); notify() - the loop drained - does, at once."""
    native.start(depth_levels=5)
    native.state(2, 4)
    t0 = time.monotonic()
    assert native.wait(0.3, records_wake=False) == 1 and time.monotonic() - t0 < 0.25  # a nap returns at once
    assert native.hold(0.1) == 1 and time.monotonic() - t0 >= 0.09  # a hold sleeps its time out
    got: list = []
    waiter = threading.Thread(target=lambda: got.append((native.hold(10.0), time.monotonic())))
    waiter.start()
    time.sleep(0.05)
    native.state(2, 5)
    time.sleep(0.05)
    assert not got  # a record pushed during the hold did not end it either
    notified_at = time.monotonic()
    native.notify()
    waiter.join(5)
    assert got and got[0][0] == 3 and got[0][1] - notified_at < 1.0
    native.notify()  # a notify that came first is not lost: the next hold returns at once
    assert native.hold(10.0) == 3 and time.monotonic() - notified_at < 1.0
    assert [e.result for e in native.drain_events()] == [4, 5]


def test_strings_null_pointers_and_receive_clock(native):
    native.start(depth_levels=5)
    before = native.now_ns()
    native.invalid_ticker(abi.TConnectorAssetIdentifier(0, "WDO\U0001F600Z26", None, 0))
    native.invalid_ticker(abi.TConnectorAssetIdentifier(0, "X" * 70, "F", 0))
    first, second = native.drain_events()
    assert isinstance(first, InvalidTicker)
    assert (first.ticker, first.exchange) == ("WDO\U0001F600Z26", None)
    assert before <= first.received_ns <= time.monotonic_ns()  # app.feed.clock.now_ns is monotonic_ns here
    assert second.ticker == "X" * 64 and native.stat("lossy_strings") == 1  # cut to its field, and counted


def test_v2_trade_and_depth_without_accessors_are_counted_as_accessor_errors(native):
    native.start(depth_levels=5)
    asset = abi.TConnectorAssetIdentifier(0, "WDOZ26", "F", 0)
    native.trade_v2(asset, None, 0)
    native.price_depth(asset, 0, 0, abi.UPDATE_EDIT)
    assert native.drain_events() == []
    assert native.stat("translate_errors") == 1 and native.stat("depth_errors") == 1


def test_callbacks_after_free_return_without_touching_the_ring(native):
    native.start(depth_levels=5)
    native.free()
    native.state(0, 0)  # would write freed memory if the gate did not hold
    assert native.stat("capacity") == 0 and native.drain_events() == [] and native.wait(0) == 0
    native.start(depth_levels=5)
    native.state(0, 0)
    assert len(native.drain_events()) == 1


def test_layout_mismatch_is_reported():
    assert NATIVE is not None and check_layout(NATIVE.lib.ring_layout) == []
    wrong = check_layout(lambda name: 0 if name == b"RecHead.received_ns" else NATIVE.lib.ring_layout(name))
    assert wrong == ["RecHead.received_ns: C 0, Python 16"]


MINGW = shutil.which("x86_64-w64-mingw32-gcc")


@pytest.mark.skipif(MINGW is None, reason="no mingw-w64 cross compiler (apt-get install gcc-mingw-w64-x86-64)")
def test_the_ring_cross_compiles_for_windows_without_a_warning(tmp_path):
    """The Windows branches (WaitOnAddress, QueryPerformanceCounter, stdcall callbacks) compile with mingw-w64;
    MSVC's Interlocked branch has no compiler here."""
    src = Path(ring.__file__).parent
    proc = subprocess.run([MINGW, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-o",
                           str(tmp_path / "ring.dll"), *(str(src / f) for f in ("ring.c", "ring_callbacks.c",
                                                                                 "ring_test.c")),
                           "-lsynchronization"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_owner_thread_leaves_records_in_the_ring_while_the_loop_is_behind(native, monkeypatch):
    """Backpressure: with HOLD_DEPTH events waiting on the loop, pump() moves nothing (the backlog waits as records,
    not as Python objects) and sleeps until the loop wakes it; once the loop caught up the same records arrive, in
    order."""
    monkeypatch.setattr(native_intake, "HOLD_WAIT_S", 0.01)
    native.start(depth_levels=5, capacity=256)
    on_state = native.lib.ring_on_state
    on_state.restype, on_state.argtypes = None, [ctypes.c_int32, ctypes.c_int32]
    delivered: list = []
    bridge = SimpleNamespace(depth=native_intake.HOLD_DEPTH, put_batch=delivered.extend)
    session = SimpleNamespace(lib=None, bridge=bridge, on_state=lambda *_: None, invalid_tickers=set())
    intake = native_intake.NativeIntake(session, native, nap_s=50e-6)  # type: ignore[arg-type]
    for j in range(1_000):
        on_state(7, j)
    for _ in range(5):
        intake.pump()
    assert delivered == [] and native.stat("depth") > 0 and intake.held == 5
    assert bridge.hold_waiter is None and bridge.resume_depth == native_intake.RESUME_DEPTH
    bridge.depth = 0
    while len(delivered) < 1_000:
        intake.pump()
    assert [ev.result for ev in delivered] == list(range(1_000))


def test_pump_wait_says_when_it_lasted_longer_than_the_naps_would(native):
    native.start(depth_levels=5)
    flags = native.pump_wait(0.0, 0, 0.05, 0.01)  # nothing comes: it sleeps its 50 ms out
    assert flags & 4 and flags & 8
    native.state(2, 4)
    flags = native.pump_wait(50e-6, 10, 0.05, 0.01)  # records already there: back at once, no nap, no sleep
    assert flags & 1 and not flags & (4 | 8)
    assert [e.result for e in native.drain_events()] == [4]


@pytest.mark.parametrize("fused", [True, False], ids=["one C call", "ctypes calls"])
def test_pump_batch_waits_drains_and_converts_and_lets_a_command_go_first(native, fused):
    native.start(depth_levels=5)
    if fused and not native.decoder.fused():
        pytest.skip("ring_decode.c not built")
    native.decoder.native = fused  # False: the path without ring_decode.c
    flags, n, nbytes, events = native.pump_batch(True, 0.0, 0, 0.01, 0.005, 100)  # nothing comes: sleeps 10 ms
    assert flags & 4 and flags & 8 and n == nbytes == 0 and events == []
    for j in range(3):
        native.state(2, j)
    flags, n, nbytes, events = native.pump_batch(True, 50e-6, 10, 0.05, 0.0, 100)
    assert flags & 1 and n == 3 and nbytes > 0 and [e.result for e in events] == [0, 1, 2]
    native.state(2, 3)
    native.notify()  # a DLL command is queued: it goes before the record
    flags, n, nbytes, events = native.pump_batch(True, 50e-6, 10, 0.05, 0.0, 100)
    assert flags & 2 and n == nbytes == 0 and events == []
    flags, n, _, events = native.pump_batch(False, 0.0, 0, 0.0, 0.0, 100)  # no wait: straight to the drain
    assert flags == 0 and n == 1 and [e.result for e in events] == [3]
    for j in range(4, 10):
        native.state(2, j)
    _, n, _, events = native.pump_batch(False, 0.0, 0, 0.0, 0.0, 4)  # at most max_records
    assert n == 4 and [e.result for e in events] == [4, 5, 6, 7]


def test_the_cold_walk_times_every_rep_and_refuses_bad_arguments(native):
    ns = native.cold_walk(64, 0.0005, False, 5)
    assert len(ns) == 5 and all(n > 0 for n in ns)
    assert len(native.cold_walk(64, 0.0005, True, 3)) == 3
    with pytest.raises(ValueError):
        native.cold_walk(1, 0.0, False, 1)


def test_the_owner_thread_naps_only_while_its_naps_cover_the_gaps_between_batches(native):
    """Gaps longer than IDLE_NAPS naps: every record wakes the thread anyway, so it stops napping (the naps would only
    cost CPU and latency); gaps its naps cover: it naps again, and the DLL's threads make no wake call."""
    native.start(depth_levels=5, capacity=4096)
    delivered: list = []
    bridge = SimpleNamespace(depth=0, put_batch=delivered.extend)
    session = SimpleNamespace(lib=None, bridge=bridge, on_state=lambda *_: None, invalid_tickers=set())
    intake = native_intake.NativeIntake(session, native, nap_s=50e-6)  # type: ignore[arg-type]  # 0.5 ms of naps
    assert intake.naps == native_intake.IDLE_NAPS
    stop = threading.Event()
    pumper = threading.Thread(target=lambda: [intake.pump() for _ in iter(stop.is_set, True)])
    pumper.start()
    try:
        for j in range(60):  # 5 ms apart: ten times what the naps cover
            native.state(7, j)
            time.sleep(0.005)
        assert intake.naps == 0 and intake.covered < native_intake.NAP_OFF
        wakes = native.stat("wakes")
        j = 60
        end = time.monotonic() + 10
        while intake.naps == 0 and time.monotonic() < end:  # back to back: the sleeps end within the naps' span
            native.state(7, j)
            j += 1
            if j % 8 == 0:
                time.sleep(0.0001)
        assert intake.naps == native_intake.IDLE_NAPS and intake.covered >= native_intake.NAP_ON
        assert native.stat("wakes") > wakes  # while not napping, records woke it
    finally:
        stop.set()
        native.notify()
        pumper.join(5)
    end = time.monotonic() + 5
    while len(delivered) < j and time.monotonic() < end:
        intake.pump()
    assert [ev.result for ev in delivered] == list(range(j))


def test_ring_nap_us_0_never_naps(native):
    """feed.ring_nap_us = 0: the owner thread sleeps between batches and each record after a gap wakes it."""
    native.start(depth_levels=5)
    delivered: list = []
    bridge = SimpleNamespace(depth=0, put_batch=delivered.extend)
    session = SimpleNamespace(lib=None, bridge=bridge, on_state=lambda *_: None, invalid_tickers=set())
    intake = native_intake.NativeIntake(session, native, nap_s=0.0)  # type: ignore[arg-type]
    stop = threading.Event()
    pumper = threading.Thread(target=lambda: [intake.pump() for _ in iter(stop.is_set, True)])
    pumper.start()
    wakes = native.stat("wakes")
    try:
        for j in range(20):  # 1 ms apart: asleep in between, the owner thread is woken by the record
            native.state(7, j)
            time.sleep(0.001)
            assert intake.naps == 0
    finally:
        stop.set()
        native.notify()
        pumper.join(5)
    delivered += native.drain_events()
    assert [ev.result for ev in delivered] == list(range(20))
    assert native.stat("wakes") - wakes >= 5
    from app import config as config_mod

    assert config_mod.load(None, {"feed.ring_nap_us": 0}).feed.ring_nap_us == 0
