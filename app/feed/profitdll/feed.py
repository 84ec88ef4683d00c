"""Feed over ProfitDLL (or anything with its ABI): owner thread for calls, bridge for callbacks."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import date
from pathlib import Path
from typing import Any

from app.config import Config
from app.feed.base import FeedError, Sink
from app.feed.bridge import Bridge
from app.feed.profitdll import abi, credentials, library
from app.feed.profitdll.routing import Router
from app.feed.profitdll.send_ledger import LEDGER_FILE
from app.feed.profitdll.session import DllSession
from app.feed.tickers import resolve

log = logging.getLogger("app.feed.profitdll")


class ProfitDllFeed:
    name = "profitdll"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.done = asyncio.Event()
        self.session: DllSession | None = None
        self.bridge: Bridge | None = None
        self.tickers: list[str] = []
        self.started_at = 0.0
        # feed.routing: the order API (None otherwise) and who on the loop takes the routing events
        self.router: Router | None = None
        self.routing_sink: Any = None

    def set_routing_sink(self, sink: Any) -> None:
        """The loop's consumer of routing events (a callable taking a list); before or after start."""
        self.routing_sink = sink
        if self.bridge is not None:
            self.bridge.routing_sink = sink

    # what differs between the real DLL and the stand-in
    def library_path(self) -> str:
        return str(library.find_real_dll(self.cfg.feed.dll_path))

    def credentials(self) -> credentials.Credentials:
        return credentials.from_env()

    def routing_password(self) -> credentials.RoutingPassword:
        return credentials.routing_password_from_env()

    def clock_follows_machine(self) -> bool:
        """Whether GetServerClock should agree with this machine's clock (then its offset is checked at connect)."""
        return True

    async def prepare(self, session: DllSession) -> None:
        """Hook run on the loop at every start, before initialize (the simulator sets its market here)."""

    async def start(self, sink: Sink) -> None:
        feed_cfg = self.cfg.feed
        loop = asyncio.get_running_loop()
        path = self.library_path()
        self.session = session = await DllSession.open(
            library.load, path, feed_cfg.depth_levels, feed_cfg.keep_thread_state, feed_cfg.allow_old_dll,
            feed_cfg.depth_flush_add == "ends_bracket", feed_cfg.bridge, feed_cfg.ring_nap_us / 1e6,
            self.cfg.run.sched_batch)
        creds = self.credentials()
        password = self.routing_password() if feed_cfg.routing else None  # a missing one fails before login
        self.bridge = Bridge(loop, sink, self.cfg.bridge.warn_depth, self.routing_sink,
                             turn_events=self.cfg.bridge.turn_events)
        session.attach(self.bridge)
        self.done.clear()
        await self.prepare(session)
        if not session.initialized:
            await session.initialize(creds, feed_cfg.routing, feed_cfg.trade_api, feed_cfg.book)
            log.info("%s returned NL_OK; waiting for the market connection", session.init_mode)
        await self._wait_connected(feed_cfg.connect_timeout)
        if password is not None:
            self.router = Router(session, password, Path(self.cfg.run.data_dir) / LEDGER_FILE)
        if session.server_clock_offset_s is None and self.clock_follows_machine():
            await session.check_clock()
        self.tickers = resolve(feed_cfg.tickers, date.today())
        for ticker in self.tickers:
            await session.subscribe(ticker, feed_cfg.exchange, feed_cfg.book == "depth")
        self.started_at = time.monotonic()
        log.info("subscribed %s on exchange %s", ", ".join(self.tickers), feed_cfg.exchange)

    async def _wait_connected(self, timeout: float) -> None:
        assert self.session is not None
        session = self.session
        deadline = time.monotonic() + timeout
        while not (session.market_connected and session.activation_valid):
            state = session.conn_state
            if state.get(abi.CONN_ACTIVATION) == abi.ACTIVATE_INVALID:
                raise FeedError("the DLL reported ACTIVATE_INVALID: check PROFITDLL_KEY")
            login = state.get(abi.CONN_LOGIN, abi.LOGIN_CONNECTED)
            if login == abi.LOGIN_UNKNOWN_ERR:
                raise FeedError("the DLL reported LOGIN_UNKNOWN_ERR (200): a stale session with the same credentials "
                                "probably still exists (another or a just-killed process); end it, wait a few "
                                "minutes and start again")
            if login != abi.LOGIN_CONNECTED:
                name = abi.STATE_NAMES.get((0, login), str(login))
                raise FeedError(f"the DLL reported {name}: check PROFITDLL_USER / PROFITDLL_PASSWORD")
            if time.monotonic() > deadline:
                raise FeedError(f"no market connection within {timeout:g}s (last states: {session.stats()['conn_state']}); "
                                "check the network, or raise feed.connect_timeout")
            await asyncio.sleep(0.01)

    async def stop(self, finalize: bool = False) -> None:
        """Unsubscribe (or finalize the DLL for good), then deliver what is still in the bridge."""
        session = self.session
        if session is None:
            return
        try:
            if finalize:
                await session.finalize()  # joins the DLL's threads: no callback after this returns
            else:
                for ticker in self.tickers:
                    if (ticker, self.cfg.feed.exchange) in session.subscribed:
                        await session.unsubscribe(ticker, self.cfg.feed.exchange)
        finally:
            session.detach()
            if self.bridge is not None:
                self.bridge.close()
            self.done.set()

    async def subscribe(self, ticker: str) -> None:
        assert self.session is not None
        await self.session.subscribe(ticker, self.cfg.feed.exchange, self.cfg.feed.book == "depth")

    async def unsubscribe(self, ticker: str) -> None:
        assert self.session is not None
        await self.session.unsubscribe(ticker, self.cfg.feed.exchange)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"feed": self.name, "tickers": self.tickers}
        if self.session is not None:
            out["dll"] = self.session.stats()
        if self.bridge is not None:
            out["bridge"] = self.bridge.stats()
        return out
