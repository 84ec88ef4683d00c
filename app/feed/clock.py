"""The one clock that stamps `received_ns` and measures latency from it.

time.monotonic_ns is CLOCK_MONOTONIC on Linux (ns resolution) but, on Windows before Python 3.13, GetTickCount64
with ~15.6 ms resolution (CPython gh-88494): every latency published there would be quantised to it. There
time.perf_counter_ns (QueryPerformanceCounter, < 1 us) is used instead. Both clocks are monotonic and never
mixed: every `received_ns` and every "now" compared with it must come from `now_ns` (on Linux and on Windows with
Python >= 3.13 the two are the same clock, so code still calling time.monotonic_ns agrees there).
"""
from __future__ import annotations

import sys
import time
from typing import Callable


def pick(platform: str, version: tuple[int, int]) -> tuple[str, Callable[[], int]]:
    """(clock name, function) with microsecond resolution or better for this platform and Python."""
    if platform == "win32" and version < (3, 13):
        return "perf_counter", time.perf_counter_ns
    return "monotonic", time.monotonic_ns


CLOCK_NAME, now_ns = pick(sys.platform, sys.version_info[:2])


def resolution_s() -> float:
    return time.get_clock_info(CLOCK_NAME).resolution
