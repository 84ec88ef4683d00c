"""The ctypes callbacks the DLL calls on its connector thread.

Rules they follow (spec §7, ARCHITECTURE "Threads"):
- stamp `received_ns` first, copy every field into Python values (a `c_wchar_p` field read returns a new `str`),
  build the typed event, hand it to the bridge and return; nothing that points into DLL memory survives the call;
- the only DLL functions called here are the accessors the manual requires inside the callback
  (`TranslateTrade`, `GetPriceDepthSideCount`, `GetPriceGroup`), never a request function;
- never raise into the DLL: an exception is counted and its text kept for `stats()`;
- every callback object is referenced from the module-level `_KEEPALIVE` list for the life of the process, even
  after `DLLFinalize` (a collected thunk crashes the process on the next call);
- the first thing each callback does is read the process-wide gate `GATE[0]`: the at-exit hook closes it before
  it finalizes the DLL, so a callback fired from inside that DLLFinalize, or by a DLL thread still running while the
  interpreter exits, returns without touching any Python object. The gate cannot stop the thunk itself from taking
  the GIL, so the at-exit hook also makes sure no DLL thread outlives the interpreter (session.py);
- `received_ns` comes from app.feed.clock.now_ns (microsecond resolution on every platform).
"""
from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Any, Callable

from app.events import Book, InvalidTicker, State, Trade
from app.feed.b3time import local_to_ns, parse_dll_datetime
from app.feed.clock import now_ns
from app.feed.profitdll import abi
from app.metrics import LatencyHistogram

if TYPE_CHECKING:
    from app.feed.profitdll.session import DllSession

_KEEPALIVE: list[Any] = []
# open while callbacks may enter Python; closed (False) for good by the at-exit hook before DLLFinalize
GATE: list[bool] = [True]

_AGGRESSOR = tuple(abi.AGGRESSOR_BY_TRADE_TYPE.get(i, "unknown") for i in range(256))
_SIDE = ("bid", "ask")
# a depth notification's side byte -> the sides to read: Both (254) is both, None (255) neither, an unknown value
# both (reading one side too many is harmless, missing one is not)
_DEPTH_SIDES: tuple[tuple[int, ...], ...] = tuple(
    (0,) if b == 0 else (1,) if b == 1 else () if b == abi.BOOK_SIDE_NONE else (0, 1) for b in range(256))


def state_name(conn_type: int, result: int) -> str:
    """The manual's name of a state callback's (conn_type, result), or one made of the numbers."""
    return abi.STATE_NAMES.get((conn_type, result), f"STATE_{conn_type}_{result}")


class ThreadStatePinner:
    """Keeps one Python thread state alive per native callback thread.

    By default ctypes creates and destroys a thread state around every callback from a foreign thread (the
    PyGILState_Ensure/Release pair finds none and makes one). Taking one extra PyGILState_Ensure reference the
    first time a thread calls back makes every later callback reuse that state (CPython documents the GILState
    counter semantics). The reference is released by nobody: one thread state per DLL thread per process.
    """

    def __init__(self, enabled: bool, python_threads: frozenset[int] = frozenset()) -> None:
        self.enabled = enabled
        self.pinned: set[int] = set()
        # threads Python created (the owner thread: DLLFinalize calls back on it) own their thread state already
        self.python_threads = python_threads
        self._ensure = ctypes.pythonapi.PyGILState_Ensure
        self._ensure.restype = ctypes.c_int
        self._ensure.argtypes = []

    def pin_current(self) -> None:
        ident = threading.get_ident()
        if ident not in self.pinned:
            self.pinned.add(ident)
            if self.enabled and ident not in self.python_threads:
                self._ensure()


