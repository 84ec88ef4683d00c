"""The process-wide ProfitDLL session: one library, one owner thread, one set of callbacks, one initialize.

The real DLL cannot be initialized twice in a process (spec §8.2): a second initialize after DLLFinalize crashes or
hangs it rather than returning an error code. So a session initializes on first use, finalizes only when the
process exits (or when the program shuts the feed down for good), and once a library was finalized this module
refuses to initialize it again without calling it. Stopping and starting an App in the same process unsubscribes
and resubscribes on the same session. When the market connection comes back on its own, every subscription is made
again (whether the DLL keeps them is undocumented). Every DLL call below runs on the owner thread: the `_dll_*`
methods are only ever passed to `OwnerThread.call`/`post`.

At exit: the callbacks' gate is closed first (callbacks.GATE), then DLLFinalize runs on the owner thread; if it
does not return in time, a DLL thread may still be running and could call into the interpreter while it is torn
down (its pinned thread state would be freed under it), so the process ends there with os._exit after logging.
"""
from __future__ import annotations

import atexit
import ctypes
import logging
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from app.feed.b3time import local_to_ns
from app.feed.base import FeedError
from app.feed.owner_thread import OwnerThread
from app.feed.profitdll import abi, errors
from app.feed.profitdll.callbacks import GATE, Callbacks
from app.feed.profitdll.credentials import Credentials
from app.feed.profitdll.library import ProfitLibrary
from app.feed.profitdll.native_intake import NativeIntake, choose
from app.feed.profitdll.routing_callbacks import RoutingCallbacks

if TYPE_CHECKING:
    from app.feed.bridge import Bridge

log = logging.getLogger("app.feed.profitdll")

_sessions: dict[str, "DllSession"] = {}
_sessions_lock = threading.Lock()
_finalized_paths: set[str] = set()  # libraries finalized in this process: never initialized again

# exit code when the DLL could not be finalized at exit (README: 3 = feed error)
EXIT_DLL_STUCK = 3
AT_EXIT_FINALIZE_TIMEOUT = 10.0
# a server clock this far from the system clock (B3 local) is reported as a time-zone mismatch, not drift
ZONE_MISMATCH_S = 600.0

REINIT_HINT = ("ProfitDLL cannot be initialized again in a process after DLLFinalize; restart the process, "
               "or run with feed.isolation = \"process\" so a supervisor does it for you")


