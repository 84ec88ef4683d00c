"""One measured configuration per process: `python -m app.bench.worker CONFIG_JSON` prints one JSON line.

Shared by every section: the event source (the native stand-in's connector thread calling a ctypes trade
callback, through the very same ctypes declarations as the real DLL), the copy every callback makes, and the
parent-side helper that runs a worker and checks what it says.

The source. V1 by default: the `TNewTradeCallback` passed to `DLLInitializeMarketLogin` gets every field of a
trade as an argument (asset by value, date string, number, price, volume, qty, buyer, seller, type, edit); the
callback stamps `received_ns` first, then copies all of them into Python values (the two `c_wchar_p` fields of
the asset are read into new `str`s, ctypes already made the date a `str`). With `api = "v2"` the callback
registered with `SetTradeCallbackV2` calls `TranslateTrade` inside the callback and copies the same fields out of
the `TConnectorTrade` (the date as a 7-tuple). Paced points subscribe ONE ticker with `rate` = target, `pace` = 1,
`bursts` = 0; full-speed points use `pace` = 0 with `max_trades` = N. The stand-in's `trades_delivered` counter
is the number of callbacks made, i.e. what every consumer must have received.

Faults (for the smoke tests): config `fault` = "crash" aborts the worker once the DLL is up (as a native crash
would); "gap" drops one event in 100 between the callback and the hand-off, which the consumer must notice;
"crash:d", "gap:a", ... hit only that design (or floor point).
"""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import msgspec

from app.feed.clock import now_ns
from app.feed.profitdll import abi
from app.feed.profitdll.callbacks import ThreadStatePinner
from app.feed.profitdll.library import ProfitLibrary, load
from app.feed.simulator import SimControl, library_path
from app.feed.tickers import resolve
from app.sched_policy import batch_current_thread

FAULT_ENV = "HMARL_BENCH_FAULT"
GAP_EVERY = 100


class Tick(msgspec.Struct, array_like=True, gc=False, frozen=True):
    """Every field of one trade, copied out of the callback (what the bridge designs hand off)."""

    ticker: str
    exchange: str
    date: Any  # V1: the DLL's date string; V2: (year, month, day, hour, minute, second, ms)
    number: int
    price: float
    volume: float
    qty: int
    buyer: int
    seller: int
    trade_type: int
    edit: int
    received_ns: int


class WorkerError(Exception):
    """A measured point failed: the message says which and why (the bench prints it instead of numbers)."""


# ------------------------------------------------------------------------------------------------ the callbacks
def trade_callback(api: str, lib: ProfitLibrary | None, put: Callable[[Any], Any], pin: Callable[[], None],
                   errors: list[str], make: Callable[..., Any] = Tick) -> Any:
    """The ctypes trade callback every bridge design registers: stamp, pin, copy every field, `put(copy)`.

    Only `put` differs between designs; `make` builds the copy (Tick). The floor has its own callbacks (floor.py):
    they count inline instead of calling `put`.
    """
    now = now_ns
    if api == "v1":
        def on_trade_v1(asset: abi.TAssetIDRec, date_s: str, number: int, price: float, volume: float, qty: int,
                        buyer: int, seller: int, trade_type: int, edit: int) -> None:
            received = now()
            try:
                pin()
                put(make(asset.pwcTicker, asset.pwcBolsa, date_s, number, price, volume, qty, buyer, seller,
                         trade_type, edit, received))
            except BaseException as exc:  # never raise into the DLL
                if len(errors) < 10:
                    errors.append(f"{type(exc).__name__}: {exc}")
        return abi.TNewTradeCallback(on_trade_v1)

    assert lib is not None
    translate = lib.TranslateTrade
    buf = abi.TConnectorTrade()
    ref = ctypes.byref(buf)
    d = buf.TradeDate

    def on_trade_v2(asset: abi.TConnectorAssetIdentifier, handle: int, flags: int) -> None:
        received = now()
        try:
            pin()
            buf.Version = 0
            if translate(handle, ref) != 0:
                raise RuntimeError("TranslateTrade failed")
            put(make(asset.Ticker, asset.Exchange,
                     (d.wYear, d.wMonth, d.wDay, d.wHour, d.wMinute, d.wSecond, d.wMilliseconds),
                     buf.TradeNumber, buf.Price, buf.Volume, buf.Quantity, buf.BuyAgent, buf.SellAgent,
                     buf.TradeType, flags & 1, received))
        except BaseException as exc:
            if len(errors) < 10:
                errors.append(f"{type(exc).__name__}: {exc}")
    return abi.TConnectorTradeCallback(on_trade_v2)