class Callbacks:
    """Builds and owns the callback objects for one DLL session."""

    def __init__(self, session: "DllSession", depth_levels: int, keep_thread_state: bool,
                 flush_add_ends_bracket: bool = True) -> None:
        self.session = session
        self.depth_levels = depth_levels
        self.flush_add_ends_bracket = flush_add_ends_bracket
        self.pinner = ThreadStatePinner(keep_thread_state, frozenset({session.owner.ident or 0}))
        self.depth_books = 0
        self.post_flush_adds = 0
        self.errors = 0
        self.last_error = ""
        self.translate_errors = 0
        self.depth_errors = 0
        self.unrouted = 0
        self.last_ts: dict[str, int] = {}
        # per callback, entry to exit as seen from inside Python (the thunk and the GIL wait come before `received`:
        # only the DLL side can time those - the stand-in does, SimControl.callback_dwell)
        self.dwell = {name: LatencyHistogram() for name in
                      ("state", "trade_v1", "trade_v2", "tiny_book", "price_depth", "invalid_ticker")}
        self.state = self._make(abi.TStateCallback, self._state_fn())
        self.trade_v1 = self._make(abi.TNewTradeCallback, self._trade_v1_fn())
        self.trade_v2 = self._make(abi.TConnectorTradeCallback, self._trade_v2_fn())
        self.tiny_book = self._make(abi.TTinyBookCallback, self._tiny_book_fn())
        self.price_depth = self._make(abi.TConnectorPriceDepthCallback, self._price_depth_fn())
        self.invalid_ticker = self._make(abi.TInvalidTickerCallback, self._invalid_ticker_fn())

    @staticmethod
    def _make(prototype: Any, fn: Callable[..., None]) -> Any:
        cb = prototype(fn)
        _KEEPALIVE.append(cb)
        return cb

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _emit(self, event: Any) -> None:
        bridge = self.session.bridge
        if bridge is None:
            self.unrouted += 1
        else:
            bridge.put(event)

    # Each factory binds what the hot path needs to locals: these run hundreds of thousands of times a second.
    def _state_fn(self) -> Callable[[int, int], None]:
        now, pin, session, gate = now_ns, self.pinner.pin_current, self.session, GATE
        dwell_state = self.dwell["state"].record

        def on_state(conn_type: int, result: int) -> None:
            if not gate[0]:
                return
            received = now()
            try:
                pin()
                session.on_state(conn_type, result)
                self._emit(State(conn_type, result, state_name(conn_type, result), received))
            except BaseException as exc:
                self._failed(exc)
            finally:
                dwell_state(now() - received)

        return on_state

    def _trade_v2_fn(self) -> Callable[..., None]:
        now, pin, gate = now_ns, self.pinner.pin_current, GATE
        translate = self.session.lib.TranslateTrade
        buf = abi.TConnectorTrade()
        ref = ctypes.byref(buf)
        date = buf.TradeDate  # a view into buf, refreshed by every TranslateTrade
        last_ts, aggressor, emit = self.last_ts, _AGGRESSOR, self._emit
        dwell_trade_v2 = self.dwell["trade_v2"].record

        def on_trade_v2(asset: abi.TConnectorAssetIdentifier, handle: int, flags: int) -> None:
            if not gate[0]:
                return
            received = now()
            try:
                pin()
                buf.Version = 0
                rc = translate(handle, ref)
                if rc != 0:
                    self.translate_errors += 1
                    return
                ticker = asset.Ticker
                ts = local_to_ns(date.wYear, date.wMonth, date.wDay, date.wHour, date.wMinute, date.wSecond,
                                 date.wMilliseconds)
                last_ts[ticker] = ts
                emit(Trade(ticker, asset.Exchange, ts, buf.TradeNumber, buf.Price, buf.Quantity, buf.Volume,
                           buf.BuyAgent, buf.SellAgent, aggressor[buf.TradeType], received, bool(flags & 1)))
            except BaseException as exc:
                self._failed(exc)
            finally:
                dwell_trade_v2(now() - received)

        return on_trade_v2

    def _trade_v1_fn(self) -> Callable[..., None]:
        now, pin, gate = now_ns, self.pinner.pin_current, GATE
        last_ts, aggressor, emit = self.last_ts, _AGGRESSOR, self._emit
        dwell_trade_v1 = self.dwell["trade_v1"].record

        def on_trade_v1(asset: abi.TAssetIDRec, date: str, number: int, price: float, volume: float, qty: int,
                        buyer: int, seller: int, trade_type: int, edit: int) -> None:
            if not gate[0]:
                return
            received = now()
            try:
                pin()
                ticker = asset.pwcTicker
                ts = parse_dll_datetime(date)
                last_ts[ticker] = ts
                emit(Trade(ticker, asset.pwcBolsa, ts, number, price, qty, volume, buyer, seller,
                           aggressor[trade_type & 0xFF], received, (edit & 0xFFFF) != 0))
            except BaseException as exc:
                self._failed(exc)
            finally:
                dwell_trade_v1(now() - received)

        return on_trade_v1

    def _tiny_book_fn(self) -> Callable[..., None]:
        now, pin, last_ts, emit, gate = now_ns, self.pinner.pin_current, self.last_ts, self._emit, GATE
        dwell_tiny_book = self.dwell["tiny_book"].record

        def on_tiny_book(asset: abi.TAssetIDRec, price: float, qty: int, side: int) -> None:
            if not gate[0]:
                return
            received = now()
            try:
                pin()
                ticker = asset.pwcTicker
                # the callback has no time: the book is stamped with the ticker's last trade time
                emit(Book(ticker, last_ts.get(ticker, 0), _SIDE[side & 1], ((price, qty, 0),), received, "tiny"))
            except BaseException as exc:
                self._failed(exc)
            finally:
                dwell_tiny_book(now() - received)

        return on_tiny_book

    def _price_depth_fn(self) -> Callable[..., None]:
        now, pin, last_ts, emit, gate = now_ns, self.pinner.pin_current, self.last_ts, self._emit, GATE
        lib = self.session.lib
        side_count, price_group = lib.GetPriceDepthSideCount, lib.GetPriceGroup
        group = abi.TConnectorPriceGroup()
        group_ref = ctypes.byref(group)
        max_levels = self.depth_levels
        sides_of = _DEPTH_SIDES
        bracketed: dict[str, set[int]] = {}  # ticker -> sides changed since Prepare, read at Flush
        # ticker -> side of the Flush just delivered: the Add right after it repeats the smallest index the bracket
        # changed (vendor Delphi example), it is the bracket's tail and not a change of its own
        after_flush: dict[str, int] = {}
        tail_ends_bracket = self.flush_add_ends_bracket

        def read_side(asset_ref: Any, side: int) -> tuple[tuple[float, int, int], ...] | None:
            n = side_count(asset_ref, side)
            if n < 0:
                self.depth_errors += 1
                return None
            levels = []
            for position in range(min(n, max_levels + 1)):
                group.Version = 0
                if price_group(asset_ref, side, position, group_ref) != 0:
                    self.depth_errors += 1
                    break
                if group.PriceGroupFlags & abi.PG_IS_THEORIC:
                    continue  # the auction's theoretical level (price -INF) is not a resting level
                levels.append((group.Price, group.Quantity, group.Count))
                if len(levels) == max_levels:
                    break
            return tuple(levels)
        dwell_price_depth = self.dwell["price_depth"].record

        def on_price_depth(asset: abi.TConnectorAssetIdentifier, side: int, position: int, update: int) -> None:
            if not gate[0]:
                return
            received = now()
            try:
                pin()
                ticker = asset.Ticker
                flushed = after_flush.pop(ticker, -1)
                if update == abi.UPDATE_ADD and flushed == side and tail_ends_bracket:
                    self.post_flush_adds += 1
                    return
                if update == abi.UPDATE_PREPARE:
                    bracketed[ticker] = set()
                    return
                if update == abi.UPDATE_FLUSH:
                    sides = bracketed.pop(ticker, set()).union(sides_of[side])
                    after_flush[ticker] = side
                elif ticker in bracketed:
                    bracketed[ticker].update(sides_of[side])
                    return
                else:
                    sides = sides_of[side]
                asset_ref = ctypes.byref(asset)
                ts = last_ts.get(ticker, 0)
                for s in sorted(sides):
                    levels = read_side(asset_ref, s)
                    if levels is not None:
                        self.depth_books += 1
                        emit(Book(ticker, ts, _SIDE[s], levels, received, "depth"))
            except BaseException as exc:
                self._failed(exc)
            finally:
                dwell_price_depth(now() - received)

        return on_price_depth

    def _invalid_ticker_fn(self) -> Callable[..., None]:
        now, pin, session, gate = now_ns, self.pinner.pin_current, self.session, GATE
        dwell_invalid_ticker = self.dwell["invalid_ticker"].record

        def on_invalid_ticker(asset: abi.TConnectorAssetIdentifier) -> None:
            if not gate[0]:
                return
            received = now()
            try:
                pin()
                ticker, exchange = asset.Ticker, asset.Exchange
                session.invalid_tickers.add(ticker)
                self._emit(InvalidTicker(ticker, exchange, received))
            except BaseException as exc:
                self._failed(exc)
            finally:
                dwell_invalid_ticker(now() - received)

        return on_invalid_ticker

    def stats(self) -> dict[str, Any]:
        return {
            "callback_errors": self.errors,
            "last_callback_error": self.last_error,
            "translate_errors": self.translate_errors,
            "depth_errors": self.depth_errors,
            "depth_books": self.depth_books,
            "post_flush_adds": self.post_flush_adds,
            "unrouted": self.unrouted,
            "pinned_threads": len(self.pinner.pinned - self.pinner.python_threads) if self.pinner.enabled else 0,
            "bridge_path": "ctypes",
            "dwell": {name: hist.summary_us() for name, hist in self.dwell.items() if hist.count},
        }
