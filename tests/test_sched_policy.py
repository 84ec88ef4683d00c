"""run.sched_batch: the loop thread and the DLL owner thread as SCHED_BATCH (Linux), and nothing else touched."""
import asyncio
import os
import threading

import pytest

from app import config as config_mod
from app.feed.owner_thread import OwnerThread
from app.loops import run as run_loop
from app.sched_policy import batch_current_thread, is_batch

linux_only = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_the_default_config_asks_for_it():
    assert config_mod.load(None, {}).run.sched_batch is True
    assert config_mod.load(None, {"run.sched_batch": False}).run.sched_batch is False


@linux_only
def test_it_applies_to_the_calling_thread_only_and_threads_it_starts_inherit_it():
    def body():
        assert batch_current_thread() is True
        child = _in_thread(is_batch)  # the stand-in's DLL threads, started by the owner thread, inherit it
        return is_batch(), child

    assert _in_thread(body) == (True, True)
    assert not is_batch()  # this (pytest's) thread kept its policy
    assert not _in_thread(is_batch)


@linux_only
def test_the_owner_thread_runs_as_sched_batch_only_when_asked():
    batch, plain = OwnerThread("test-owner-batch", sched_batch=True), OwnerThread("test-owner-plain")
    try:
        assert batch.call_blocking(is_batch) is True
        assert is_batch(batch._thread.native_id)
        assert plain.call_blocking(is_batch) is False
    finally:
        batch.stop()
        plain.stop()


@linux_only
def test_the_loop_runner_sets_it_on_its_own_thread_when_asked():
    async def policy() -> bool:
        await asyncio.sleep(0)
        return is_batch()

    assert _in_thread(lambda: run_loop(policy, "asyncio", sched_batch=True)) is True
    assert _in_thread(lambda: run_loop(policy, "asyncio")) is False


def test_a_refusal_is_not_an_error(monkeypatch):
    if not hasattr(os, "SCHED_BATCH"):
        assert batch_current_thread() is False
        return

    def refuse(*_a):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    assert _in_thread(batch_current_thread) is False