def active_fault(cfg: dict[str, Any]) -> str:
    """The fault this worker injects: config `fault` is "crash" or "gap", optionally ":TARGET" to hit only the
    points whose design (a, a0, b, c, d) or floor point (tuple_kept, ...) is TARGET."""
    spec = cfg.get("fault") or ""
    kind, _, target = spec.partition(":")
    if target and target not in (cfg.get("design"), cfg.get("point")):
        return ""
    return kind


def with_fault(put: Callable[[Any], Any], fault: str) -> Callable[[Any], Any]:
    """The hand-off, or (fault "gap") one that silently loses one event in GAP_EVERY."""
    if fault != "gap":
        return put
    seen = [0]

    def lossy(ev: Any) -> None:
        seen[0] += 1
        if seen[0] % GAP_EVERY:
            put(ev)
    return lossy


# ------------------------------------------------------------------------------------------------ the source
class Source:
    """The stand-in, loaded and driven from the thread that creates this object (the only DLL caller)."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.api: str = cfg.get("api", "v1")
        self.fault = active_fault(cfg)
        self.lib = load(str(library_path()))
        self.control = SimControl(self.lib.handle)
        self.pinner = ThreadStatePinner(bool(cfg.get("keep_thread_state", True)))
        self.states: dict[int, int] = {}
        self.errors: list[str] = []
        self.ticker = resolve(["WDO"], date.today())[0]
        self.initialized = False
        # how long the stand-in's thread spent inside the trade callbacks, timed by the stand-in (finalize keeps it)
        self.dll_dwell: dict[str, float] = {}
        self._keep: list[Any] = []
        rate = cfg.get("rate")  # None = full speed
        c = self.control
        c.set("seed", int(cfg.get("seed", 7)))
        c.set("connect_ms", 1)
        c.set("bursts", 0)
        c.set("depth", 0)
        if rate:
            c.set("rate", float(rate))
            c.set("pace", 1)
            c.set("max_trades", 0)
        else:
            c.set("pace", 0)
            c.set("max_trades", int(cfg["events"]))

    def start(self, trade_cb: Any, connect_timeout: float = 15.0) -> None:
        """Initialize with `trade_cb` and wait (blocking) for the market; `subscribe()` starts the flow. Code on
        an event loop calls `initialize` and polls `connected` itself."""
        self.initialize(trade_cb)
        deadline = time.monotonic() + connect_timeout
        while not self.connected():
            if time.monotonic() > deadline:
                raise WorkerError(f"the stand-in did not report market connected within {connect_timeout:g}s "
                                  f"(states {self.states})")
            time.sleep(0.002)

    def initialize(self, trade_cb: Any) -> None:
        pin, states = self.pinner.pin_current, self.states

        def on_state(kind: int, result: int) -> None:
            try:
                pin()
                states[kind] = result
            except BaseException as exc:
                self.errors.append(f"state: {exc}")

        state_cb = abi.TStateCallback(on_state)
        self._keep += [state_cb, trade_cb]
        v1 = trade_cb if self.api == "v1" or not trade_cb else abi.TNewTradeCallback()  # falsy: a NULL pointer
        rc = self.lib.DLLInitializeMarketLogin("bench", "bench", "bench", state_cb, v1, None, None, None, None,
                                               None, abi.TTinyBookCallback())
        if rc != 0:
            raise WorkerError(f"DLLInitializeMarketLogin returned {rc}")
        self.initialized = True
        if self.api == "v2" and trade_cb:
            rc = self.lib.SetTradeCallbackV2(trade_cb)
            if rc != 0:
                raise WorkerError(f"SetTradeCallbackV2 returned {rc}")
        if self.fault == "crash":
            sys.stderr.write("bench worker: injected fault 'crash' (abort with the DLL running)\n")
            sys.stderr.flush()
            os.abort()

    def connected(self) -> bool:
        return self.states.get(abi.CONN_MARKET) == abi.MARKET_CONNECTED and \
            self.states.get(abi.CONN_ACTIVATION) == abi.ACTIVATE_VALID

    def subscribe(self) -> None:
        self.control.callback_dwell(reset=True)  # the dwell of the flow's callbacks only
        rc = self.lib.SubscribeTicker(self.ticker, "F")
        if rc != 0:
            raise WorkerError(f"SubscribeTicker({self.ticker}) returned {rc}")

    def delivered(self) -> int:
        return self.control.stat("trades_delivered")

    def finalize(self) -> int:
        """Stop the connector thread (DLLFinalize joins it: no callback after this); the number of trade callbacks
        it made."""
        if self.initialized:
            rc = self.lib.DLLFinalize()
            self.initialized = False
            # read once every callback has returned: before, the last one could still be between handing its event
            # over and the stand-in's clock at its exit (19,999 of 20,000 timed, once in CI)
            self.dll_dwell = self.control.callback_dwell().summary_us()
            if rc != 0:
                raise WorkerError(f"DLLFinalize returned {rc}")
        return self.delivered()

    def sim_stats(self) -> dict[str, int]:
        return self.control.stats()

    def rule_breaks(self) -> str:
        """What the stand-in saw the client do wrong (request calls from a callback, accessors misused)."""
        stats = self.sim_stats()
        bad = {k: stats[k] for k in ("violations", "accessor_misuse", "callbacks_after_finalize") if stats.get(k)}
        return ", ".join(f"{k} {v}" for k, v in bad.items())


class CpuWindow:
    """CPU used by the whole machine and by this process over a measured window: on a shared box the share the
    other processes took (`others_cores`) says how far to trust a point."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.own0 = time.monotonic(), machine_busy(), time.process_time()

    def close(self, extra_own: float = 0.0) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        own = time.process_time() - self.own0 + extra_own
        out = {"wall_seconds": round(wall, 3), "cpu_seconds": round(own, 4)}
        busy1 = machine_busy()
        if busy1 is not None and self.busy0 is not None and wall > 0:
            busy = busy1 - self.busy0
            out["busy_cores"] = round(busy / wall, 2)
            out["others_cores"] = round(max(0.0, busy - own) / wall, 2)
        return out


