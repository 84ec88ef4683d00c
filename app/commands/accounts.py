"""`python -m app accounts`: log in with routing and print the trading accounts the DLL lists, with the broker
position of every configured ticker - what to put in `execution.account` / `execution.broker` before going live.

It starts the configured feed (real DLL or the stand-in, in this process or in the isolated child) exactly as a run
would, with routing on and no strategy: nothing is ever sent. Exit 3 when the login or the listing fails.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from app.cli import EXIT_CONFIG, EXIT_FEED, EXIT_OK

NAME = "accounts"
HELP = "log in with routing and list your trading accounts (broker id, account id) and their positions"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feed", choices=["simulator", "profitdll"], help="override feed.kind")
    p.add_argument("--json", action="store_true", help="print one JSON object")


async def _list(cfg: Any) -> list[dict[str, Any]]:
    from app.app import make_feed

    feed = make_feed(cfg)
    held: list[Any] = []
    feed.set_routing_sink(held.extend)  # type: ignore[attr-defined]
    await feed.start(lambda batch: None)
    try:
        router = feed.router  # type: ignore[attr-defined]
        deadline = time.monotonic() + cfg.feed.connect_timeout
        while not router.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not router.connected:
            raise RuntimeError(f"routing did not reach the broker within feed.connect_timeout = "
                               f"{cfg.feed.connect_timeout:g}s")
        out = []
        for a in await router.accounts():
            positions = {}
            for t in feed.tickers:
                p = await router.position(a, t, cfg.feed.exchange)
                positions[t] = p.qty
            out.append({"broker": a.broker, "broker_name": a.broker_name, "account": a.account,
                        "sub_account": a.sub_account, "owner": a.owner, "positions": positions})
        return out
    finally:
        await feed.stop(finalize=True)


def run(args: argparse.Namespace) -> int:
    from app import config as config_mod
    from app.loops import run as run_loop

    try:
        cfg = config_mod.load(args.config, {"feed.routing": True, "valkey.enabled": False, "zmq.enabled": False,
                                            **({"feed.kind": args.feed} if args.feed else {})})
    except config_mod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if cfg.feed.kind not in ("simulator", "profitdll"):
        print(f"error: accounts needs the DLL: feed.kind = {cfg.feed.kind!r}; use --feed profitdll (or simulator)",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        accounts = run_loop(lambda: _list(cfg))
    except Exception as exc:  # noqa: BLE001 - one line, the exit code the README promises
        print(f"error: accounts: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FEED
    if args.json:
        print(json.dumps({"accounts": accounts}))
    else:
        for a in accounts:
            pos = ", ".join(f"{t} {q:+d}" for t, q in a["positions"].items()) or "-"
            print(f"execution.broker = {a['broker']}  execution.account = \"{a['account']}\"  "
                  f"({a['broker_name']}, {a['owner']}{', sub ' + a['sub_account'] if a['sub_account'] else ''}) "
                  f"positions: {pos}")
        if not accounts:
            print("the routing login lists no account", file=sys.stderr)
    return EXIT_OK
