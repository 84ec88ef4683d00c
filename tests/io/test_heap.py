"""The heap trim after a Valkey outage is caught up: it runs (glibc) and gives pages back."""
import sys

import psutil
import pytest

from app.io import heap


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_freed_burst_memory_goes_back_to_the_os():
    proc = psutil.Process()
    before = proc.memory_info().rss
    burst = [bytearray(3000) for _ in range(30_000)]  # ~90 MB of heap (not mmap) allocations, as a backlog makes
    pin = bytearray(3000)  # allocated above the burst: the heap's top stays in use, so free() alone cannot shrink it
    del burst
    held = proc.memory_info().rss - before
    n = heap.released
    assert heap.release_free_memory() is True and heap.released == n + 1
    after = proc.memory_info().rss - before
    assert held > 60 * 2**20 and after < held - 50 * 2**20, (held, after)  # the burst's pages went back
    del pin
