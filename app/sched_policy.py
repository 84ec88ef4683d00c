"""Linux: the loop thread and the DLL owner thread run as SCHED_BATCH (`run.sched_batch`).

Each hop of the data path is a thread waking the next one: a DLL callback wakes the owner thread, the owner thread's
`call_soon_threadsafe` wakes the loop. Under the default policy the kernel lets a woken thread preempt its waker on
the spot, so the waker stops halfway: the DLL's thread inside our callback until the owner thread has converted its
batch (dwell p99 ~170 us on the reference machine at ~200 events/s), the owner thread still holding the GIL when the
loop runs and blocks on it (two more context switches per batch). A SCHED_BATCH thread, once woken, waits for the
CPU it was placed on instead (or takes the idle one), so each waker finishes its few microseconds first; nothing is
given up in priority, and no privilege is needed. Threads and processes started afterwards by these threads (the
stand-in's DLL threads, ZeroMQ's I/O thread, the Valkey server) inherit the policy. Embedded (App on a notebook's
loop) only the owner thread is changed: the host's own thread is left as it is. Elsewhere this is a no-op.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger("app.sched")


def batch_current_thread() -> bool:
    """Make the calling thread SCHED_BATCH; True if it now is. Never raises: a refusal is logged once per thread."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:  # not Linux
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))  # pid 0: the calling thread, not the process
    except OSError as exc:  # a seccomp profile or container may refuse it; the app runs the same without
        log.info("run.sched_batch: SCHED_BATCH refused (%s); threads keep the default policy", exc)
        return False
    return True


def is_batch(native_id: int = 0) -> bool:
    """Whether the thread with this native id (0: the calling one) runs as SCHED_BATCH."""
    policy = getattr(os, "SCHED_BATCH", None)
    return policy is not None and os.sched_getscheduler(native_id) & 0xFF == policy
