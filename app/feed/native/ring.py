"""The native callback ring, from Python: load the library, hand its C callbacks to the DLL, drain their records.

The C functions in ring_callbacks.c have the DLL's callback signatures, so the DLL calls them directly: its
threads never enter Python, never take the GIL and never wait for it. They push records (one layout per kind) into a
bounded ring (ring.c); one Python thread - the DLL owner thread, in the feed - waits in C with the GIL released
(`wait`), drains a whole batch in one call (`drain_events`) and gets the same event objects the ctypes callbacks
build (ring_records.RecordDecoder).

The C side keeps one ring per process, because a DLL callback carries no context pointer to find another: this
module mirrors that with one `NativeRing` per process (`get()`). Without the compiled library (no C compiler at
install time) `get()` returns None and says so once in the log; the ctypes callbacks stay the path then.
"""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import threading
from ctypes import POINTER, c_char_p, c_int32, c_int64, c_void_p
from typing import Any, Callable

from app.feed.native.ring_records import KIND_NAMES, RecordDecoder, bind_ring, check_layout
from app.feed.profitdll import abi
from app.metrics import LatencyHistogram

log = logging.getLogger("app.feed.native")

DEFAULT_CAPACITY = 65_536  # slots of 64 bytes (4 MiB): ~1.5 s of a 20k events/s burst with the consumer stalled
BUFFER_BYTES = 1 << 20  # one drain copies at most this much: 16k one-slot records
_HIST_BUCKETS = 512
STATS = ("pushed", "drained", "overflowed", "overflow_blocks", "max_depth", "wakes", "lost", "capacity", "depth",
         "translate_errors", "depth_errors", "depth_books", "post_flush_adds", "depth_table_full", "lossy_strings",
         "routing_connects")

_ACCESSOR = (c_void_p, c_void_p, c_void_p)
_EXPORTS: dict[str, tuple[Any, list[Any]]] = {
    "ring_init": (c_int32, [c_int64, c_int32, c_int32, *_ACCESSOR]),
    "ring_reset": (None, []),
    "ring_free": (None, []),
    "ring_wait": (c_int32, [c_int64, c_int32]),
    "ring_pump_wait": (c_int32, [c_int64, c_int32, c_int64, c_int64]),
    "ring_hold": (c_int32, [c_int64]),
    "ring_notify": (None, []),
    "ring_consumer_thread": (None, []),
    "ring_drain": (c_int64, [c_void_p, c_int64, c_int64, POINTER(c_int64)]),
    "ring_stat": (c_int64, [c_char_p]),
    "ring_dwell": (c_int32, [c_int32, POINTER(c_int64), c_int32, POINTER(c_int64)]),
    "ring_layout": (c_int64, [c_char_p]),
    "ring_now": (c_int64, []),
    "ring_set_tee": (c_int32, [c_int32, c_void_p]),
    "ring_test_start": (c_int32, [c_int32, c_int64, c_int32]),
    "ring_test_join": (c_int32, []),
    "ring_test_cold": (c_int32, [c_int32, c_int64, c_int32, c_int32, POINTER(c_int64)]),
}
# C callback -> (attribute named as on app.feed.profitdll.callbacks.Callbacks, the abi prototype it matches)
CALLBACKS = {
    "ring_on_state": ("state", abi.TStateCallback),
    "ring_on_trade_v1": ("trade_v1", abi.TNewTradeCallback),
    "ring_on_trade_v2": ("trade_v2", abi.TConnectorTradeCallback),
    "ring_on_tiny_book": ("tiny_book", abi.TTinyBookCallback),
    "ring_on_price_depth": ("price_depth", abi.TConnectorPriceDepthCallback),
    "ring_on_invalid_ticker": ("invalid_ticker", abi.TInvalidTickerCallback),
}
# records' kinds (ring.h RK_*) by the callback attribute that produces them
KINDS = {name: kind for kind, name in KIND_NAMES.items()}

