"""The live fault soak's outside judge: orders that got a local id after reconciliation disagreed are counted from
the routing journals (the operator's flatten excepted), so the check can fail."""
import asyncio

from app.config import JournalConfig
from app.events import KillSwitch, OrderSent
from app.execution.order_book import TAKEN_OVER
from app.execution.routing_journal import RoutingJournal
from app.soak.live_faults import DISAGREED, sent_while_disagreeing


class Inputs:
    def __init__(self, path):
        self.path, self.seq = path, 0


def write(run_dir, events):
    async def go():
        j = RoutingJournal(Inputs(run_dir), JournalConfig())
        await j.open()
        for i, e in enumerate(events):
            j.inputs.seq = i
            j.record([e])
        await j.close(5.0)
    asyncio.run(go())


def sent(n, local_id, why=""):
    return OrderSent(n, f"r-{n}", "WDOZ26", "buy", 1, local_id, why, 0)


def test_sends_after_a_disagreement_are_counted_until_flatten(tmp_path):
    write(tmp_path / "run-a", [sent(1, 11), KillSwitch(True, DISAGREED + ": WDOZ26 position", 0), sent(2, 0, "no"),
                               sent(3, 13), sent(4, 14, TAKEN_OVER), KillSwitch(True, "flatten", 0), sent(5, 15)])
    write(tmp_path / "run-b", [sent(1, 21), sent(2, 22)])
    assert sent_while_disagreeing(tmp_path) == (1, 1)  # order 3 only: 2 was refused, 4 taken over, 5 flatten's
