"""The one OS thread allowed to call DLL functions.

The loop submits a command (a plain function of the binding) and awaits an asyncio future; the thread runs
commands one at a time in submission order and resolves the future with `call_soon_threadsafe`. Market data never
passes through this queue, so a subscribe or an order is never stuck behind ticks.

The thread is a daemon so it cannot keep a crashed program alive, and it outlives any one event loop: the DLL is
a per-process singleton and is finalized from an `atexit` hook through `call_blocking`.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Callable

_STOP = object()


class OwnerThread:
    def __init__(self, name: str = "profitdll-owner") -> None:
        self._commands: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.ident = self._thread.ident
        self.commands_run = 0

    def _run(self) -> None:
        while True:
            item = self._commands.get()
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

        self._commands.put((fn, args, deliver))
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

        self._commands.put((fn, args, deliver))
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

        self._commands.put((fn, args, deliver))

    def stop(self, timeout: float = 5.0) -> None:
        self._commands.put(_STOP)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