_lock = threading.Lock()
_ring: "NativeRing | None" = None
_tried = False


def library_path() -> str | None:
    spec = importlib.util.find_spec("app.feed.native._ring")
    return spec.origin if spec is not None and spec.origin else None


def _load() -> "NativeRing | None":
    path = library_path()
    if path is None:
        log.info("native callback ring not built (no C compiler at install time?): the DLL callbacks run through "
                 "ctypes; install a C compiler and reinstall with `pip install -e .` to build it")
        return None
    try:
        lib = ctypes.CDLL(path)  # cdecl exports; only the callbacks are stdcall, declared by their prototypes
        for name in _EXPORTS:
            _bound(getattr(lib, name), name)
    except (OSError, AttributeError) as exc:
        log.warning("native callback ring at %s cannot be used (%s): the DLL callbacks run through ctypes", path, exc)
        return None
    wrong = check_layout(lib.ring_layout)
    if wrong:
        log.warning("native callback ring at %s was built from other sources (%s): the DLL callbacks run through "
                    "ctypes; reinstall with `pip install -e .`", path, "; ".join(wrong[:3]))
        return None
    return NativeRing(lib, path)


def _bound(fn: Any, name: str) -> Any:
    fn.restype, fn.argtypes = _EXPORTS[name]
    return fn


def get() -> "NativeRing | None":
    """The process's native ring, or None when the library is missing or unusable (said once in the log)."""
    global _ring, _tried
    with _lock:
        if not _tried:
            _tried = True
            _ring = _load()
        return _ring


def accessors_of(dll: Any) -> tuple[int, int, int]:
    """Addresses of TranslateTrade, GetPriceDepthSideCount and GetPriceGroup of a loaded ProfitLibrary (or any
    object with those three ctypes functions): the C callbacks call them inside the callbacks they belong to."""
    return tuple(ctypes.cast(getattr(dll, name), c_void_p).value or 0  # type: ignore[return-value]
                 for name in ("TranslateTrade", "GetPriceDepthSideCount", "GetPriceGroup"))


