"""The native callbacks and the ctypes callbacks on one stand-in stream yield identical events (equivalence.py)."""
import json
import subprocess
import sys

import pytest

from app.feed.native import ring, ring_records
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(ring.get() is None, reason="native ring not built (no C compiler)")


def equivalence(**kwargs) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.feed.native.equivalence", json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kwargs", [
    # the defaults, the DLL's garbage in narrow arguments, a ring large enough to overflow only in bursts
    {"trades": 20_000},
    # the other reading of the post-flush Add, fewer levels, a tiny ring and a consumer that stalls: thousands of
    # records go through the overflow chain
    {"trades": 20_000, "flush_add": "is_change", "depth_levels": 2, "garbage": 0, "capacity": 256, "stall_s": 0.3},
], ids=["ends_bracket", "is_change-overflow"])
def test_native_and_ctypes_paths_yield_identical_events(kwargs):
    r = equivalence(**kwargs)
    assert r["identical"], f"first difference (native, ctypes): {r['first_diff']}"
    assert r["native"] == r["ctypes"]
    # the records converted by ring_decode.c and the Python decoder alone, on the very same drained bytes
    assert r["decoders_identical"] and r["python_errors"] == 0
    if ring_records._native_run is not None:  # built: C took all but the records that need Python (states,
        assert r["records_decoded_in_c"] >= 0.95 * r["records"]  # first sight of a name or an hour)
    kinds = r["kinds"]
    # every callback took part: V1 and V2 trades, tiny and depth books, states through a reconnect, invalid ticker
    assert kinds["Trade"] >= 2 * 19_000 and kinds["Book.depth"] > 1000 and kinds["Book.tiny"] > 1000
    assert kinds["InvalidTicker"] == 1
    assert {"MARKET_DISCONNECTED", "MARKET_PERFORMANCE_WARNING", "ACTIVATE_VALID"} <= set(r["states"])
    assert r["sim"]["theoric"] > 0 and r["sim"]["post_flush_adds"] > 0 and r["sim"]["both_sides"] > 0
    # the native side stamps before the ctypes side it calls; the counters the two keep agree
    assert r["native_stamped_first"] == r["native"]
    ring_stats, classic = r["ring"], r["classic"]
    for key in ("depth_books", "post_flush_adds", "translate_errors", "depth_errors"):
        assert ring_stats[key] == classic[key], key
    assert ring_stats["pushed"] == ring_stats["drained"] == r["native"] and ring_stats["lost"] == 0
    assert classic["callback_errors"] == ring_stats["callback_errors"] == 0
    assert r["sim"]["violations"] == r["sim"]["accessor_misuse"] == r["sim"]["foreign_thread_calls"] == 0
    if kwargs.get("capacity") == 256:
        assert ring_stats["overflowed"] > 1000
    dwell_counts = sum(d["count"] for d in r["dwell"].values())
    assert dwell_counts == r["sim"]["callbacks"]  # one dwell sample per DLL callback, pushed or not
