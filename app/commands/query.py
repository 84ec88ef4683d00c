"""`python -m app query`: read the Valkey streams by time range, after or during a run."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from typing import Any

NAME = "query"
HELP = "read stored events by ticker, kind and time range from Valkey (table, or --json lines)"

from app.cli import EXIT_CONFIG, EXIT_OK, EXIT_STORAGE

_HIDE = {"type", "received_ns", "v", "ts"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from app.io.valkey_writer import KINDS

    p.add_argument("--ticker", help="contract code as stored, e.g. WDOZ26 (not needed for state/metric)")
    p.add_argument("--kind", default="trade", choices=KINDS, help="which stream (default: trade)")
    p.add_argument("--from", dest="start", default=None, metavar="TIME",
                   help="'YYYY-MM-DD HH:MM[:SS]', 'HH:MM' (today), B3 local time; or epoch s/ms/ns")
    p.add_argument("--to", dest="end", default=None, metavar="TIME", help="end of the range, inclusive")
    p.add_argument("--limit", type=int, default=1000, help="at most this many rows (0 = all; default 1000)")
    p.add_argument("--last", action="store_true", help="the newest --limit rows of the range instead of the oldest")
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    p.add_argument("--url", default=None, help="Valkey URL (default: valkey.url of the config)")
    p.add_argument("--list", action="store_true", help="list the streams with their lengths and time spans")
    p.add_argument("--runs", action="store_true", help="show the latest run summaries")


def _local(ms: int) -> str:
    from app.io.query import _tz

    return datetime.fromtimestamp(ms / 1000, tz=_tz()).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, separators=(",", ":"))[:60]
    return str(v)


async def _main(args: argparse.Namespace, url: str, data_dir: str, prefix: str) -> int:
    from app.config import ValkeyConfig
    from app.io.query import aquery, aruns, astreams
    from app.io.valkey_server import ValkeyServer

    server = ValkeyServer(ValkeyConfig(prefix=prefix), data_dir) if url == "embedded" else None
    if server is not None:
        if not (server.dir / "appendonlydir").exists() and not (server.dir / "server.json").exists():
            print(f"query: no embedded store in {server.dir} yet (run hmarl first, or pass --url)", file=sys.stderr)
            return EXIT_STORAGE
        url = await server.start()
    try:
        if args.list:
            rows = await astreams(url, prefix=prefix)
            for r in rows:
                for end in ("first_id", "last_id"):
                    if r[end]:
                        r[end.replace("_id", "")] = _local(int(r[end].split("-")[0]))
            _print(rows, args.json, ["key", "length", "first", "last"])
            return EXIT_OK
        if args.runs:
            _print(await aruns(url, prefix=prefix), args.json, None)
            return EXIT_OK
        rows = await aquery(url, args.ticker, args.kind, args.start, args.end, args.limit or None,
                            prefix=prefix, last=args.last)
        if not rows and not args.json:
            streams = [s["key"] for s in await astreams(url, prefix=prefix) if s["kind"] == args.kind]
            hint = f"; {args.kind} streams: {', '.join(streams[:8])}" if streams else ""
            print(f"query: no {args.kind} rows for {args.ticker or '-'} in that range{hint}", file=sys.stderr)
            return EXIT_OK
        if not args.json:
            for r in rows:  # exact exchange time when the event has one, else the id's
                ts = r.get("ts")
                r["time"] = _local(ts // 1_000_000 if isinstance(ts, int) and ts > 0 else int(r["id"].split("-")[0]))
        _print(rows, args.json, None)
        return EXIT_OK
    finally:
        if server is not None:
            await server.stop()


def _print(rows: list[dict[str, Any]], as_json: bool, columns: list[str] | None) -> None:
    if as_json:
        out = sys.stdout
        for r in rows:
            out.write(json.dumps(r, separators=(",", ":"), default=str) + "\n")
        out.flush()
        return
    if not rows:
        print("(nothing)", file=sys.stderr)
        return
    from rich.console import Console
    from rich.table import Table

    if columns is None:
        columns = ["time"] if "time" in rows[0] else []
        for r in rows[:50]:
            for k in r:
                if k not in columns and k not in _HIDE and k != "id":
                    columns.append(k)
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for c in columns:
        table.add_column(c, no_wrap=True)
    for r in rows:  # Text: a key like "hmarl:book:WDOZ26" must not turn into an emoji, "[x]" into markup
        table.add_row(*(Text(_cell(r.get(c, ""))) for c in columns))
    # piped: no terminal width to respect, and folded cells are useless to grep/awk
    Console(width=None if sys.stdout.isatty() else 400).print(table)


def run(args: argparse.Namespace) -> int:
    from app import config as config_mod
    from app.io.valkey_server import ValkeyServerError, mask_url

    cfg = config_mod.load(args.config)
    url = args.url or cfg.valkey.url
    try:
        return asyncio.run(_main(args, url, cfg.run.data_dir, cfg.valkey.prefix))
    except BrokenPipeError:  # `| head`: the reader had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ValueError as exc:
        print(f"query: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValkeyServerError as exc:
        print(f"query: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    except (OSError, ConnectionError) as exc:
        print(f"query: cannot reach Valkey at {mask_url(url)} ({exc})", file=sys.stderr)
        return EXIT_STORAGE
    except Exception as exc:  # noqa: BLE001 - redis errors: one line, storage exit code
        if type(exc).__module__.startswith("redis"):
            print(f"query: Valkey at {mask_url(url)}: {exc}", file=sys.stderr)
            return EXIT_STORAGE
        raise
    except KeyboardInterrupt:
        return 130