QUIET_CORES = 0.3


def busy_cores(seconds: float) -> float | None:
    """Cores the whole machine kept busy over the next `seconds` (this process sleeps meanwhile)."""
    b0, t0 = machine_busy(), time.monotonic()
    time.sleep(seconds)
    b1, t1 = machine_busy(), time.monotonic()
    if b0 is None or b1 is None:
        return None
    return round((b1 - b0) / (t1 - t0), 2)


def machine_busy() -> float | None:
    """Seconds of CPU the whole machine spent busy (all CPUs, /proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal guest guest_nice: busy = all but idle, iowait, guests
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def full_speed(cfg: dict[str, Any]) -> bool:
    return not cfg.get("rate")


def warmup_events(cfg: dict[str, Any]) -> int:
    """Events left out of the latency percentiles (thread-state creation, first allocations, page faults)."""
    if full_speed(cfg):
        return int(cfg["events"]) // 20
    return int(float(cfg["rate"]) * float(cfg.get("warmup", 0.5)))


def window_seconds(cfg: dict[str, Any]) -> float:
    return float(cfg.get("warmup", 0.5)) + float(cfg["seconds"])


# ------------------------------------------------------------------------------------------------ parent side
@dataclass
class Options:
    """What every section takes. None = the section's default size."""

    quick: bool = False  # tiny sizes: smoke tests
    seconds: float | None = None  # measured seconds per paced point
    events: int | None = None  # events per full-speed point
    api: str = "v1"  # "v1" (TNewTradeCallback) or "v2" (SetTradeCallbackV2 + TranslateTrade)
    loop: str = "uvloop"  # the event loop of the designs that have one
    fault: str = ""  # injected fault passed to every worker ("crash", "gap"); default: $HMARL_BENCH_FAULT
    switch_intervals: tuple[float, ...] | None = None  # bridge: sys.setswitchinterval values tried at 5k/s
    repeat: int | None = None  # runs per full-speed point, the median kept (default 3; --quick 1)
    quiet: float | None = None  # before a point, wait up to this long for the other processes to go quiet
    quiet_budget: float = 90.0  # ... and at most this long in all
    nice: int | None = None  # niceness of every worker process (negative needs privileges); None = inherited
    sched_batch: bool = True  # every worker's threads SCHED_BATCH, as run.sched_batch does live (Linux)
    progress: Callable[[str], None] | None = None  # one line per point, as it finishes
    waited: float = 0.0

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    def repeats(self) -> int:
        return self.repeat or (1 if self.quick else 3)

    def wait_quiet(self) -> dict[str, float]:
        """On a shared machine: before a point, wait (bounded) until the rest of the machine uses less than
        QUIET_CORES, sampled over 0.2 s. Returns what was seen, for the point's record."""
        limit = self.quiet if self.quiet is not None else (0.0 if self.quick else 5.0)
        limit = min(limit, max(0.0, self.quiet_budget - self.waited))
        if limit <= 0:
            return {}
        t0 = time.monotonic()
        busy = busy_cores(0.2)
        while busy is not None and busy > QUIET_CORES and time.monotonic() - t0 < limit:
            time.sleep(0.3)
            busy = busy_cores(0.2)
        waited = time.monotonic() - t0
        self.waited += waited
        return {"busy_before": busy if busy is not None else -1.0, "waited_for_quiet": round(waited, 2)}

    def base(self) -> dict[str, Any]:
        """Keys every worker config carries."""
        out: dict[str, Any] = {"api": self.api, "fault": self.fault, "loop": self.loop, "sched_batch": self.sched_batch}
        if self.nice is not None:
            out["nice"] = self.nice
        return out