class DllSession:
    def __init__(self, lib: ProfitLibrary, owner: OwnerThread, depth_levels: int, keep_thread_state: bool,
                 flush_add_ends_bracket: bool = True, bridge: str = "ctypes", nap_s: float = 100e-6) -> None:
        self.lib = lib
        self.owner = owner
        self.depth_levels = depth_levels
        self.flush_add_ends_bracket = flush_add_ends_bracket
        self.bridge: Bridge | None = None  # read by the callback thread, set by the loop
        self.conn_state: dict[int, int] = {}  # conn_type -> last result, written by the state callback
        # how many times routing reached ROUTING_BROKER_CONNECTED after anything else: an order sent for an older
        # value is refused (the broker's view may have changed in between and was not reconciled yet)
        self._routing_connects = 0
        self.invalid_tickers: set[str] = set()
        self.callbacks = Callbacks(self, depth_levels, keep_thread_state, flush_add_ends_bracket)
        # feed.bridge: the market-data callbacks the DLL calls are the native ring's C functions, or the ctypes ones
        self.native = NativeIntake.claim(self, nap_s) if bridge == "native" else None
        self.bridge_path = "native" if self.native is not None else "ctypes"
        self.routing_callbacks = RoutingCallbacks(self)
        # routing events that arrived while no bridge was attached; handed to the next bridge by attach()
        self.routing_backlog: deque[Any] = deque()
        self.initialized = False
        self.finalized = False
        self.finalizing = False
        self.init_mode = ""
        self.subscribed: dict[tuple[str, str], bool] = {}  # (ticker, exchange) -> depth subscribed too
        # market connection bookkeeping, written by the state callback
        self.market_was_up = False
        self.market_lost = False
        self.market_warnings = 0  # (2,5) performance warning / (2,6) partially connected: the client is slow
        self.resubscribe_rounds = 0
        self.resubscribe_errors = 0
        self.last_resubscribe_error = ""
        self.server_clock_offset_s: float | None = None
        atexit.register(self._finalize_at_exit)

    @classmethod
    async def open(cls, lib_loader: Any, path: str, depth_levels: int, keep_thread_state: bool,
                   allow_old: bool = False, flush_add_ends_bracket: bool = True, bridge: str = "auto",
                   nap_s: float = 100e-6, sched_batch: bool = False) -> "DllSession":
        """The session of the library at `path`; on first use the owner thread starts and loads the library
        (loading runs the DLL's initialization code, so it too happens on the owner thread). `bridge` (feed.bridge)
        counts on first use only: the callbacks a DLL was initialized with stay for the process."""
        session = _sessions.get(path)
        if session is None:
            path_kind = choose(bridge)
            owner = OwnerThread(sched_batch=sched_batch)
            try:
                lib = await owner.call(lib_loader, path, allow_old)
            except BaseException:
                owner.stop()
                raise
            if lib.old_build:
                log.warning("%s predates ProfitDLL %s (feed.allow_old_dll = true): its depth, trade-V2 and "
                            "resubscribe bugs are not fixed; results may be wrong", path, abi.FIXED_BUILD)
            with _sessions_lock:
                session = _sessions.setdefault(
                    path, cls(lib, owner, depth_levels, keep_thread_state, flush_add_ends_bracket, path_kind, nap_s))
            log.info("DLL callbacks: %s", "native ring (the DLL's threads never enter Python for market data)"
                     if session.native is not None else "ctypes")
        return session

    # -- routing of callbacks -----------------------------------------------------------------------------------
    def attach(self, bridge: "Bridge") -> None:
        self.bridge = bridge
        while self.routing_backlog:  # an order's fill is never lost between two runs of the App
            bridge.put_routing(self.routing_backlog.popleft())

    def detach(self) -> None:
        self.bridge = None

    @property
    def routing_connects(self) -> int:
        # the native ring counts at the callback itself: its state records reach on_state only when drained
        return self.native.ring.stat("routing_connects") if self.native is not None else self._routing_connects

    @property
    def market_connected(self) -> bool:
        # 5 and 6 (4.0.0.39) say the client is slow, not that the server went away
        return self.conn_state.get(abi.CONN_MARKET) in (abi.MARKET_CONNECTED, abi.MARKET_PERFORMANCE_WARNING,
                                                          abi.MARKET_PARTIAL_CONNECTED)

    def on_state(self, conn_type: int, result: int) -> None:
        """Runs inside the state callback (DLL thread, or the owner thread inside DLLFinalize): bookkeeping only;
        the resubscription it may need is posted to the owner thread, never called from here."""
        previous = self.conn_state.get(conn_type)
        self.conn_state[conn_type] = result
        if conn_type == abi.CONN_ROUTING and result == abi.ROUTING_BROKER_CONNECTED and previous != result:
            self._routing_connects += 1
        if conn_type != abi.CONN_MARKET:
            return
        if result == abi.MARKET_CONNECTED:
            if self.market_lost and not self.finalizing:
                self.market_lost = False
                self.owner.post(self._dll_resubscribe, on_error=self._resubscribe_failed)
            self.market_was_up = True
        elif result in (abi.MARKET_PERFORMANCE_WARNING, abi.MARKET_PARTIAL_CONNECTED):
            self.market_warnings += 1
        elif self.market_was_up and not self.finalizing:
            self.market_lost = True

    @property
    def activation_valid(self) -> bool:
        return self.conn_state.get(abi.CONN_ACTIVATION) == abi.ACTIVATE_VALID

    # -- owner-thread bodies ------------------------------------------------------------------------------------
    def _dll_initialize(self, creds: Credentials, routing: bool, trade_api: str, book: str,
                        guard: bool = True) -> None:
        """guard=False only for the fault injection that imitates a naive reconnect (process child)."""
        if guard and (self.finalized or self.lib.path in _finalized_paths):
            raise FeedError(f"refused to initialize {self.lib.path} again: {REINIT_HINT}")
        lib = self.lib
        cb: Any = self.callbacks
        if self.native is not None:
            self.native.arm(self.depth_levels, self.flush_add_ends_bracket)
            self.owner.set_pump(self.native)
            cb = self.native.callbacks
        # a prototype called with no argument is a NULL function pointer: the slot is left empty, as in the examples
        v1 = cb.trade_v1 if trade_api == "v1" else abi.TNewTradeCallback()
        tiny = cb.tiny_book if book == "tiny" else abi.TTinyBookCallback()
        if routing:
            # the account slot takes TAccountCallback; order changes come through SetOrderCallback below (the
            # TOrderChangeCallback slot is the deprecated form of the same updates, left empty)
            rc = lib.DLLInitializeLogin(creds.key, creds.user, creds.password, cb.state, None, None,
                                        self.routing_callbacks.account, v1, None, None, None, None, None, tiny)
            name = "DLLInitializeLogin"
        else:
            rc = lib.DLLInitializeMarketLogin(creds.key, creds.user, creds.password, cb.state, v1, None, None,
                                              None, None, None, tiny)
            name = "DLLInitializeMarketLogin"
        errors.check(name, rc, REINIT_HINT if self.finalized else "check the activation key and credentials")
        self.initialized, self.finalized, self.init_mode = True, False, name
        self.market_was_up = self.market_lost = False
        # callback setters right after initialize returned NL_OK, as the official examples do
        if trade_api == "v2":
            errors.check("SetTradeCallbackV2", lib.SetTradeCallbackV2(cb.trade_v2))
        if book == "depth":
            errors.check("SetPriceDepthCallback", lib.SetPriceDepthCallback(cb.price_depth))
        errors.check("SetInvalidTickerCallback", lib.SetInvalidTickerCallback(cb.invalid_ticker))
        if routing:
            rcb = self.routing_callbacks
            errors.check("SetOrderCallback", lib.SetOrderCallback(rcb.order))
            errors.check("SetOrderHistoryCallback", lib.SetOrderHistoryCallback(rcb.history))
            if lib.SetTradingMessageResultCallback is not None:  # optional export (spec §10)
                errors.check("SetTradingMessageResultCallback", lib.SetTradingMessageResultCallback(rcb.result))

    def _dll_subscribe(self, ticker: str, exchange: str, depth: bool) -> None:
        # the book first, so the first trades already find a book to be priced against
        if depth:
            asset = abi.TConnectorAssetIdentifier(0, ticker, exchange, 0)
            errors.check("SubscribePriceDepth", self.lib.SubscribePriceDepth(ctypes.byref(asset)),
                         "subscribe only after the market is connected; exchange must be one letter (F, B)")
        errors.check("SubscribeTicker", self.lib.SubscribeTicker(ticker, exchange),
                     "subscribe only after the market is connected; exchange must be one letter (F, B)")
        self.subscribed[(ticker, exchange)] = depth

    def _dll_unsubscribe(self, ticker: str, exchange: str) -> None:
        depth = self.subscribed.pop((ticker, exchange), False)
        errors.check("UnsubscribeTicker", self.lib.UnsubscribeTicker(ticker, exchange))
        if depth:
            asset = abi.TConnectorAssetIdentifier(0, ticker, exchange, 0)
            errors.check("UnsubscribePriceDepth", self.lib.UnsubscribePriceDepth(ctypes.byref(asset)))

    def _dll_resubscribe(self) -> None:
        """The market connection came back on its own: subscribe everything again, book first as at start."""
        if not self.initialized or self.finalizing:
            return
        self.resubscribe_rounds += 1
        for (ticker, exchange), depth in list(self.subscribed.items()):
            try:
                self._dll_subscribe(ticker, exchange, depth)
            except errors.NLError as exc:
                self._resubscribe_failed(exc)
        log.info("market connection back: resubscribed %d ticker(s)", len(self.subscribed))

    def _resubscribe_failed(self, exc: BaseException) -> None:
        self.resubscribe_errors += 1
        self.last_resubscribe_error = str(exc)
        log.warning("resubscribe after a reconnect failed: %s", exc)

    def _dll_finalize(self) -> None:
        if not self.initialized:
            return
        self.finalizing = True  # the DLL reports MARKET_DISCONNECTED from inside DLLFinalize: not a lost market
        _finalized_paths.add(self.lib.path)  # even if it fails: never call initialize on it again
        try:
            rc = self.lib.DLLFinalize()
            if self.native is not None:  # its threads are joined: what they pushed is delivered, then the ring goes
                self.owner.set_pump(None)
                self.native.finish()
        finally:
            self.finalizing = False
        self.initialized, self.finalized = False, True
        self.subscribed.clear()
        errors.check("DLLFinalize", rc)

    def _dll_server_clock(self) -> tuple[int, int, int, int, int, int, int]:
        date = ctypes.c_double()
        parts = [ctypes.c_int32() for _ in range(7)]
        errors.check("GetServerClock", self.lib.GetServerClock(ctypes.byref(date), *map(ctypes.byref, parts)))
        return tuple(p.value for p in parts)  # type: ignore[return-value]

    def _dll_clock_offset(self) -> float:
        parts = self._dll_server_clock()
        return clock_offset_s(parts, time.time())

    # -- loop-side API ------------------------------------------------------------------------------------------
    async def initialize(self, creds: Credentials, routing: bool, trade_api: str, book: str) -> None:
        await self.owner.call(self._dll_initialize, creds, routing, trade_api, book)

    async def subscribe(self, ticker: str, exchange: str, depth: bool) -> None:
        await self.owner.call(self._dll_subscribe, ticker, exchange, depth)

    async def unsubscribe(self, ticker: str, exchange: str) -> None:
        await self.owner.call(self._dll_unsubscribe, ticker, exchange)

    async def finalize(self) -> None:
        await self.owner.call(self._dll_finalize)

    async def server_clock(self) -> tuple[int, int, int, int, int, int, int]:
        return await self.owner.call(self._dll_server_clock)

    async def check_clock(self) -> float:
        """GetServerClock against this machine's clock read as B3 local time; logs and keeps the offset. The time
        zone of the DLL's timestamps is undocumented (spec §7.3): an offset of whole hours says it is not B3's."""
        offset = await self.owner.call(self._dll_clock_offset)
        self.server_clock_offset_s = offset
        if abs(offset) >= ZONE_MISMATCH_S:
            log.warning("the DLL's server clock reads %+.2f h from B3 local time by this machine's clock: its time "
                        "zone is not America/Sao_Paulo, or this machine's clock is wrong; trade times are read as "
                        "B3 local time, so they would be off by as much (set the machine's clock and zone)",
                        offset / 3600)
        else:
            log.info("DLL server clock vs this machine (B3 local): %+.3f s", offset)
        return offset

    def _finalize_at_exit(self) -> None:
        GATE[0] = False  # from here no callback touches Python objects, including those fired by DLLFinalize
        if not (self.initialized and self.owner.alive):
            return
        try:
            self.owner.call_blocking(self._dll_finalize, timeout=AT_EXIT_FINALIZE_TIMEOUT)
        except TimeoutError:
            log.error("DLLFinalize did not return within %gs at exit; ending the process now so no DLL thread "
                      "calls into a finished interpreter", AT_EXIT_FINALIZE_TIMEOUT)
            logging.shutdown()
            os._exit(EXIT_DLL_STUCK)
        except Exception as exc:  # its threads were asked to stop; exiting anyway, say why
            log.warning("DLLFinalize at exit failed: %s", exc)

    def stats(self) -> dict[str, Any]:
        return {
            "initialized": self.initialized,
            "finalized": self.finalized,
            "conn_state": sorted(abi.STATE_NAMES.get((k, v), f"{k}:{v}") for k, v in self.conn_state.items()),
            "subscribed": sorted(t for t, _ in self.subscribed),
            "invalid_tickers": sorted(self.invalid_tickers),
            "old_build": self.lib.old_build,
            "market_warnings": self.market_warnings,
            "resubscribe_rounds": self.resubscribe_rounds,
            "resubscribe_errors": self.resubscribe_errors,
            "server_clock_offset_s": self.server_clock_offset_s,
            **(self.native.stats() if self.native is not None else self.callbacks.stats()),
            **self.routing_callbacks.stats(),
        }


def clock_offset_s(parts: tuple[int, int, int, int, int, int, int], now_s: float) -> float:
    """GetServerClock's (year, month, day, hour, min, sec, ms), read as B3 local time, minus now (UTC seconds)."""
    year, month, day, hour, minute, second, ms = parts
    return local_to_ns(year, month, day, hour, minute, second, ms) / 1e9 - now_s
