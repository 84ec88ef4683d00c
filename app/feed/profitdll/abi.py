"""The ProfitDLL C ABI as ctypes declarations (spec §2-§5), shared by the real DLL and the native stand-in.

Only what the binding uses is declared, and all of it exactly: every function has argtypes and restype, structs
passed by value are declared by value (a POINTER happens to work on Win64 and crashes elsewhere, spec §7.4).
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (
    POINTER,
    Structure,
    c_double,
    c_int32,
    c_int64,
    c_ubyte,
    c_uint32,
    c_uint16,
    c_void_p,
    c_wchar_p,
)

# stdcall on x86 Windows needs WINFUNCTYPE (callee pops); elsewhere there is one convention and no WINFUNCTYPE
if os.name == "nt":
    FUNCTYPE = ctypes.WINFUNCTYPE  # type: ignore[attr-defined]
else:
    FUNCTYPE = ctypes.CFUNCTYPE


class TAssetIDRec(Structure):
    # Delphi declares it packed (20 bytes); the official examples declare it unpacked (24). Field offsets are the
    # same and by-value passing rounds to 8-byte slots either way, so the unpacked form is used (libffi cannot
    # describe packed aggregates faithfully).
    _fields_ = [("pwcTicker", c_wchar_p), ("pwcBolsa", c_wchar_p), ("nFeed", c_int32)]


class TConnectorAssetIdentifier(Structure):
    _fields_ = [("Version", c_ubyte), ("Ticker", c_wchar_p), ("Exchange", c_wchar_p), ("FeedType", c_ubyte)]


class SYSTEMTIME(Structure):
    _fields_ = [
        ("wYear", c_uint16),
        ("wMonth", c_uint16),
        ("wDayOfWeek", c_uint16),
        ("wDay", c_uint16),
        ("wHour", c_uint16),
        ("wMinute", c_uint16),
        ("wSecond", c_uint16),
        ("wMilliseconds", c_uint16),
    ]


class TConnectorTrade(Structure):
    _fields_ = [
        ("Version", c_ubyte),
        ("TradeDate", SYSTEMTIME),
        ("TradeNumber", c_uint32),
        ("Price", c_double),
        ("Quantity", c_int64),
        ("Volume", c_double),
        ("BuyAgent", c_int32),
        ("SellAgent", c_int32),
        ("TradeType", c_ubyte),
    ]


class TConnectorPriceGroup(Structure):
    _fields_ = [
        ("Version", c_ubyte),
        ("Price", c_double),
        ("Count", c_uint32),
        ("Quantity", c_int64),  # Int64: the official Python example's c_long truncates on Windows
        ("PriceGroupFlags", c_uint32),
    ]


# x64 layout from the spec (§5): name -> (size, {field: offset}); the ABI tests compare against this table
X64_LAYOUT: dict[str, tuple[int, dict[str, int]]] = {
    "TAssetIDRec": (24, {"pwcTicker": 0, "pwcBolsa": 8, "nFeed": 16}),
    "TConnectorAssetIdentifier": (32, {"Version": 0, "Ticker": 8, "Exchange": 16, "FeedType": 24}),
    "SYSTEMTIME": (16, {"wYear": 0, "wMonth": 2, "wDayOfWeek": 4, "wDay": 6, "wHour": 8, "wMinute": 10,
                        "wSecond": 12, "wMilliseconds": 14}),
    "TConnectorTrade": (64, {"Version": 0, "TradeDate": 2, "TradeNumber": 20, "Price": 24, "Quantity": 32,
                             "Volume": 40, "BuyAgent": 48, "SellAgent": 52, "TradeType": 56}),
    "TConnectorPriceGroup": (40, {"Version": 0, "Price": 8, "Count": 16, "Quantity": 24, "PriceGroupFlags": 32}),
}
STRUCTS = {
    "TAssetIDRec": TAssetIDRec,
    "TConnectorAssetIdentifier": TConnectorAssetIdentifier,
    "SYSTEMTIME": SYSTEMTIME,
    "TConnectorTrade": TConnectorTrade,
    "TConnectorPriceGroup": TConnectorPriceGroup,
}

# Callback prototypes (§4). Char flags (bEdit) travel in a full argument slot; c_int32 reads them safely.
TStateCallback = FUNCTYPE(None, c_int32, c_int32)
TNewTradeCallback = FUNCTYPE(
    None, TAssetIDRec, c_wchar_p, c_uint32, c_double, c_double, c_int32, c_int32, c_int32, c_int32, c_int32
)
TConnectorTradeCallback = FUNCTYPE(None, TConnectorAssetIdentifier, c_void_p, c_uint32)
TTinyBookCallback = FUNCTYPE(None, TAssetIDRec, c_double, c_int32, c_int32)
TConnectorPriceDepthCallback = FUNCTYPE(None, TConnectorAssetIdentifier, c_ubyte, c_int32, c_ubyte)
TInvalidTickerCallback = FUNCTYPE(None, TConnectorAssetIdentifier)
TSystemHealthCallback = FUNCTYPE(None, c_int32)

# Exported functions the binding resolves: name -> (restype, argtypes). Unused init slots are passed as NULL
# through c_void_p, which is what the official examples do (None in the unused slots).
_W = c_wchar_p
_ASSET_P = POINTER(TConnectorAssetIdentifier)
FUNCTIONS: dict[str, tuple[object, list[object]]] = {
    "DLLInitializeLogin": (c_int32, [_W, _W, _W, TStateCallback, c_void_p, c_void_p, c_void_p, TNewTradeCallback,
                                     c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, TTinyBookCallback]),
    "DLLInitializeMarketLogin": (c_int32, [_W, _W, _W, TStateCallback, TNewTradeCallback, c_void_p, c_void_p,
                                           c_void_p, c_void_p, c_void_p, TTinyBookCallback]),
    "DLLFinalize": (c_int32, []),
    "SubscribeTicker": (c_int32, [_W, _W]),
    "UnsubscribeTicker": (c_int32, [_W, _W]),
    "SubscribePriceDepth": (c_int32, [_ASSET_P]),
    "UnsubscribePriceDepth": (c_int32, [_ASSET_P]),
    "GetPriceDepthSideCount": (c_int32, [_ASSET_P, c_ubyte]),
    "GetPriceGroup": (c_int32, [_ASSET_P, c_ubyte, c_int32, POINTER(TConnectorPriceGroup)]),
    "SetStateCallback": (c_int32, [TStateCallback]),
    "SetTradeCallback": (c_int32, [TNewTradeCallback]),
    "SetTradeCallbackV2": (c_int32, [TConnectorTradeCallback]),
    "SetTinyBookCallback": (c_int32, [TTinyBookCallback]),
    "SetPriceDepthCallback": (c_int32, [TConnectorPriceDepthCallback]),
    "SetInvalidTickerCallback": (c_int32, [TInvalidTickerCallback]),
    "TranslateTrade": (c_int32, [c_void_p, POINTER(TConnectorTrade)]),
    "GetServerClock": (c_int32, [POINTER(c_double)] + [POINTER(c_int32)] * 7),
}

# Exports resolved when the library has them and never required (routing_abi: SetTradingMessageResultCallback)
OPTIONAL_EXPORTS: dict[str, tuple[object, list[object]]] = {}

# Exports that 4.0.0.41 added (MAN42). The builds before it include the ones whose change log later fixed "price
# depth always returning the buy side" (4.0.0.34), "SetTradeCallbackV2 no longer receiving trades" and "no full book
# after Unsubscribe/SubscribePriceDepth" (4.0.0.38) - exactly our default paths - and no build exposes its version
# number, so these names are the test: present = 4.0.0.41 or newer.
FIXED_BUILD = "4.0.0.41"
FIXED_BUILD_EXPORTS: dict[str, tuple[object, list[object]]] = {
    "GetHealthStatus": (c_int32, [POINTER(c_int32)]),
    "SetHealthCallback": (c_int32, [TSystemHealthCallback]),
}

# Constants (§6)
CONN_LOGIN, CONN_ROUTING, CONN_MARKET, CONN_ACTIVATION = 0, 1, 2, 3
MARKET_DISCONNECTED, MARKET_CONNECTING, MARKET_WAITING, MARKET_NOT_LOGGED, MARKET_CONNECTED = 0, 1, 2, 3, 4
MARKET_PERFORMANCE_WARNING, MARKET_PARTIAL_CONNECTED = 5, 6
LOGIN_CONNECTED, LOGIN_UNKNOWN_ERR = 0, 200
ACTIVATE_VALID, ACTIVATE_INVALID = 0, 1
ROUTING_BROKER_CONNECTED = 5
TC_IS_EDIT, TC_LAST_PACKET = 1, 2
BOOK_SIDE_BUY, BOOK_SIDE_SELL, BOOK_SIDE_BOTH, BOOK_SIDE_NONE = 0, 1, 254, 255
UPDATE_ADD, UPDATE_EDIT, UPDATE_DELETE, UPDATE_INSERT, UPDATE_FULLBOOK = 0, 1, 2, 3, 4
UPDATE_PREPARE, UPDATE_FLUSH, UPDATE_THEORIC, UPDATE_DELETE_FROM = 5, 6, 7, 8
PG_IS_THEORIC = 1

STATE_NAMES: dict[tuple[int, int], str] = {
    (0, 0): "LOGIN_CONNECTED", (0, 1): "LOGIN_INVALID", (0, 2): "LOGIN_INVALID_PASS", (0, 3): "LOGIN_BLOCKED_PASS",
    (0, 4): "LOGIN_EXPIRED_PASS", (0, 200): "LOGIN_UNKNOWN_ERR",
    (1, 0): "ROUTING_DISCONNECTED", (1, 1): "ROUTING_CONNECTING", (1, 2): "ROUTING_CONNECTED",
    (1, 3): "ROUTING_BROKER_DISCONNECTED", (1, 4): "ROUTING_BROKER_CONNECTING", (1, 5): "ROUTING_BROKER_CONNECTED",
    (2, 0): "MARKET_DISCONNECTED", (2, 1): "MARKET_CONNECTING", (2, 2): "MARKET_WAITING",
    (2, 3): "MARKET_NOT_LOGGED", (2, 4): "MARKET_CONNECTED", (2, 5): "MARKET_PERFORMANCE_WARNING",
    (2, 6): "MARKET_PARTIAL_CONNECTED",
    (3, 0): "ACTIVATE_VALID", (3, 1): "ACTIVATE_INVALID",
}

# nTradeType / TradeType (§6.3) -> our aggressor words; everything else is "unknown"
AGGRESSOR_BY_TRADE_TYPE: dict[int, str] = {1: "direct", 2: "buy", 3: "sell", 4: "auction"}

# the routing declarations (routing_abi.py) join the tables above; imported last because it builds on this module
from app.feed.profitdll import routing_abi  # noqa: E402

ROUTING = routing_abi  # the merged module, for readers that want the routing names alone
