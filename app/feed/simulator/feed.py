"""Feed over the native stand-in: the ProfitDLL feed with another library and a synthetic market."""
from __future__ import annotations

from typing import Any

from app.feed.profitdll import credentials
from app.feed.profitdll.feed import ProfitDllFeed
from app.feed.profitdll.session import DllSession
from app.feed.simulator import SimControl, library_path


class SimulatorFeed(ProfitDllFeed):
    name = "simulator"

    def library_path(self) -> str:
        return str(library_path(self.cfg.simulator.library))

    def credentials(self) -> credentials.Credentials:
        return credentials.SIMULATOR

    def routing_password(self) -> credentials.RoutingPassword:
        return credentials.SIMULATOR_ROUTING

    def control(self) -> SimControl | None:
        return SimControl(self.session.lib.handle) if self.session is not None else None

    def clock_follows_machine(self) -> bool:
        # a stand-in started at a fixed simulator.start keeps that date: its clock is not meant to match ours
        return not self.cfg.simulator.start

    async def prepare(self, session: DllSession) -> None:
        await session.owner.call(SimControl(session.lib.handle).configure, self.cfg.simulator)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        control = self.control()
        if control is not None:
            out["simulator"] = control.stats()
            # the callbacks' dwell timed by the DLL side: the same yardstick for the native and ctypes paths
            out["simulator"]["callback_dwell"] = control.callback_dwell().summary_us()
        return out
