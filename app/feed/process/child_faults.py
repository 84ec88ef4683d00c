"""The feed child's test faults (--fault, see child.py's docstring): parsed here, armed by the child."""
from __future__ import annotations

import os
from typing import Any


def parse_faults(specs: list[str]) -> tuple[dict[str, float], int, tuple[int, str] | None]:
    """--fault values -> (SIM_ parameters to set, reinit-after count or 0, route-exit (N, where) or None)."""
    sim: dict[str, float] = {}
    reinit_after = 0
    route_exit = None
    for spec in specs:
        kind, _, value = spec.partition(":")
        try:
            if kind == "sim":
                name, _, number = value.partition("=")
                sim[name] = float(number)
            elif kind == "reinit-after":
                reinit_after = int(value)
            elif kind == "route-exit":
                n, _, where = value.partition(":")
                if where not in ROUTE_EXIT_POINTS:
                    raise ValueError
                route_exit = (int(n), where)
            else:
                raise ValueError
        except ValueError:
            raise SystemExit(f"bad --fault {spec!r}: use sim:NAME=VALUE, reinit-after:N or "
                             f"route-exit:N:before|inside|after") from None
    return sim, reinit_after, route_exit


ROUTE_EXIT_POINTS = ("before", "inside", "after")
ROUTE_EXIT_CODE = 70


def arm_route_exit(router: Any, n: int, where: str) -> Any:
    """Test fault: make the Nth SendOrder kill this process at `where`. Returns a hook for `after` (called with
    each route reply on the loop, before it is sent), None otherwise."""
    count = [0]
    send_now = router._dll_send_now

    def dying_send(*args: Any) -> int:
        count[0] += 1
        if count[0] == n and where == "before":
            os._exit(ROUTE_EXIT_CODE)
        local_id = send_now(*args)
        if count[0] == n and where == "inside":
            os._exit(ROUTE_EXIT_CODE)
        return local_id

    router._dll_send_now = dying_send
    if where != "after":
        return None

    def after(reply: dict[str, Any]) -> None:
        if count[0] >= n and reply.get("ok"):
            os._exit(ROUTE_EXIT_CODE)

    return after
