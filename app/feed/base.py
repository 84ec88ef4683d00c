"""The one interface every market-data source implements (simulator, profitdll, replay).

A feed delivers batches of input events to a sink *on the event loop*: the DLL feeds through the bridge (one
wake-up per batch), replay directly from a coroutine. The sink never blocks and never awaits.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Protocol

from app.events import InputEvent

Sink = Callable[[list[InputEvent]], None]


class Feed(Protocol):
    name: str
    # set when the feed will deliver nothing more (replay reached the end, the DLL stopped); live feeds set it on stop
    done: asyncio.Event

    async def start(self, sink: Sink) -> None:
        """Connect/subscribe and begin delivering; returns once events can flow."""

    async def stop(self, finalize: bool = False) -> None:
        """Stop delivering; when it returns no further sink call happens. `finalize`: the process is ending, so
        a DLL feed shuts the DLL down for good instead of only unsubscribing."""

    def stats(self) -> dict[str, Any]:
        """Plain counters for the monitor and the run summary."""


class FeedError(Exception):
    """A feed could not start or failed; the message says what and how to fix it."""
