"""The one OS thread allowed to call DLL functions.

The loop submits a command (a plain function of the binding) and awaits an asyncio future; the thread runs
commands one at a time in submission order and resolves the future with `call_soon_threadsafe`. Market data never
passes through this queue, so a subscribe or an order is never stuck behind ticks.

With a pump (the native callback ring, app/feed/profitdll/native_intake.py) the thread also moves market data:
it runs every queued command first, then one `pump()` (deliver one batch, then nap or sleep in C with the GIL
released); `notify()` ends that sleep as soon as a command is queued.

The thread is a daemon so it cannot keep a crashed program alive, and it outlives any one event loop: the DLL is
a per-process singleton and is finalized from an `atexit` hook through `call_blocking`.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from typing import Any, Callable, Protocol

from app.sched_policy import batch_current_thread

_STOP = object()


class Pump(Protocol):
    def pump(self) -> None: ...  # deliver one batch and/or wait for the next; bounded

    def notify(self) -> None: ...  # from any thread: end the pump's wait now


class OwnerThread:
    def __init__(self, name: str = "profitdll-owner", sched_batch: bool = False) -> None:
        self.sched_batch = sched_batch  # run.sched_batch: a DLL callback waking this thread does not get preempted
        self._commands: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.commands_run = 0
        self._pump: Pump | None = None
        self.pump_errors = 0
        self.last_pump_error = ""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.ident = self._thread.ident

    def set_pump(self, pump: Pump | None) -> None:
        """Move market data with `pump` between commands (None: commands only). Called on the owner thread."""
        self._pump = pump

    def _put(self, item: Any) -> None:
        self._commands.put(item)
        pump = self._pump
        if pump is not None:
            pump.notify()

    def _next(self) -> Any:
        while True:
            pump = self._pump
            if pump is None:
                return self._commands.get()
            # only this thread takes from the queue, so get_nowait cannot fail after this check, and the pump
            # does not pay for a raised queue.Empty per batch
            if not self._commands.empty():
                return self._commands.get_nowait()
            try:
                pump.pump()
            except Exception as exc:  # the thread that calls the DLL must outlive any bug in moving data
                self.pump_errors += 1
                self.last_pump_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.01)  # a pump failing every time must not spin a core

    def _run(self) -> None:
        if self.sched_batch:
            batch_current_thread()
        while True:
            item = self._next()
            if item is _STOP:
                return
            fn, args, deliver = item
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the caller, never lost on this thread
                result, error = None, exc
            self.commands_run += 1
            deliver(result, error)

    def is_current(self) -> bool:
        return threading.get_ident() == self.ident

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on the owner thread; await its result (or its exception) on the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def deliver(result: Any, error: BaseException | None) -> None:
            def settle() -> None:
                if future.cancelled():
                    return
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)

            try:
                loop.call_soon_threadsafe(settle)
            except RuntimeError:  # the loop went away while the command ran; nothing is waiting
                pass

        self._put((fn, args, deliver))
        # shield: a cancelled await must not pretend the DLL call did not happen; it still completes in order
        return await asyncio.shield(future)

    def call_blocking(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """For code without a running loop (atexit, subprocess workers)."""
        if self.is_current():
            return fn(*args)
        done = threading.Event()
        box: list[Any] = [None, None]

        def deliver(result: Any, error: BaseException | None) -> None:
            box[0], box[1] = result, error
            done.set()

        self._put((fn, args, deliver))
        if not done.wait(timeout):
            raise TimeoutError(f"DLL owner thread did not finish {getattr(fn, '__name__', fn)} in {timeout}s")
        if box[1] is not None:
            raise box[1]
        return box[0]

    def post(self, fn: Callable[..., Any], *args: Any, on_error: Callable[[BaseException], None]) -> None:
        """Queue fn(*args) without waiting: for DLL callbacks, which must never call the DLL themselves (spec §7.1)
        but may ask the owner thread to (e.g. resubscribe after a reconnect). Errors go to on_error."""
        def deliver(_result: Any, error: BaseException | None) -> None:
            if error is not None:
                on_error(error)

        self._put((fn, args, deliver))

    def stop(self, timeout: float = 5.0) -> None:
        self._put(_STOP)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