class NativeRing:
    def __init__(self, lib: ctypes.CDLL, path: str) -> None:
        self.lib = lib
        self.path = path
        self.running = False
        # the C callbacks as function pointers of the abi prototypes: pass them to SetXxxCallback / DLLInitialize*
        for c_name, (attr, prototype) in CALLBACKS.items():
            setattr(self, attr, prototype(ctypes.cast(getattr(lib, c_name), c_void_p).value))
        # callbacks that do nothing: the bench's floor for dwell (never registered by the feed)
        self.null_trade_v1 = abi.TNewTradeCallback(ctypes.cast(lib.ring_null_trade_v1, c_void_p).value)
        self.null_trade_v2 = abi.TConnectorTradeCallback(ctypes.cast(lib.ring_null_trade_v2, c_void_p).value)
        self.decoder = RecordDecoder()
        self._buf = bytearray(BUFFER_BYTES)
        self._view = memoryview(self._buf)
        self._addr = ctypes.addressof((ctypes.c_char * BUFFER_BYTES).from_buffer(self._buf))
        self._nbytes = c_int64()
        self._nbytes_ref = ctypes.byref(self._nbytes)
        # the drain is a memcpy of at most BUFFER_BYTES that never blocks: called through PyDLL it keeps the GIL, so
        # a batch costs the owner thread one GIL acquisition (after its wait), not one more per drain
        self._drain = _bound(ctypes.PyDLL(path).ring_drain, "ring_drain")
        self._wait = lib.ring_wait
        self._pump_wait = lib.ring_pump_wait
        self._hold = lib.ring_hold
        bind_ring(path, *(ctypes.cast(getattr(lib, f), c_void_p).value or 0 for f in ("ring_pump_wait", "ring_drain")))
        self._tees: list[Any] = []  # ctypes thunks handed to ring_set_tee: alive while the C side may call them

    # -- lifecycle (the owner thread) ------------------------------------------------------------------------------
    def start(self, depth_levels: int, flush_add_ends_bracket: bool = True, accessors: tuple[int, int, int] = (0, 0, 0),
              capacity: int = DEFAULT_CAPACITY, on_state: Callable[[int, int], None] | None = None,
              on_invalid: Callable[[str], None] | None = None) -> None:
        """Allocate the ring and arm the callbacks. The accessors come from `accessors_of(dll)`; without them a V2
        trade or depth notification is counted as a translate or depth error, as a failing accessor would be."""
        rc = self.lib.ring_init(capacity, depth_levels, 1 if flush_add_ends_bracket else 0, *accessors)
        if rc != 0:
            reason = {-1: "bad arguments", -2: "out of memory", -3: "already running"}.get(rc, f"code {rc}")
            raise RuntimeError(f"native ring_init({capacity}, {depth_levels}) failed: {reason}")
        self.decoder = RecordDecoder(on_state, on_invalid)
        self.running = True

    def reset(self) -> None:
        """Empty the ring and zero its statistics (callbacks arriving meanwhile are not recorded)."""
        self.lib.ring_reset()
        self.decoder = RecordDecoder(self.decoder.on_state, self.decoder.on_invalid)

    def free(self) -> None:
        """Release the ring's memory; callbacks fired later return at once. Drain what is left first."""
        self.lib.ring_free()
        self.running = False

    # -- consumer (one thread) ---------------------------------------------------------------------------------
    def wait(self, timeout_s: float | None, records_wake: bool = True) -> int:
        """Sleep, GIL released, until records are there (bit 0), notify() was called (bit 1) or the timeout.

        records_wake=False naps instead: only the timeout or notify() end it, so the DLL's threads never make the
        wake system call (~2 us of their time each) while the consumer sleeps; it costs up to timeout_s of
        latency. Returns what is there when it ends either way."""
        return self._wait(-1 if timeout_s is None else int(timeout_s * 1e9), 1 if records_wake else 0)

    def pump_wait(self, nap_s: float, naps: int, idle_s: float, window_s: float = 0.0) -> int:
        """Between batches: up to `naps` naps of nap_s ending once records are there (records do not wake them),
        then a sleep of up to idle_s that a record ends - all in one C call, GIL released. notify() ends either.
        Returns as wait(), plus 4 when it slept and 8 when it lasted window_s or more (window_s > 0)."""
        return self._pump_wait(int(nap_s * 1e9), naps, int(idle_s * 1e9), int(window_s * 1e9))

    def pump_batch(self, wait: bool, nap_s: float, naps: int, idle_s: float, window_s: float,
                   max_records: int) -> tuple[int, int, int, list[Any]]:
        """The owner thread's turn: if `wait`, pump_wait(nap_s, naps, idle_s, window_s); then, unless notify() ended
        it (flags bit 1: a DLL command goes first), drain up to max_records and convert them. (flags, records,
        bytes, events); flags 0 when it did not wait. One C call, not two ctypes calls and the decoder's set-up,
        where ring_decode.c was built: what the owner thread runs per batch on cold caches at low rates."""
        if self.decoder.fused():
            return self.decoder.pump(self._view, max_records, wait, int(nap_s * 1e9), naps, int(idle_s * 1e9),
                                     int(window_s * 1e9))
        flags = self.pump_wait(nap_s, naps, idle_s, window_s) if wait else 0
        if flags & 2:
            return flags, 0, 0, []
        view, n, nbytes = self.drain_records(max_records)
        return flags, n, nbytes, self.decoder.decode(view, nbytes) if nbytes else []

    def hold(self, timeout_s: float) -> int:
        """Sleep, GIL released, until notify() or the timeout; records in the ring do not end it (the loop has a
        backlog: taking more now would only grow it). Returns as wait()."""
        return self._hold(int(timeout_s * 1e9))

    def consumer_thread(self) -> None:
        """Call on the thread that will wait(): its naps then end on time (Linux: 1 us timer slack, not 50 us)."""
        self.lib.ring_consumer_thread()

    def notify(self) -> None:
        """Wake wait() from any thread (a DLL command is waiting for the owner thread)."""
        self.lib.ring_notify()

    def drain_records(self, max_records: int = 1 << 30) -> tuple[memoryview, int, int]:
        """Copy up to max_records records (and at most BUFFER_BYTES) into this object's buffer: (view, records,
        bytes). The view is reused by the next drain."""
        n = self._drain(self._addr, BUFFER_BYTES, max_records, self._nbytes_ref)
        return self._view, n, self._nbytes.value

    def drain_events(self, max_records: int = 1 << 30) -> list[Any]:
        """The events of up to max_records records, oldest first (one C call, one pass in Python)."""
        view, _, nbytes = self.drain_records(max_records)
        return self.decoder.decode(view, nbytes) if nbytes else []

    def drain_all(self) -> list[Any]:
        """Every event still in the ring (one drain is bounded by BUFFER_BYTES): after the DLL stopped calling
        back, e.g. once DLLFinalize returned."""
        out: list[Any] = []
        while True:
            view, n, nbytes = self.drain_records()
            if not n:
                return out
            out += self.decoder.decode(view, nbytes)

    # -- statistics ----------------------------------------------------------------------------------------------
    def stat(self, name: str) -> int:
        return int(self.lib.ring_stat(name.encode()))

    def dwell(self) -> dict[str, LatencyHistogram]:
        """Per callback: how long it kept the DLL's thread (entry to exit), in ns."""
        out = {}
        counts = (c_int64 * _HIST_BUCKETS)()
        summary = (c_int64 * 3)()
        for kind, name in KIND_NAMES.items():
            self.lib.ring_dwell(kind, counts, _HIST_BUCKETS, summary)
            hist = LatencyHistogram()
            hist.counts = list(counts)
            hist.count, hist.total, hist.max = summary[0], summary[1], summary[2]
            if hist.count:
                out[name] = hist
        return out

    def stats(self) -> dict[str, Any]:
        """The ring's counters, the decoder's, and the dwell summary per callback (names as Callbacks.stats())."""
        out: dict[str, Any] = {name: self.stat(name) for name in STATS}
        out["callback_errors"] = self.decoder.errors
        out["decoded_in_c"] = self.decoder.native_records  # records ring_decode.c converted (the rest: Python)
        out["last_callback_error"] = self.decoder.last_error
        out["dwell"] = {name: hist.summary_us() for name, hist in self.dwell().items()}
        return out

    # -- tests -----------------------------------------------------------------------------------------------------
    def set_tee(self, attr: str, callback: Any) -> None:
        """Run `callback` (a ctypes callback of the same prototype, or None) right after the native callback named
        `attr`, inside the same DLL callback: one stream through both paths."""
        if callback is not None:
            self._tees.append(callback)
        rc = self.lib.ring_set_tee(KINDS[attr], ctypes.cast(callback, c_void_p) if callback is not None else None)
        if rc != 0:
            raise ValueError(f"no native callback {attr!r}")

    def now_ns(self) -> int:
        """The C side's receive-time clock (the same as app.feed.clock.now_ns)."""
        return int(self.lib.ring_now())

    def cold_walk(self, nodes: int, gap_s: float, spin: bool, reps: int) -> list[int]:
        """ns of a fixed walk over `nodes` cache lines, each timed after gap_s asleep (or spinning): this machine's
        price for work that starts on caches gone cold while idle (bench stages, spacing). GIL released."""
        out = (ctypes.c_int64 * reps)()
        if self.lib.ring_test_cold(nodes, int(gap_s * 1e9), int(spin), reps, out) != 0:
            raise ValueError("ring_test_cold: bad arguments or no memory")
        return list(out)
