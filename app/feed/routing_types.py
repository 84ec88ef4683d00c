"""What an order router takes and raises, shared by the DLL binding (app.feed.profitdll.routing) and the proxy to a
process-isolated feed child (app.feed.process.routing_remote), so the loop side never imports the binding."""
from __future__ import annotations

from typing import NamedTuple


class Account(NamedTuple):
    """Which account an order goes to: the DLL's BrokerID and AccountID (RoutingAccount fits as well)."""
    broker: int
    account: str
    sub_account: str = ""


class RoutingError(Exception):
    """A routing call the DLL refused: its NResult code, that code's name, and what was being done."""

    def __init__(self, code: int, name: str, detail: str) -> None:
        super().__init__(f"{detail}: {name} ({code})")
        self.code, self.name, self.detail = code, name, detail


class RoutingMoved(RoutingError):
    """The routing connection came back (or the DLL's process was replaced) since the caller last reconciled: the
    order was not sent, because the broker's view may have changed in between."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "RoutingReconnected", detail)


class SendUnknown(RoutingError):
    """This client id reached SendOrder before and its answer was lost (a crash in between): never sent again;
    reconciliation finds it at the broker or not."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "OutcomeUnknown", detail)
