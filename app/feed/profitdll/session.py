"""The process-wide ProfitDLL session: one library, one owner thread, one set of callbacks, one initialize.

The real DLL cannot be initialized twice in a process (spec §8.2), so a session initializes on first use and
finalizes only when the process exits (or when the program explicitly shuts the feed down for good). Stopping and
starting an App in the same process unsubscribes and resubscribes on the same session. Every DLL call below runs
on the owner thread: the `_dll_*` methods are only ever passed to `OwnerThread.call`.
"""
from __future__ import annotations

import atexit
import ctypes
import logging
import threading
from typing import TYPE_CHECKING, Any

from app.feed.owner_thread import OwnerThread
from app.feed.profitdll import abi, errors
from app.feed.profitdll.callbacks import Callbacks
from app.feed.profitdll.credentials import Credentials
from app.feed.profitdll.library import ProfitLibrary

if TYPE_CHECKING:
    from app.feed.bridge import Bridge

log = logging.getLogger("app.feed.profitdll")

_sessions: dict[str, "DllSession"] = {}
_sessions_lock = threading.Lock()

REINIT_HINT = ("ProfitDLL cannot be initialized again in a process after DLLFinalize; restart the process, "
               "or run with feed.isolation = \"process\" so a supervisor does it for you")


class DllSession:
    def __init__(self, lib: ProfitLibrary, owner: OwnerThread, depth_levels: int, keep_thread_state: bool) -> None:
        self.lib = lib
        self.owner = owner
        self.bridge: Bridge | None = None  # read by the callback thread, set by the loop
        self.conn_state: dict[int, int] = {}  # conn_type -> last result, written by the state callback
        self.invalid_tickers: set[str] = set()
        self.callbacks = Callbacks(self, depth_levels, keep_thread_state)
        self.initialized = False
        self.finalized = False
        self.init_mode = ""
        self.subscribed: dict[tuple[str, str], bool] = {}  # (ticker, exchange) -> depth subscribed too
        atexit.register(self._finalize_at_exit)

    @classmethod
    async def open(cls, lib_loader: Any, path: str, depth_levels: int, keep_thread_state: bool) -> "DllSession":
        """The session of the library at `path`; on first use the owner thread starts and loads the library
        (loading runs the DLL's initialization code, so it too happens on the owner thread)."""
        session = _sessions.get(path)
        if session is None:
            owner = OwnerThread()
            try:
                lib = await owner.call(lib_loader, path)
            except BaseException:
                owner.stop()
                raise
            with _sessions_lock:
                session = _sessions.setdefault(path, cls(lib, owner, depth_levels, keep_thread_state))
        return session

    # -- routing of callbacks -----------------------------------------------------------------------------------
    def attach(self, bridge: "Bridge") -> None:
        self.bridge = bridge

    def detach(self) -> None:
        self.bridge = None

    @property
    def market_connected(self) -> bool:
        return self.conn_state.get(abi.CONN_MARKET) == abi.MARKET_CONNECTED

    @property
    def activation_valid(self) -> bool:
        return self.conn_state.get(abi.CONN_ACTIVATION) == abi.ACTIVATE_VALID

    # -- owner-thread bodies ------------------------------------------------------------------------------------
    def _dll_initialize(self, creds: Credentials, routing: bool, trade_api: str, book: str) -> None:
        lib, cb = self.lib, self.callbacks
        # a prototype called with no argument is a NULL function pointer: the slot is left empty, as in the examples
        v1 = cb.trade_v1 if trade_api == "v1" else abi.TNewTradeCallback()
        tiny = cb.tiny_book if book == "tiny" else abi.TTinyBookCallback()
        if routing:
            rc = lib.DLLInitializeLogin(creds.key, creds.user, creds.password, cb.state, None, None, None, v1,
                                        None, None, None, None, None, tiny)
            name = "DLLInitializeLogin"
        else:
            rc = lib.DLLInitializeMarketLogin(creds.key, creds.user, creds.password, cb.state, v1, None, None,
                                              None, None, None, tiny)
            name = "DLLInitializeMarketLogin"
        errors.check(name, rc, REINIT_HINT if self.finalized else "check the activation key and credentials")
        self.initialized, self.finalized, self.init_mode = True, False, name
        # callback setters right after initialize returned NL_OK, as the official examples do
        if trade_api == "v2":
            errors.check("SetTradeCallbackV2", lib.SetTradeCallbackV2(cb.trade_v2))
        if book == "depth":
            errors.check("SetPriceDepthCallback", lib.SetPriceDepthCallback(cb.price_depth))
        errors.check("SetInvalidTickerCallback", lib.SetInvalidTickerCallback(cb.invalid_ticker))

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

    def _dll_finalize(self) -> None:
        if not self.initialized:
            return
        rc = self.lib.DLLFinalize()
        self.initialized, self.finalized = False, True
        self.subscribed.clear()
        errors.check("DLLFinalize", rc)

    def _dll_server_clock(self) -> tuple[int, int, int, int, int, int, int]:
        date = ctypes.c_double()
        parts = [ctypes.c_int32() for _ in range(7)]
        errors.check("GetServerClock", self.lib.GetServerClock(ctypes.byref(date), *map(ctypes.byref, parts)))
        return tuple(p.value for p in parts)  # type: ignore[return-value]

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

    def _finalize_at_exit(self) -> None:
        if self.initialized and self.owner.alive:
            try:
                self.owner.call_blocking(self._dll_finalize, timeout=10.0)
            except Exception as exc:  # exiting anyway; say why
                log.warning("DLLFinalize at exit failed: %s", exc)

    def stats(self) -> dict[str, Any]:
        return {
            "initialized": self.initialized,
            "finalized": self.finalized,
            "conn_state": sorted(abi.STATE_NAMES.get((k, v), f"{k}:{v}") for k, v in self.conn_state.items()),
            "subscribed": sorted(t for t, _ in self.subscribed),
            "invalid_tickers": sorted(self.invalid_tickers),
            **self.callbacks.stats(),
        }
