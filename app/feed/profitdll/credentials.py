"""ProfitDLL credentials, from the environment only (never config.toml, never logged)."""
from __future__ import annotations

import os
from typing import NamedTuple

from app.feed.base import FeedError

ENV_KEY, ENV_USER, ENV_PASSWORD = "PROFITDLL_KEY", "PROFITDLL_USER", "PROFITDLL_PASSWORD"
# the routing (signature) password every order carries; the same name app/execution/live_guard.py checks
ENV_ROUTING_PASSWORD = "PROFITDLL_ROUTING_PASSWORD"


class Credentials(NamedTuple):
    key: str
    user: str
    password: str

    def __repr__(self) -> str:  # never leak a secret through a log line or a traceback
        return "Credentials(key=***, user=***, password=***)"

    __str__ = __repr__


def from_env() -> Credentials:
    values = {name: os.environ.get(name, "") for name in (ENV_KEY, ENV_USER, ENV_PASSWORD)}
    missing = [name for name, v in values.items() if not v]
    if missing:
        raise FeedError(f"missing environment variable(s) {', '.join(missing)}: set them to your ProfitDLL "
                        "activation key, user and password (they are never read from config.toml)")
    return Credentials(values[ENV_KEY], values[ENV_USER], values[ENV_PASSWORD])


SIMULATOR = Credentials("SIMULATOR-KEY", "simulator", "simulator")


class RoutingPassword:
    """The routing password, kept out of every repr, str and log line; `.value` is read only to fill a struct."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "RoutingPassword(***)"

    __str__ = __repr__


def routing_password_from_env() -> RoutingPassword:
    value = os.environ.get(ENV_ROUTING_PASSWORD, "")
    if not value:
        raise FeedError(f"missing environment variable {ENV_ROUTING_PASSWORD}: set it to your routing (signature) "
                        "password to send orders (it is never read from config.toml)")
    return RoutingPassword(value)


SIMULATOR_ROUTING = RoutingPassword("simulator")  # what the stand-in's broker accepts
