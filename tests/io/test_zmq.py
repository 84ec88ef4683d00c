import asyncio
import contextlib
import json
import subprocess
import sys
import time

import msgspec
import pytest
import zmq
import zmq.asyncio

from app.config import ZmqConfig
from app.events import SCHEMA_VERSION
from app.io import zmq_native
from app.io.zmq_publisher import Publisher, topic_of
from tests.conftest import ROOT
from tests.io.samples import one_of_each, trade

EXPECTED_TOPICS = ["trade.WDOZ26", "book.WDOZ26", "state", "state", "signal.flow.WDOZ26", "decision.WDOZ26",
                   "order.WDOZ26", "fill.WDOZ26", "position.WDOZ26", "reward.flow.WDOZ26", "risk.WDOZ26", "metrics"]


def test_topics_are_the_documented_ones():
    assert [topic_of(e) for e in one_of_each()] == EXPECTED_TOPICS


@contextlib.asynccontextmanager
async def subscriber(endpoint: str, prefix: bytes = b"", hwm: int = 0):
    ctx = zmq.asyncio.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        if hwm:
            sub.setsockopt(zmq.RCVHWM, hwm)
        sub.setsockopt(zmq.SUBSCRIBE, prefix)
        sub.connect(endpoint)
        yield sub
    finally:
        ctx.destroy(0)  # also on a failed assertion: a live socket would hang interpreter exit


BATCH = [True]  # the send path of the tests that take the `send_path` fixture


@pytest.fixture(params=["batch", "pyzmq"])
def send_path(request):
    """Both ways to hand messages to ZeroMQ: app/io/zmq_batch.c in one call per batch, pyzmq per frame."""
    if request.param == "batch" and zmq_native.batch_sender() is None:
        pytest.skip("app.io._zmq_batch not built (no C compiler)")
    BATCH[0] = request.param == "batch"
    yield request.param
    BATCH[0] = True


@contextlib.asynccontextmanager
async def publisher(**kw):
    pub = Publisher(ZmqConfig(endpoint="tcp://127.0.0.1:0", **kw), batch=BATCH[0])
    assert (pub._batch is not None) == BATCH[0]
    await pub.start()
    try:
        yield pub
    finally:
        await pub.close()


async def _wait_subscribed(pub: Publisher, sub: zmq.asyncio.Socket, ticker: str = "PROBE") -> None:
    """PUB/SUB has no delivery before the subscription arrives: publish probes until one gets through."""
    for _ in range(200):
        pub.publish([trade(0, ticker=ticker)])
        if await sub.poll(50):
            while await sub.poll(0):
                await sub.recv_multipart()
            return
    raise AssertionError("subscriber never connected")


def test_a_subscriber_receives_every_topic_with_the_documented_frames(send_path):
    async def main():
        async with publisher() as pub, subscriber(pub.endpoint) as sub:
            await _wait_subscribed(pub, sub)
            events = one_of_each()
            pub.publish(events)
            got = [await asyncio.wait_for(sub.recv_multipart(), 5) for _ in events]
            return events, got, pub.stats()

    events, got, stats = asyncio.run(main())
    assert [frames[0].decode() for frames in got] == EXPECTED_TOPICS
    for event, frames in zip(events, got):
        assert len(frames) == 2
        payload = msgspec.msgpack.decode(frames[1])
        assert payload["v"] == SCHEMA_VERSION and payload["type"] == type(event).__name__
        assert payload["seq"] >= 1
        body = {k: v for k, v in payload.items() if k not in ("v", "seq", "type")}
        assert msgspec.convert(body, type(event)) == event
    assert stats["dropped"] == 0 and stats["sent"] >= len(events)


def test_per_topic_seq_lets_a_subscriber_count_what_it_missed(send_path):
    async def main():
        async with publisher() as pub, subscriber(pub.endpoint, b"trade.WINZ26") as sub:
            await _wait_subscribed(pub, sub, "WINZ26XX")
            pub.publish([trade(i, ticker="WINZ26" if i % 2 else "WDOZ26") for i in range(10)])
            return [msgspec.msgpack.decode((await asyncio.wait_for(sub.recv_multipart(), 5))[1])["seq"]
                    for _ in range(5)]

    assert asyncio.run(main()) == [1, 2, 3, 4, 5]


