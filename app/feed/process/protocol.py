"""What the feed child and the parent say to each other.

Two sockets per child, both bound by the parent on endpoints private to that child (a new pair for every restart,
so nothing an old child still had in flight can mix with the new one's stream):

- events (child PUSH -> parent PULL), two frames [kind, payload], in the order the child sent them:
  `events`  msgpack list of InputEvents: one bridge drain of the child = one message;
  `stats`   msgpack dict, every heartbeat interval: the child's feed/bridge/DLL/simulator counters (the heartbeat);
  `ready`   msgpack dict, once: the feed started and the tickers are subscribed;
  `error`   utf-8 text, once, just before the child exits non-zero;
  `bye`     msgpack dict (final stats), once, after a graceful stop: nothing follows it.
  `routing` msgpack list of RoutingEvents (order updates, trading results, accounts): one routing drain = one message.
- control (parent PAIR <-> child PAIR): commands [verb, *args] to the child, [`reply`, msgpack {ok, error}] back.
  Commands never wait behind market data because they travel on their own socket.
  `route` carries one Router call, msgpack {op, args}; its reply adds `value` (msgpack-able) or, on failure,
  `kind` (RoutingError, RoutingMoved, SendUnknown), `code`, `name`, `detail` (routing_remote.py).
"""
from __future__ import annotations

import os
import sys

EVENTS, STATS, READY, ERROR, BYE, REPLY = b"events", b"stats", b"ready", b"error", b"bye", b"reply"
ROUTING = b"routing"
STOP, SUBSCRIBE, UNSUBSCRIBE, ROUTE = b"stop", b"subscribe", b"unsubscribe", b"route"

# messages (one per bridge drain) queued per direction before a send would fail; the peer is a local process, so
# this only fills when the parent's loop stalls for a long time
HWM = 100_000
# the child's own overflow beyond the socket queue, in events; beyond it events are dropped and counted
OVERFLOW_EVENTS = 2_000_000


# the parent's private directory for the ipc sockets and the children's config files
DIR_PREFIX = "hmarl-feed-"


def heartbeat_interval(heartbeat_timeout: float) -> float:
    """Several heartbeats fit in the timeout, so one late message is never taken for a hung child."""
    return min(1.0, heartbeat_timeout / 5.0)


def endpoints(directory: str, incarnation: int) -> tuple[str, str]:
    """(events, control) for one child: ipc sockets in a private directory, loopback TCP where ipc is missing
    (Windows); a TCP endpoint ends in :* and is resolved by bind."""
    if sys.platform == "win32":
        return "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"
    return (f"ipc://{os.path.join(directory, f'events-{incarnation}')}",
            f"ipc://{os.path.join(directory, f'control-{incarnation}')}")
