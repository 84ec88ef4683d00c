"""`python -m app tail`: print the ZeroMQ stream of a running hmarl, live, for humans (or as JSON lines)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from typing import Any

NAME = "tail"
HELP = "print the live ZeroMQ stream of a running hmarl (trades, signals, decisions, fills, state, metrics)"

_SKIP = {"v", "type", "seq", "received_ns"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topic", action="append", default=None, metavar="PREFIX",
                   help="only topics starting with PREFIX (repeatable), e.g. trade.WDO, decision., signal.flow")
    p.add_argument("--endpoint", default=None, help="PUB endpoint to connect to (default: zmq.endpoint of the config)")
    p.add_argument("--json", action="store_true", help="one JSON object per message: {topic, ...payload}")
    p.add_argument("--count", type=int, default=0, metavar="N", help="exit after N messages (0 = never)")
    p.add_argument("--timeout", type=float, default=0, metavar="SECONDS",
                   help="exit with code 1 if nothing arrives for this long (0 = wait forever)")


def connect_endpoint(endpoint: str) -> str:
    """A bind address (tcp://*:5555, tcp://0.0.0.0:5555) -> one a subscriber can connect to."""
    for wildcard in ("tcp://*:", "tcp://0.0.0.0:"):
        if endpoint.startswith(wildcard):
            return "tcp://127.0.0.1:" + endpoint[len(wildcard):]
    return endpoint


def _clock(ts: Any) -> str:
    if not isinstance(ts, int) or ts <= 0:
        return " " * 12
    from app.io.query import _tz

    return datetime.fromtimestamp(ts / 1e9, tz=_tz()).strftime("%H:%M:%S.%f")[:12]


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v[:5]) + (",…" if len(v) > 5 else "") + "]"
    return str(v)


def format_line(topic: str, msg: dict[str, Any]) -> str:
    """One readable line per message: local B3 time, topic, then the fields that matter."""
    kind = msg.get("type")
    head = f"{_clock(msg.get('ts'))} {topic:<24}"
    if kind == "Trade":
        return (f"{head} {msg['price']:>10.6g} x{msg['qty']:<4} {msg['aggressor']:<7} #{msg['trade_id']} "
                f"{msg['buyer']}->{msg['seller']}" + (" edit" if msg.get("edit") else ""))
    if kind == "Book":
        levels = msg.get("levels") or []
        best = f"{levels[0][0]:.6g} x{levels[0][1]}" if levels else "empty"
        return f"{head} {msg['side']:<3} {best} ({len(levels)} levels)"
    if kind == "Decision":
        return f"{head} target {msg['target']:+d} regime {msg['regime']} {msg.get('reason', '')}"
    fields = " ".join(f"{k}={_value(v)}" for k, v in msg.items()
                      if k not in _SKIP and k != "ts" and not (k == "ticker" and str(v) in topic))
    return f"{head} {fields}"


def run(args: argparse.Namespace) -> int:
    import msgspec
    import zmq

    from app import config as config_mod

    endpoint = args.endpoint
    if endpoint is None:
        endpoint = config_mod.load(args.config).zmq.endpoint
    endpoint = connect_endpoint(endpoint)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1_000_000)
    for prefix in args.topic or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sock.connect(endpoint)
    if not args.json:
        print(f"tail: {endpoint} topics {args.topic or ['(all)']} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    decoder = msgspec.msgpack.Decoder()
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    received = 0
    last = time.monotonic()
    out = sys.stdout
    try:
        while True:
            if not poller.poll(200):
                if args.timeout and time.monotonic() - last > args.timeout:
                    print(f"tail: nothing from {endpoint} for {args.timeout:g} s", file=sys.stderr)
                    return 1
                continue
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                last = time.monotonic()
                if len(frames) != 2:
                    continue
                topic = frames[0].decode(errors="replace")
                try:
                    msg = decoder.decode(frames[1])
                except msgspec.DecodeError:
                    continue
                if args.json:
                    out.write(json.dumps({"topic": topic, **msg}, separators=(",", ":")) + "\n")
                else:
                    out.write(format_line(topic, msg) + "\n")
                received += 1
                if args.count and received >= args.count:
                    out.flush()
                    return 0
            out.flush()
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # | head: the reader had enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        sock.close(0)
        ctx.term()
