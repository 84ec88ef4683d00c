"""The native ProfitDLL stand-in: locating the built library and driving its `SIM_` control functions.

The stand-in (profitsim.c) exports the real DLL's function names with the same C ABI and is loaded by the very same
binding; the `SIM_*` functions are outside the real ABI and exist only to set the synthetic market and faults.
"""
from __future__ import annotations

import ctypes
import importlib.util
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.config import SimulatorConfig
from app.feed.b3time import B3_TZ
from app.feed.base import FeedError
from app.metrics import LatencyHistogram

STATS = ("violations", "foreign_thread_calls", "accessor_misuse", "callbacks", "trades_generated",
         "trades_delivered", "undelivered", "callbacks_after_finalize", "initialized", "finalized",
         "connector_alive", "subscribed", "regime_switches", "depth_books", "post_flush_adds", "delete_from",
         "theoric", "both_sides", "reconnects", "finalize_states", "routing_orders", "routing_updates",
         "routing_dups", "routing_reorders", "routing_drops", "routing_races", "routing_rejects", "routing_fills",
         "routing_saves", "routing_save_errors", "routing_loaded_orders")


def library_path(configured: str = "") -> Path:
    if configured:
        p = Path(configured)
        if not p.is_file():
            raise FeedError(f"simulator.library = {configured!r} does not exist; remove the key to use the built one")
        return p
    if sys.platform == "win32":
        raise FeedError("the native simulator is not built on Windows; use feed.kind = \"profitdll\" with the real "
                        "DLL, or feed.kind = \"replay\"")
    spec = importlib.util.find_spec("app.feed.simulator._profitsim")
    if spec is None or not spec.origin:
        raise FeedError("the native simulator is not built (no C compiler at install time?): install gcc "
                        "(apt-get install gcc) and reinstall with `pip install -e .`")
    return Path(spec.origin)


