"""The routing half of the ProfitDLL C ABI (spec §3.4, §4, §5.2-§5.7, §6.2, §6.4) as ctypes declarations.

Split from abi.py only for size; abi.py merges these tables into X64_LAYOUT / STRUCTS / FUNCTIONS so the ABI test
checks them against the spec's x64 table like the market-data ones.

Inline `WideChar[100]` arrays (TConnectorAccountIdentifierOut) are declared as UTF-16 code units (c_uint16), not
c_wchar: c_wchar is 4 bytes on Linux, and the layout must be the Windows one byte for byte on both sides. String
buffers the DLL fills (the *Out structs' two-call pattern) are c_void_p: the binding owns them and points the DLL at
them; a c_wchar_p field would hand the DLL a Python string's storage to write into.
"""
from __future__ import annotations

from ctypes import POINTER, Structure, c_double, c_int32, c_int64, c_ssize_t, c_ubyte, c_uint16, c_uint32, c_void_p, \
    c_wchar_p

from app.feed.profitdll import abi
from app.feed.profitdll.abi import FUNCTYPE, SYSTEMTIME, TConnectorAssetIdentifier


class TConnectorAccountIdentifier(Structure):
    _fields_ = [("Version", c_ubyte), ("BrokerID", c_int32), ("AccountID", c_wchar_p), ("SubAccountID", c_wchar_p),
                ("Reserved", c_int64)]


class TConnectorAccountIdentifierOut(Structure):
    _fields_ = [("Version", c_ubyte), ("BrokerID", c_int32), ("AccountID", c_uint16 * 100),
                ("AccountIDLength", c_int32), ("SubAccountID", c_uint16 * 100), ("SubAccountIDLength", c_int32),
                ("Reserved", c_int64)]


class TConnectorAssetIdentifierOut(Structure):
    _fields_ = [("Version", c_ubyte), ("Ticker", c_void_p), ("TickerLength", c_int32), ("Exchange", c_void_p),
                ("ExchangeLength", c_int32), ("FeedType", c_ubyte)]


class TConnectorOrderIdentifier(Structure):
    _fields_ = [("Version", c_ubyte), ("LocalOrderID", c_int64), ("ClOrderID", c_wchar_p)]


class TConnectorSendOrder(Structure):  # V2 (120 bytes); V0/V1 are the first 112
    _fields_ = [("Version", c_ubyte), ("AccountID", TConnectorAccountIdentifier),
                ("AssetID", TConnectorAssetIdentifier), ("Password", c_wchar_p), ("OrderType", c_ubyte),
                ("OrderSide", c_ubyte), ("Price", c_double), ("StopPrice", c_double), ("Quantity", c_int64),
                ("MessageID", c_int64)]


class TConnectorChangeOrder(Structure):  # V1 (104); V0 is the first 96
    _fields_ = [("Version", c_ubyte), ("AccountID", TConnectorAccountIdentifier),
                ("OrderID", TConnectorOrderIdentifier), ("Password", c_wchar_p), ("Price", c_double),
                ("StopPrice", c_double), ("Quantity", c_int64), ("MessageID", c_int64)]


class TConnectorCancelOrder(Structure):  # V1 (80); V0 is the first 72
    _fields_ = [("Version", c_ubyte), ("AccountID", TConnectorAccountIdentifier),
                ("OrderID", TConnectorOrderIdentifier), ("Password", c_wchar_p), ("MessageID", c_int64)]


class TConnectorCancelAllOrders(Structure):
    _fields_ = [("Version", c_ubyte), ("AccountID", TConnectorAccountIdentifier), ("Password", c_wchar_p)]


class TConnectorZeroPosition(Structure):  # V2 (104)
    _fields_ = [("Version", c_ubyte), ("AccountID", TConnectorAccountIdentifier),
                ("AssetID", TConnectorAssetIdentifier), ("Password", c_wchar_p), ("Price", c_double),
                ("PositionType", c_ubyte), ("MessageID", c_int64)]


