"""Which event loop runs the app: uvloop on Linux/macOS, winloop on Windows, plain asyncio when asked or when
the fast one is not installed. Embedded use (notebooks) never creates a loop: it runs on the host's."""
from __future__ import annotations

import asyncio
import sys
from typing import Callable, Literal

LoopKind = Literal["auto", "uvloop", "winloop", "asyncio"]


def loop_factory(kind: LoopKind = "auto") -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    if kind in ("auto", "winloop") and sys.platform == "win32":
        try:
            import winloop  # type: ignore[import-not-found]

            return "winloop", winloop.new_event_loop
        except ImportError:
            if kind == "winloop":
                raise
    if kind in ("auto", "uvloop") and sys.platform != "win32":
        try:
            import uvloop

            return "uvloop", uvloop.new_event_loop
        except ImportError:
            if kind == "uvloop":
                raise
    return "asyncio", asyncio.new_event_loop


def run(main: Callable[[], object], kind: LoopKind = "auto", debug: bool = False,
        sched_batch: bool = False) -> object:
    """Run `main()` (a coroutine function) to completion on a new loop of the chosen kind; `sched_batch`
    (run.sched_batch) makes this thread SCHED_BATCH first (app/sched_policy.py)."""
    if sched_batch:
        from app.sched_policy import batch_current_thread

        batch_current_thread()
    _, factory = loop_factory(kind)
    with asyncio.Runner(loop_factory=factory, debug=debug) as runner:
        return runner.run(main())  # type: ignore[arg-type]
