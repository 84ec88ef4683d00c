"""NL_* result codes (spec §6.6) as named exceptions carrying the code and the function that returned it."""
from __future__ import annotations

from app.feed.base import FeedError


def _s32(code: int) -> int:
    return code - (1 << 32) if code >= 1 << 31 else code


NL_OK = 0
# name -> (unsigned hex value, meaning)
_CODES: dict[str, tuple[int, str]] = {
    "NL_INTERNAL_ERROR": (0x80000001, "internal error"),
    "NL_NOT_INITIALIZED": (0x80000002, "not initialized"),
    "NL_INVALID_ARGS": (0x80000003, "invalid arguments"),
    "NL_WAITING_SERVER": (0x80000004, "waiting for server data"),
    "NL_NO_LOGIN": (0x80000005, "no login"),
    "NL_NO_LICENSE": (0x80000006, "no license"),
    "NL_PASSWORD_HASH_SHA1": (0x80000007, "password hash SHA1"),
    "NL_PASSWORD_HASH_MD5": (0x80000008, "password hash MD5"),
    "NL_OUT_OF_RANGE": (0x80000009, "value out of range"),
    "NL_MARKET_ONLY": (0x8000000A, "license has no routing"),
    "NL_NO_POSITION": (0x8000000B, "no position"),
    "NL_NOT_FOUND": (0x8000000C, "not found"),
    "NL_VERSION_NOT_SUPPORTED": (0x8000000D, "struct version not supported"),
    "NL_OCO_NO_RULES": (0x8000000E, "OCO without rules"),
    "NL_EXCHANGE_UNKNOWN": (0x8000000F, "unknown exchange"),
    "NL_NO_OCO_DEFINED": (0x80000010, "no OCO defined"),
    "NL_INVALID_SERIE": (0x80000011, "invalid series"),
    "NL_LICENSE_NOT_ALLOWED": (0x80000012, "feature not in license"),
    "NL_NOT_HARD_LOGOUT": (0x80000013, "not in hard logout"),
    "NL_SERIE_NO_HISTORY": (0x80000014, "series has no history"),
    "NL_ASSET_NO_DATA": (0x80000015, "asset has no data"),
    "NL_SERIE_NO_DATA": (0x80000016, "series has no data"),
    "NL_HAS_STRATEGY_RUNNING": (0x80000017, "a strategy is running"),
    "NL_SERIE_NO_MORE_HISTORY": (0x80000018, "no more history"),
    "NL_SERIE_MAX_COUNT": (0x80000019, "series at max size"),
    "NL_DUPLICATE_RESOURCE": (0x8000001A, "duplicate resource"),
    "NL_UNSIGNED_CONTRACT": (0x8000001B, "unsigned contract"),
    "NL_NO_PASSWORD": (0x8000001C, "no password"),
    "NL_NO_USER": (0x8000001D, "no user"),
    "NL_FILE_ALREADY_EXISTS": (0x8000001E, "file already exists"),
    "NL_INVALID_TICKER": (0x8000001F, "invalid ticker"),
    "NL_NOT_MASTER_ACCOUNT": (0x80000020, "not a master account"),
    "NL_HISTORY_PERIOD_LIMIT": (0x8000002E, "history start older than 30 days"),
}


class NLError(FeedError):
    """A DLL function returned an NResult other than NL_OK."""

    name = "NL_UNKNOWN"

    def __init__(self, function: str, code: int, hint: str = "") -> None:
        self.function = function
        self.code = code
        meaning = _MEANING.get(code) or ("legacy " + _LEGACY[code] if code in _LEGACY else "unknown code")
        msg = f"{function} returned {self.name} ({code} / 0x{code & 0xFFFFFFFF:08X}: {meaning})"
        super().__init__(f"{msg}; {hint}" if hint else msg)


_MEANING: dict[int, str] = {}
_BY_CODE: dict[int, type[NLError]] = {}


def _exception_name(nl_name: str) -> str:
    return "".join(part.capitalize() for part in nl_name[3:].split("_")) + "Error"


for _name, (_hex, _meaning) in _CODES.items():
    _code = _s32(_hex)
    _cls = type(_exception_name(_name), (NLError,), {"name": _name, "__doc__": f"{_name}: {_meaning}."})
    globals()[_cls.__name__] = _cls
    globals()[_name] = _code
    _BY_CODE[_code] = _cls
    _MEANING[_code] = _meaning


def code_name(code: int) -> str:
    cls = _BY_CODE.get(code)
    if cls:
        return cls.name
    if code == NL_OK:
        return "NL_OK"
    return _LEGACY.get(code, f"NL_UNKNOWN({code})")


# Very old builds (and the 2023 example) used small positive codes; a check for "negative = error" would let them
# pass as success, so every NResult function is checked for exactly NL_OK (spec §6.6).
_LEGACY: dict[int, str] = {80: "NL_ERR_INIT", 90: "NL_ERR_INVALID_ARGS", 100: "NL_ERR_INTERNAL_ERROR"}


def check(function: str, code: int, hint: str = "") -> int:
    """For functions returning an NResult: NL_OK passes, any other code (negative or a legacy positive one such as
    80) raises the named NLError."""
    if code == NL_OK:
        return code
    raise _BY_CODE.get(code, NLError)(function, code, hint)


def check_count(function: str, code: int, hint: str = "") -> int:
    """For the few functions whose non-negative result is a value (GetPriceDepthSideCount, GetAgentName...)."""
    if code >= 0:
        return code
    raise _BY_CODE.get(code, NLError)(function, code, hint)


def error_class(code: int) -> type[NLError]:
    return _BY_CODE.get(code, NLError)
