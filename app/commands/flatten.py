"""`python -m app flatten`: turn on the kill switch of the app running on this data directory (cancel every working
order and flatten every position when trading live), over its loopback control socket (app.control)."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from app.cli import EXIT_CONFIG, EXIT_OK

NAME = "flatten"
HELP = "kill switch of the running app: cancel working orders and flatten (needs HMARL_CONTROL_TOKEN)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="the running app's run.data_dir (default: from the config)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")


def run(args: argparse.Namespace) -> int:
    from app import config as config_mod
    from app.control import ENV_TOKEN, request

    token = os.environ.get(ENV_TOKEN, "")
    if not token:
        print(f"flatten: set {ENV_TOKEN} to the token the running app was started with", file=sys.stderr)
        return EXIT_CONFIG
    data_dir = Path(args.data_dir or config_mod.load(args.config).run.data_dir)
    try:
        reply = asyncio.run(request(data_dir, "flatten", token, args.timeout))
    except LookupError as exc:
        print(f"flatten: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"flatten: {reply.get('detail', '')}", file=sys.stderr if not reply.get("ok") else sys.stdout)
    return EXIT_OK if reply.get("ok") else EXIT_CONFIG