def spawn(cfg: dict[str, Any], timeout: float, opts: Options | None = None) -> dict[str, Any]:
    """Run one configuration in a child process; its JSON line, or WorkerError saying what went wrong. With
    `opts`, first wait (bounded) for the machine to be quiet."""
    label = cfg.get("label", cfg.get("kind", "?"))
    quiet = opts.wait_quiet() if opts is not None else {}
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    try:
        proc = subprocess.run([sys.executable, "-m", "app.bench.worker", json.dumps(cfg)], capture_output=True,
                              text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise WorkerError(f"{label}: the worker did not finish within {timeout:g}s") from None
    out = None
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            out = json.loads(line)
            break
        except ValueError:
            continue
    tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
    if isinstance(out, dict) and out.get("error"):
        raise WorkerError(f"{label}: {out['error']}")
    if proc.returncode != 0:
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        raise WorkerError(f"{label}: the worker died ({how}){': ' + tail if tail else ''}")
    if not isinstance(out, dict):
        raise WorkerError(f"{label}: the worker printed no JSON result{': ' + tail if tail else ''}")
    out.update(quiet)
    return out


def spawn_median(cfg: dict[str, Any], timeout: float, runs: int, key: str,
                 opts: Options | None = None) -> dict[str, Any]:
    """Run a full-speed point `runs` times (each in a fresh process) and keep the run with the median `key`; every
    run's figure is kept in `runs`. On a shared machine one run can lose half its CPU to a neighbour."""
    outs = [spawn(cfg, timeout, opts) for _ in range(max(1, runs))]
    ranked = sorted(outs, key=lambda o: o[key])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["runs"] = [round(o[key]) for o in outs]
    return chosen


# ------------------------------------------------------------------------------------------------ child side
def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m app.bench.worker CONFIG_JSON", file=sys.stderr)
        return 2
    cfg = json.loads(argv[0])
    if cfg.get("nice") is not None and cfg.get("kind") != "producer":  # the producer inherits it
        try:
            os.setpriority(os.PRIO_PROCESS, 0, int(cfg["nice"]))
        except OSError as exc:
            print(json.dumps({"error": f"cannot set nice {cfg['nice']}: {exc} (negative values need root or "
                                       "CAP_SYS_NICE)"}), flush=True)
            os._exit(1)
    if cfg.get("sched_batch"):  # first: every thread of the worker inherits it, whatever the design
        batch_current_thread()
    interval = cfg.get("switchinterval")
    if interval:
        sys.setswitchinterval(float(interval))
    kind = cfg.get("kind")
    rc = 1
    try:
        if kind == "floor":
            from app.bench import floor

            result = floor.measure(cfg)
        elif kind == "bridge":
            from app.bench import bridge

            result = bridge.measure(cfg)
        elif kind == "producer":
            from app.bench import bridge

            result = bridge.produce(cfg)
        elif kind == "routing":
            from app.bench import routing

            result = routing.measure(cfg)
        elif kind == "stages":
            from app.bench import stages

            result = stages.measure(cfg)
        else:
            raise WorkerError(f"unknown worker kind {kind!r}")
        result.setdefault("label", cfg.get("label", kind))
        result["switchinterval"] = sys.getswitchinterval()
        rc = 1 if result.get("error") else 0
    except WorkerError as exc:
        result = {"error": str(exc)}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    # no interpreter teardown: the DLL thread's pinned thread state is never released, and a worker that failed
    # may still have the DLL running
    os._exit(rc)


if __name__ == "__main__":
    # run the importable module, so that pickled classes (Tick) are app.bench.worker.* in every process
    from app.bench import worker as _worker

    raise SystemExit(_worker.main(sys.argv[1:]))