class SimControl:
    """The SIM_ functions of a loaded stand-in."""

    def __init__(self, handle: ctypes.CDLL) -> None:
        try:
            self._set = handle.SIM_SetParam
            self._get = handle.SIM_GetStat
            self._file = handle.SIM_SetRoutingFile
        except AttributeError:
            raise FeedError(f"{handle._name} is not the hmarl stand-in (no SIM_ control functions)") from None
        self._set.restype, self._set.argtypes = ctypes.c_int32, [ctypes.c_char_p, ctypes.c_double]
        self._get.restype, self._get.argtypes = ctypes.c_int64, [ctypes.c_char_p]
        self._file.restype, self._file.argtypes = ctypes.c_int32, [ctypes.c_char_p]
        self._dwell = getattr(handle, "SIM_CallbackDwell", None)  # absent from stand-ins built before it
        if self._dwell is not None:
            self._dwell.restype = ctypes.c_int32
            self._dwell.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int32, ctypes.POINTER(ctypes.c_int64),
                                    ctypes.c_int32]

    def set(self, name: str, value: float) -> None:
        rc = self._set(name.encode(), float(value))
        if rc != 0:
            raise FeedError(f"simulator rejected {name} = {value!r} (code {rc})")

    def stat(self, name: str) -> int:
        return int(self._get(name.encode()))

    def stats(self) -> dict[str, int]:
        return {name: self.stat(name) for name in STATS}

    def callback_dwell(self, reset: bool = False) -> LatencyHistogram:
        """How long the market-data callbacks kept the stand-in's thread, timed by the stand-in itself: the one
        dwell figure that includes a ctypes callback's thunk and GIL wait. reset: start counting afresh."""
        hist = LatencyHistogram()
        if self._dwell is not None:
            counts = (ctypes.c_int64 * len(hist.counts))()
            summary = (ctypes.c_int64 * 3)()
            self._dwell(counts, len(hist.counts), summary, 1 if reset else 0)
            hist.counts = list(counts)
            hist.count, hist.total, hist.max = summary[0], summary[1], summary[2]
        return hist

    def configure(self, cfg: SimulatorConfig) -> None:
        self.set("seed", cfg.seed)
        self.set("rate", cfg.rate)
        self.set("pace", 1 if cfg.pace else 0)
        self.set("bursts", 1 if cfg.bursts else 0)
        self.set("burst_rate", cfg.burst_rate)
        self.set("burst_every", cfg.burst_every)
        self.set("burst_len", cfg.burst_len)
        self.set("max_trades", cfg.max_trades)
        self.set("reinit_abort", 1 if cfg.reinit == "abort" else 0)
        start = start_epoch(cfg.start)
        self.set("start_time", start)
        self.set("clock_offset_s", zone_offset_s(cfg.clock_zone, start))
        for key, (lo, hi) in (("regime_trades", cfg.regime_trades), ("edge_range", cfg.edge_range),
                              ("vol_range", cfg.vol_range), ("gap", cfg.gap)):
            if lo > hi:
                raise FeedError(f"simulator.{key} = [{lo}, {hi}] must be [low, high]; swap the two values")
        self.set("scenario", {"none": 0, "null": 1, "planted": 2, "mixed": 3}[cfg.scenario])
        self.set("regime_lo", cfg.regime_trades[0])
        self.set("regime_hi", cfg.regime_trades[1])
        self.set("edge_lo", cfg.edge_range[0])
        self.set("edge_hi", cfg.edge_range[1])
        self.set("vol_lo", cfg.vol_range[0])
        self.set("vol_hi", cfg.vol_range[1])
        self.set("drift_trades", cfg.drift_trades)
        self.set("gap_lo", cfg.gap[0])
        self.set("gap_hi", cfg.gap[1])
        self.set("routing_max_qty", cfg.routing_max_qty)
        self.set("routing_band", cfg.routing_band)
        self.set("routing_dup_rate", cfg.routing_dup_rate)
        self.set("routing_reorder_rate", cfg.routing_reorder_rate)
        self.set("routing_drop_rate", cfg.routing_drop_rate)
        self.set("routing_drop_ms", cfg.routing_drop_ms)
        self.set("routing_cancel_race_rate", cfg.routing_cancel_race_rate)
        self.set_routing_file(cfg.routing_state_file)

    def set_routing_file(self, path: str) -> None:
        """The broker state file (orders, positions) the stand-in loads at a routing login and rewrites after every
        change; "" = memory only. Fixed once the broker started: another path later is refused."""
        rc = self._file(path.encode())
        if rc != 0:
            raise FeedError(f"simulator refused routing_state_file = {path!r} (code {rc}): the broker already "
                            "started from another file in this process")


def start_epoch(start: str) -> float:
    """simulator.start ('YYYY-MM-DD HH:MM:SS', B3 local) -> UTC epoch seconds; '' = now.

    Now, not a fixed hour: stream ids in Valkey follow exchange time, so two runs of the same seed must not claim
    the same instants (the second would be refused as already stored)."""
    if start:
        try:
            local = datetime.strptime(start, "%Y-%m-%d %H:%M:%S").replace(tzinfo=B3_TZ)
        except ValueError:
            raise FeedError(f"simulator.start = {start!r} is not 'YYYY-MM-DD HH:MM:SS'; fix that value") from None
    else:
        local = datetime.now(B3_TZ)
    return local.timestamp()


def zone_offset_s(zone: str, at_epoch: float) -> float:
    """How far a wall clock in `zone` reads ahead of B3 local time at that instant (the stand-in's server clock
    then shows that zone's time, as a DLL on a machine set to it might)."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise FeedError(f"simulator.clock_zone = {zone!r} is not a time zone name (e.g. America/Sao_Paulo, UTC); "
                        "fix that value") from None
    at = datetime.fromtimestamp(at_epoch, timezone.utc)
    delta = at.astimezone(tz).utcoffset() - at.astimezone(B3_TZ).utcoffset()  # type: ignore[operator]
    return delta.total_seconds()


def summary(control: SimControl) -> dict[str, Any]:
    out: dict[str, Any] = control.stats()
    out["sampled_at"] = time.time()
    return out