class TConnectorTradingAccountOut(Structure):  # V1 (96)
    _fields_ = [("Version", c_ubyte), ("AccountID", TConnectorAccountIdentifier), ("BrokerName", c_void_p),
                ("BrokerNameLength", c_int32), ("OwnerName", c_void_p), ("OwnerNameLength", c_int32),
                ("SubOwnerName", c_void_p), ("SubOwnerNameLength", c_int32), ("AccountFlags", c_uint32),
                ("AccountType", c_ubyte)]


class TConnectorTradingAccountPosition(Structure):  # V2 (216)
    _fields_ = [("Version", c_ubyte), ("AccountID", TConnectorAccountIdentifier),
                ("AssetID", TConnectorAssetIdentifier), ("OpenQuantity", c_int64), ("OpenAveragePrice", c_double),
                ("OpenSide", c_ubyte), ("DailyAverageSellPrice", c_double), ("DailySellQuantity", c_int64),
                ("DailyAverageBuyPrice", c_double), ("DailyBuyQuantity", c_int64)] + [
        (name, c_int64) for name in ("DailyQuantityD1", "DailyQuantityD2", "DailyQuantityD3", "DailyQuantityBlocked",
                                     "DailyQuantityPending", "DailyQuantityAlloc", "DailyQuantityProvision",
                                     "DailyQuantity", "DailyQuantityAvailable")] + [
        ("PositionType", c_ubyte), ("EventID", c_int64)]


_ORDER_TAIL = [("Quantity", c_int64), ("TradedQuantity", c_int64), ("LeavesQuantity", c_int64), ("Price", c_double),
               ("StopPrice", c_double), ("AveragePrice", c_double), ("OrderSide", c_ubyte), ("OrderType", c_ubyte),
               ("OrderStatus", c_ubyte), ("ValidityType", c_ubyte), ("Date", SYSTEMTIME), ("LastUpdate", SYSTEMTIME),
               ("CloseDate", SYSTEMTIME), ("ValidityDate", SYSTEMTIME)]


class TConnectorOrder(Structure):  # V1 (232): what EnumerateAllOrders hands its proc
    _fields_ = [("Version", c_ubyte), ("OrderID", TConnectorOrderIdentifier),
                ("AccountID", TConnectorAccountIdentifier), ("AssetID", TConnectorAssetIdentifier)] + _ORDER_TAIL + [
        ("TextMessage", c_wchar_p), ("EventID", c_int64)]


class TConnectorOrderOut(Structure):  # V1 (640): GetOrderDetails, two calls
    _fields_ = [("Version", c_ubyte), ("OrderID", TConnectorOrderIdentifier),
                ("AccountID", TConnectorAccountIdentifierOut), ("AssetID", TConnectorAssetIdentifierOut)] + \
        _ORDER_TAIL + [("TextMessage", c_void_p), ("TextMessageLength", c_int32), ("EventID", c_int64)]


class TConnectorTradingMessageResult(Structure):
    _fields_ = [("Version", c_ubyte), ("BrokerID", c_int32), ("OrderID", TConnectorOrderIdentifier),
                ("MessageID", c_int64), ("ResultCode", c_ubyte), ("Message", c_wchar_p), ("MessageLength", c_int32)]


_ACCOUNT_ID = {"Version": 0, "BrokerID": 4, "AccountID": 8, "SubAccountID": 16, "Reserved": 24}
_ORDER_TAIL_OFFSETS = ("Quantity", "TradedQuantity", "LeavesQuantity", "Price", "StopPrice", "AveragePrice",
                       "OrderSide", "OrderType", "OrderStatus", "ValidityType", "Date", "LastUpdate", "CloseDate",
                       "ValidityDate")


def _tail(start: int) -> dict[str, int]:
    offsets = [0, 8, 16, 24, 32, 40, 48, 49, 50, 51, 52, 68, 84, 100]
    return {name: start + off for name, off in zip(_ORDER_TAIL_OFFSETS, offsets)}


