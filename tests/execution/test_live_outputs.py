"""Routing events through the pipeline: a broker fill becomes the same Fill and Position a paper fill does, and the
broker's update is published beside them on its own topic (real ZMQ on loopback)."""
import asyncio

import msgspec

from app import config
from app.events import OrderUpdate
from app.execution.live import LiveExecutor
from app.execution.order_book import OrderBook
from app.pipeline import Pipeline
from tests.execution.test_risk import Stream
from tests.io.test_zmq import _wait_subscribed, subscriber


def test_a_broker_fill_is_published_as_order_update_fill_and_position(tmp_path):
    cfg = config.load(overrides={"coordination.learner.regime_experts": False, "coordination.max_contracts": 4,
                                 "run.data_dir": str(tmp_path), "valkey.enabled": False, "journal.enabled": False,
                                 "zmq.endpoint": "tcp://127.0.0.1:0"})
    book, sent = OrderBook("run"), []

    async def main():
        pipe = Pipeline(cfg, fresh=True, live=lambda t, spec: LiveExecutor(t, spec, book,
                                                                            lambda o, order: sent.append(o)))
        await pipe.start()
        try:
            async with subscriber(pipe.publisher.endpoint) as sub:
                await _wait_subscribed(pipe.publisher, sub)
                s = Stream()
                pipe.on_batch(s.quote())
                d = pipe.hierarchy.desk("WDOJ24")
                d.learner.g = [0.0] * len(d.experts)
                d.learner.g[d.follow["orderflow"]], d.learner.g[d.index["flat"]] = 0.97, 0.03
                pipe.on_batch(s.noise(3) + s.sweep("buy"))
                assert len(sent) == 1
                o = sent[0]
                book.sent(o, 7)
                while await sub.poll(100):  # what the trades published
                    await sub.recv_multipart()
                pipe.on_routing([OrderUpdate(
                    local_id=7, cl_ord_id="X7", account="A1", broker=1, ticker="WDOJ24", exchange="F", side="buy",
                    order_type="market", status=2, status_name="Filled", qty=o.qty, traded_qty=o.qty, leaves_qty=0,
                    price=-1.0, stop_price=-1.0, avg_price=5001.0, text="", ts=s.ts, received_ns=1)])
                got = [await asyncio.wait_for(sub.recv_multipart(), 5) for _ in range(3)]
                return o, got
        finally:
            await pipe.stop()

    o, got = asyncio.run(main())
    assert [f[0].decode() for f in got] == ["order_update.WDOJ24", "fill.WDOJ24", "position.WDOJ24"]
    fill = msgspec.msgpack.decode(got[1][1])
    assert fill["qty"] == o.qty and fill["price"] == 5001.0 and fill["order_id"] == o.n
    assert msgspec.msgpack.decode(got[2][1])["qty"] == o.qty
