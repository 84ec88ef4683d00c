"""What happens on the loop to every batch the feed delivers.

drain -> continuity check -> (journal) -> (agents -> decisions) -> (ZMQ, Valkey). The sink is synchronous and
never awaits: outputs buffer and flush from their own tasks.
"""
from __future__ import annotations

import logging
from typing import Any

from app.config import Config
from app.continuity import Continuity
from app.events import InputEvent

log = logging.getLogger("app.pipeline")


class Pipeline:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.continuity = Continuity()
        self._reported_invalid: set[str] = set()

    async def start(self) -> None:
        pass

    def on_batch(self, batch: list[InputEvent]) -> None:
        continuity = self.continuity
        invalid_before = len(continuity.invalid_tickers)
        continuity.observe(batch)
        if len(continuity.invalid_tickers) != invalid_before:
            for ev in continuity.invalid_tickers[invalid_before:]:
                if ev.ticker in self._reported_invalid:  # SubscribeTicker and SubscribePriceDepth both report it
                    continue
                self._reported_invalid.add(ev.ticker)
                log.error("ticker %s (exchange %s) was rejected by the DLL's invalid-ticker callback; "
                          "fix it in feed.tickers", ev.ticker, ev.exchange)

    async def stop(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {"continuity": self.continuity.stats()}
