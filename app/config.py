"""config.toml -> typed, validated Config.

Every section is a msgspec Struct with `forbid_unknown_fields`, so a typo is an error, not a silently ignored key.
Errors surface as one `ConfigError` line naming the key (`feed.tickers`) and what to do; the CLI exits with code 2.
Secrets never live here: ProfitDLL credentials come from the environment only (see `app.feed.profitdll.credentials`).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]

_TICKER = re.compile(r"^[A-Z0-9]{3,12}$")


class ConfigError(Exception):
    """A bad configuration value; the message is one line naming the key and the fix."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class FeedConfig(_Section):
    # simulator: the native stand-in DLL; profitdll: the real DLL (Windows); replay: a journal or Profit CSV
    kind: Literal["simulator", "profitdll", "replay"] = "simulator"
    # roots (WDO, WIN) resolve to the current liquid contract at start; full codes (WDOZ26, WINFUT) are used as is
    tickers: list[str] = msgspec.field(default_factory=lambda: ["WDO", "WIN"])
    exchange: str = "F"
    # v2: SetTradeCallbackV2 + TranslateTrade inside the callback; v1: the TNewTradeCallback passed at initialize
    trade_api: Literal["v1", "v2"] = "v2"
    # none | tiny (best bid/ask callback) | depth (SubscribePriceDepth, levels read inside the callback)
    book: Literal["none", "tiny", "depth"] = "depth"
    depth_levels: Annotated[int, msgspec.Meta(ge=1, le=50)] = 5
    # "thread": DLL owner thread in this process; "process": in a supervised child process
    isolation: Literal["thread", "process"] = "thread"
    # how long to wait for the DLL to report market connected before giving up
    connect_timeout: Positive = 30.0
    # routing login (DLLInitializeLogin) instead of market-data only; needs a routing-enabled key
    routing: bool = False
    # real DLL only: path to ProfitDLL64.dll / ProfitDLL.dll ("" = search beside the app and in PATH)
    dll_path: str = ""
    # keep one Python thread state alive on the DLL's callback thread instead of one per callback
    keep_thread_state: bool = True

    def __post_init__(self) -> None:
        if not self.tickers:
            raise ValueError("needs at least one ticker, e.g. tickers = [\"WDO\", \"WIN\"]")
        for t in self.tickers:
            if not _TICKER.match(t):
                raise ValueError(f"ticker {t!r} is not a B3 code (letters/digits, e.g. WDO, WDOZ26, WINFUT)")
        if len(self.exchange) != 1 or not self.exchange.isalpha():
            raise ValueError(f"exchange {self.exchange!r} must be one letter (F for futures, B for stocks)")


class SimulatorConfig(_Section):
    seed: NonNegativeInt = 7
    # mean trades per second per ticker outside bursts
    rate: Positive = 150.0
    # deliver in real time (true) or as fast as the callback thread can go (false)
    pace: bool = True
    # bursts: episodes of several thousand trades/s, as around B3 news and auctions
    bursts: bool = True
    burst_rate: Positive = 3000.0
    burst_every: Positive = 20.0  # mean seconds between bursts
    burst_len: Positive = 0.4  # mean seconds per burst
    # stop after this many trades in total (0 = never): floods and tests
    max_trades: NonNegativeInt = 0
    # what a second initialize after finalize does: "error" (NL_INTERNAL_ERROR) or "abort" (kill the process)
    reinit: Literal["error", "abort"] = "error"
    # sim clock start, local B3 time "YYYY-MM-DD HH:MM:SS" ("" = today 10:00)
    start: str = ""
    # path to a stand-in build to use instead of the packaged one ("" = packaged)
    library: str = ""


class BridgeConfig(_Section):
    # log a warning when the DLL->loop backlog exceeds this many events
    warn_depth: PositiveInt = 20_000


class RunConfig(_Section):
    data_dir: str = "data"
    status_interval: Positive = 1.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Section):
    feed: FeedConfig = msgspec.field(default_factory=FeedConfig)
    simulator: SimulatorConfig = msgspec.field(default_factory=SimulatorConfig)
    bridge: BridgeConfig = msgspec.field(default_factory=BridgeConfig)
    run: RunConfig = msgspec.field(default_factory=RunConfig)
    # further sections are added below this line, one per subsystem


def _explain(err: msgspec.ValidationError, source: str) -> str:
    text = str(err)
    m = re.match(r"(?P<msg>.*) - at `\$(?P<path>[^`]*)`$", text)
    if not m:
        return f"{source}: {text}"
    msg, path = m.group("msg"), m.group("path").lstrip(".")
    unknown = re.match(r"Object contains unknown field `(?P<k>[^`]+)`", msg)
    if unknown:
        key = f"{path}.{unknown.group('k')}" if path else unknown.group("k")
        return f"{source}: unknown key '{key}'; remove it or check its spelling"
    return f"{source}: '{path}': {msg}; fix that value"


def from_dict(data: dict[str, Any], source: str = "config") -> Config:
    try:
        return msgspec.convert(data, Config)
    except msgspec.ValidationError as err:
        raise ConfigError(_explain(err, source)) from None


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a TOML file (None = built-in defaults), apply dotted overrides like {"feed.kind": "replay"}."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: file not found; pass --config PATH to an existing config.toml") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{p}: not valid TOML ({err}); fix the syntax at that line") from None
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return from_dict(data, source)


def replace(cfg: Config, **sections: Any) -> Config:
    """A copy of cfg with some sections replaced (tests and notebooks)."""
    return msgspec.structs.replace(cfg, **sections)
