import asyncio
import threading
import time

from app.events import Trade
from app.feed.bridge import Bridge


def _trade(i: int) -> Trade:
    return Trade("WDOZ26", "F", 0, i, 5000.0, 1, 50000.0, 1, 2, "buy", time.monotonic_ns())


def test_events_from_a_foreign_thread_arrive_in_order_in_batches_with_one_wakeup_each():
    received: list[int] = []
    sizes: list[int] = []

    async def main() -> Bridge:
        loop = asyncio.get_running_loop()
        bridge = Bridge(loop, lambda batch: (received.extend(e.trade_id for e in batch), sizes.append(len(batch))))

        def producer() -> None:
            for i in range(50_000):
                bridge.put(_trade(i))

        t = threading.Thread(target=producer)
        t.start()
        while t.is_alive() or bridge.depth:
            await asyncio.sleep(0.001)
        t.join()
        await asyncio.sleep(0.01)
        return bridge

    bridge = asyncio.run(main())
    assert received == list(range(50_000))
    assert bridge.wakeups == len(sizes) < 50_000  # batching happened: fewer wake-ups than events
    assert bridge.stats()["max_batch"] == max(sizes)
    assert bridge.latency.count == 50_000


def test_put_after_the_loop_closed_never_raises_into_the_caller():
    loop = asyncio.new_event_loop()
    bridge = Bridge(loop, lambda batch: None)
    loop.close()
    bridge.put(_trade(1))  # the DLL thread must not see an exception
    assert bridge.lost_wakeups == 1 and bridge.depth == 1


def test_close_delivers_what_is_queued_then_discards():
    got: list[int] = []

    async def main() -> None:
        bridge = Bridge(asyncio.get_running_loop(), lambda b: got.extend(e.trade_id for e in b))
        bridge.put(_trade(1))
        bridge.close()
        bridge.put(_trade(2))
        await asyncio.sleep(0.01)

    asyncio.run(main())
    assert got == [1]


def test_batch_latency_recording_matches_per_event_recording():
    from app.metrics import LatencyHistogram

    now = 10**12
    values = sorted([0, 1, 5, 7, 8, 9, 15, 16, 17, 100, 12_345, 10**5, 10**9] + list(range(0, 10**7, 9_973)),
                    reverse=True)
    one, batch = LatencyHistogram(), LatencyHistogram()
    for v in values:
        one.record(v)
    batch.record_elapsed(now, [_trade(0).__class__("WDOZ26", "F", 0, 0, 1.0, 1, 1.0, 1, 2, "buy", now - v)
                               for v in values])
    assert (batch.counts, batch.count, batch.total, batch.max) == (one.counts, one.count, one.total, one.max)


def test_a_flood_is_taken_in_turns_with_the_loop_free_between_them():
    """A backlog larger than turn_events goes to the sink in chunks, in order, and whatever else is ready on the
    loop (here a task standing for the Valkey writer) runs between two chunks, not after the whole backlog."""
    seen: list[tuple[str, int]] = []
    got: list[int] = []

    async def main() -> Bridge:
        bridge = Bridge(asyncio.get_running_loop(), lambda b: (got.extend(e.trade_id for e in b),
                                                              seen.append(("batch", len(b)))), turn_events=1000)

        async def io() -> None:
            for _ in range(3):
                seen.append(("io", len(got)))
                await asyncio.sleep(0)

        bridge.put_batch([_trade(i) for i in range(4500)])  # one hand-off from the owner thread
        task = asyncio.ensure_future(io())
        while bridge.depth:
            await asyncio.sleep(0)
        await task
        bridge.put_batch([_trade(4500 + i) for i in range(2500)])
        bridge.close()  # at stop everything queued is delivered at once, in turns of the same size
        return bridge

    bridge = asyncio.run(main())
    assert got == list(range(7000))
    batches = [n for kind, n in seen if kind == "batch"]
    assert batches == [1000, 1000, 1000, 1000, 500, 1000, 1000, 500]
    ios = [n for kind, n in seen if kind == "io"]
    assert len(ios) == 3 and ios[-1] < 4500  # the other task ran before the backlog was through
    assert bridge.stats()["max_depth"] == 4500 and bridge.wakeups == 8


def test_the_loop_wakes_a_holding_owner_thread_once_its_backlog_is_down_to_the_resume_depth():
    """The native ring's owner thread holds records back while the loop has a deep backlog and sets hold_waiter: the
    loop calls it exactly once, at the first turn that leaves resume_depth events or fewer, and forgets it."""
    woken: list[int] = []

    async def main() -> Bridge:
        bridge = Bridge(asyncio.get_running_loop(), lambda b: None, turn_events=1000)
        bridge.put_batch([_trade(i) for i in range(4500)])
        bridge.resume_depth = 2000
        bridge.hold_waiter = lambda: woken.append(bridge.depth)
        while bridge.depth:
            await asyncio.sleep(0)
        bridge.put_batch([_trade(i) for i in range(1500)])  # no waiter set: nothing to call
        while bridge.depth:
            await asyncio.sleep(0)
        return bridge

    bridge = asyncio.run(main())
    assert woken == [1500] and bridge.hold_waiter is None