# spec §5.2-§5.7 x64: name -> (size, {field: offset})
X64_LAYOUT: dict[str, tuple[int, dict[str, int]]] = {
    "TConnectorAccountIdentifier": (32, _ACCOUNT_ID),
    "TConnectorAccountIdentifierOut": (424, {"Version": 0, "BrokerID": 4, "AccountID": 8, "AccountIDLength": 208,
                                             "SubAccountID": 212, "SubAccountIDLength": 412, "Reserved": 416}),
    "TConnectorAssetIdentifierOut": (40, {"Version": 0, "Ticker": 8, "TickerLength": 16, "Exchange": 24,
                                          "ExchangeLength": 32, "FeedType": 36}),
    "TConnectorOrderIdentifier": (24, {"Version": 0, "LocalOrderID": 8, "ClOrderID": 16}),
    "TConnectorSendOrder": (120, {"Version": 0, "AccountID": 8, "AssetID": 40, "Password": 72, "OrderType": 80,
                                  "OrderSide": 81, "Price": 88, "StopPrice": 96, "Quantity": 104, "MessageID": 112}),
    "TConnectorChangeOrder": (104, {"Version": 0, "AccountID": 8, "OrderID": 40, "Password": 64, "Price": 72,
                                    "StopPrice": 80, "Quantity": 88, "MessageID": 96}),
    "TConnectorCancelOrder": (80, {"Version": 0, "AccountID": 8, "OrderID": 40, "Password": 64, "MessageID": 72}),
    "TConnectorCancelAllOrders": (48, {"Version": 0, "AccountID": 8, "Password": 40}),
    "TConnectorZeroPosition": (104, {"Version": 0, "AccountID": 8, "AssetID": 40, "Password": 72, "Price": 80,
                                     "PositionType": 88, "MessageID": 96}),
    "TConnectorTradingAccountOut": (96, {"Version": 0, "AccountID": 8, "BrokerName": 40, "BrokerNameLength": 48,
                                         "OwnerName": 56, "OwnerNameLength": 64, "SubOwnerName": 72,
                                         "SubOwnerNameLength": 80, "AccountFlags": 84, "AccountType": 88}),
    "TConnectorTradingAccountPosition": (216, {"Version": 0, "AccountID": 8, "AssetID": 40, "OpenQuantity": 72,
                                               "OpenAveragePrice": 80, "OpenSide": 88, "DailyAverageSellPrice": 96,
                                               "DailySellQuantity": 104, "DailyAverageBuyPrice": 112,
                                               "DailyBuyQuantity": 120, "DailyQuantityD1": 128,
                                               "DailyQuantityAvailable": 192, "PositionType": 200, "EventID": 208}),
    "TConnectorOrder": (232, {"Version": 0, "OrderID": 8, "AccountID": 32, "AssetID": 64, **_tail(96),
                              "TextMessage": 216, "EventID": 224}),
    "TConnectorOrderOut": (640, {"Version": 0, "OrderID": 8, "AccountID": 32, "AssetID": 456, **_tail(496),
                                 "TextMessage": 616, "TextMessageLength": 624, "EventID": 632}),
    "TConnectorTradingMessageResult": (64, {"Version": 0, "BrokerID": 4, "OrderID": 8, "MessageID": 32,
                                            "ResultCode": 40, "Message": 48, "MessageLength": 56}),
}
STRUCTS = {name: globals()[name] for name in X64_LAYOUT}

# Callbacks (§4). TAccountCallback is the DLLInitializeLogin slot (and SetAccountCallback); the order callback gets
# its identifier by value; the trading-message result comes as a POINTER (MAN42, DPR2), not by value.
TAccountCallback = FUNCTYPE(None, c_int32, c_wchar_p, c_wchar_p, c_wchar_p)
TConnectorOrderCallback = FUNCTYPE(None, TConnectorOrderIdentifier)
TConnectorAccountCallback = FUNCTYPE(None, TConnectorAccountIdentifier)
TConnectorTradingMessageResultCallback = FUNCTYPE(None, POINTER(TConnectorTradingMessageResult))
# BOOL return (4 bytes); LPARAM is pointer-sized
TConnectorEnumerateOrdersProc = FUNCTYPE(c_int32, POINTER(TConnectorOrder), c_ssize_t)