def test_a_stalled_subscriber_never_stalls_the_loop_and_drops_are_counted(send_path):
    async def main():
        async with publisher(hwm=1000) as pub, subscriber(pub.endpoint, hwm=1000) as sub:
            await _wait_subscribed(pub, sub)
            return await flood(pub)

    async def flood(pub):
        # the subscriber now stops reading; the loop keeps publishing 200k events in batches
        lags = []
        stop = asyncio.Event()

        async def heartbeat():
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                t = loop.time()
                await asyncio.sleep(0.005)
                lags.append(loop.time() - t - 0.005)

        hb = asyncio.create_task(heartbeat())
        batch = [trade(i) for i in range(500)]
        slowest = 0.0
        for _ in range(400):
            t0 = time.perf_counter()
            pub.publish(batch)
            slowest = max(slowest, time.perf_counter() - t0)
            await asyncio.sleep(0)
        stop.set()
        await hb
        return pub.stats(), slowest, max(lags)

    stats, slowest, max_lag = asyncio.run(main())
    assert stats["dropped"] > 100_000  # the stalled subscriber's queues hold a few thousand at most
    assert stats["sent"] + stats["dropped"] >= 200_000
    assert slowest < 0.25 and max_lag < 0.25


def test_no_subscriber_at_all_is_fine(send_path):
    async def main():
        async with publisher(hwm=10) as pub:
            pub.publish([trade(i) for i in range(10_000)])
            return pub.stats()

    st = asyncio.run(main())
    assert st["sent"] == 10_000 and st["dropped"] == 0


def test_tail_command_prints_the_stream(tmp_path):
    async def main():
        async with publisher() as pub:
            return await run_tail(pub)

    async def run_tail(pub):
        env_path = str(ROOT)
        proc = subprocess.Popen([sys.executable, "-m", "app", "tail", "--endpoint", pub.endpoint, "--json",
                                 "--topic", "trade.", "--topic", "decision.", "--count", "3", "--timeout", "20"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                env={**__import__("os").environ, "PYTHONPATH": env_path})
        events = one_of_each()
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            pub.publish(events)  # until tail has subscribed and got its three messages
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=10)
        return proc.returncode, out, err

    code, out, err = asyncio.run(main())
    assert code == 0, err
    lines = [json.loads(ln) for ln in out.splitlines()]
    assert len(lines) == 3
    assert {ln["topic"] for ln in lines} <= {"trade.WDOZ26", "decision.WDOZ26"}
    assert all(ln["v"] == SCHEMA_VERSION for ln in lines)


def test_tail_human_lines():
    from app.commands.tail import format_line

    t = msgspec.msgpack.decode(__import__("app.io.codec", fromlist=["x"]).encode(trade(3)))
    line = format_line("trade.WDOZ26", t)
    assert "trade.WDOZ26" in line and "5001.5" in line and "x4" in line and "buy" in line


def test_topics_nobody_subscribed_to_are_not_sent_and_take_no_seq(send_path):
    """ZeroMQ would discard them anyway: the publisher does not hand them over, still counts them as sent, and a
    topic's "seq" counts what a subscriber could have received, so it stays gap-free."""
    from app.events import InvalidTicker, State

    async def main():
        async with publisher() as pub:
            pub.publish([trade(i) for i in range(100)])  # nobody listens yet
            quiet = pub.stats()
            async with subscriber(pub.endpoint, b"trade.WINZ26") as sub, subscriber(pub.endpoint, b"state") as st:
                await _wait_subscribed(pub, sub, "WINZ26XX")
                for _ in range(100):  # the "state" subscription reaches the publisher too
                    if pub.stats()["subscribed_prefixes"] == 2:
                        break
                    await asyncio.sleep(0.05)
                pub.publish([trade(i, ticker="WINZ26" if i % 2 else "WDOZ26") for i in range(10)])
                pub.publish([State(conn_type=2, result=4, name="MARKET_CONNECTED", received_ns=1),
                             InvalidTicker(ticker="XXXX", exchange="F", received_ns=2)])
                wins = [msgspec.msgpack.decode((await asyncio.wait_for(sub.recv_multipart(), 5))[1])["seq"]
                        for _ in range(5)]
                states = [msgspec.msgpack.decode((await asyncio.wait_for(st.recv_multipart(), 5))[1])
                          for _ in range(2)]
                return quiet, wins, states, pub.stats()

    quiet, wins, states, stats = asyncio.run(main())
    assert quiet["sent"] == 100 and quiet["no_subscriber"] == 100 and quiet["subscribed_prefixes"] == 0
    assert wins == [1, 2, 3, 4, 5]
    # State and InvalidTicker share the "state" topic, so they share its counter
    assert [(m["type"], m["seq"]) for m in states] == [("State", 1), ("InvalidTicker", 2)]
    assert stats["subscribed_prefixes"] == 2 and stats["no_subscriber"] >= 105 and stats["dropped"] == 0