_ACC_P = POINTER(TConnectorAccountIdentifier)
FUNCTIONS: dict[str, tuple[object, list[object]]] = {
    "SendOrder": (c_int64, [POINTER(TConnectorSendOrder)]),
    "SendChangeOrderV2": (c_int32, [POINTER(TConnectorChangeOrder)]),
    "SendCancelOrderV2": (c_int32, [POINTER(TConnectorCancelOrder)]),
    "SendCancelAllOrdersV2": (c_int32, [POINTER(TConnectorCancelAllOrders)]),
    "SendZeroPositionV2": (c_int64, [POINTER(TConnectorZeroPosition)]),
    "GetPositionV2": (c_int32, [POINTER(TConnectorTradingAccountPosition)]),
    "GetOrderDetails": (c_int32, [POINTER(TConnectorOrderOut)]),
    "GetAccountCount": (c_int32, []),
    "GetAccounts": (c_int32, [c_int32, c_int32, c_int32, POINTER(TConnectorAccountIdentifierOut)]),
    "GetAccountDetails": (c_int32, [POINTER(TConnectorTradingAccountOut)]),
    "EnumerateAllOrders": (c_int32, [_ACC_P, c_ubyte, c_ssize_t, TConnectorEnumerateOrdersProc]),
    "SetOrderCallback": (c_int32, [TConnectorOrderCallback]),
    "SetAccountCallback": (c_int32, [TAccountCallback]),
    "SetOrderHistoryCallback": (c_int32, [TConnectorAccountCallback]),
}
# Only MAN42 and one Delphi wrapper document it (spec §10): resolved when present, never required.
OPTIONAL_EXPORTS: dict[str, tuple[object, list[object]]] = {
    "SetTradingMessageResultCallback": (c_int32, [TConnectorTradingMessageResultCallback]),
}

# Enums (§6.2, §6.4)
ORDER_TYPE_V1 = {"market": 1, "limit": 2, "stop_limit": 4}
ORDER_TYPE_NAME = {1: "market", 2: "limit", 4: "stop_limit"}
SIDE_V1 = {"buy": 1, "sell": 2}
SIDE_NAME = {1: "buy", 2: "sell"}
POSITION_DAY_TRADE, POSITION_CONSOLIDATED = 1, 2
ORDER_STATUS = {0: "New", 1: "PartiallyFilled", 2: "Filled", 3: "DoneForDay", 4: "Canceled", 5: "Replaced",
                6: "PendingCancel", 7: "Stopped", 8: "Rejected", 9: "Suspended", 10: "PendingNew", 11: "Calculated",
                12: "Expired", 13: "AcceptedForBidding", 14: "PendingReplace", 15: "PartiallyFilledCanceled",
                16: "Received", 17: "PartiallyFilledExpired", 18: "PartiallyFilledRejected", 200: "Unknown",
                201: "HadesCreated", 202: "BrokerSent", 203: "ClientCreated", 204: "OrderNotCreated",
                205: "CanceledByAdmin", 206: "DelayFixGateway", 207: "ScheduledOrder"}
TRADING_RESULT = {0: "Starting", 1: "NotConnected", 2: "SentToHadesProxy", 3: "RejectedMercury", 4: "SentToHades",
                  5: "RejectedHades", 6: "SentToBroker", 7: "RejectedBroker", 8: "SentToMarket",
                  9: "RejectedMarket", 10: "Accepted", 11: "MarginTypeChangeRejected",
                  12: "PositionModeChangeRejected", 13: "NeedUpdateFromServer", 17: "SentToWallet",
                  24: "BlockedByRisk", 200: "Unknown"}

# one ABI table for the tests and the loader: merged into abi's (abi.py imports this module at its end)
abi.X64_LAYOUT.update(X64_LAYOUT)
abi.STRUCTS.update(STRUCTS)
abi.FUNCTIONS.update(FUNCTIONS)
abi.OPTIONAL_EXPORTS.update(OPTIONAL_EXPORTS)
