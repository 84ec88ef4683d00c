"""Whether a run may send live orders: every condition checked before the feed starts, the first one missing named.

Live orders are impossible unless all of these hold, because each one is a way a paper setup turns into real
orders by accident: the mode asked for in config, a routing login, an account to trade, the two limits that have no
default (an order-size cap and a price band: nobody else can choose them for this account), and a confirmation in
the environment of the process that will trade (so a config file copied to another machine, or a test, cannot
trade by itself). The routing password is read from the environment only, by the binding, never from config.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from app.config import Config, ConfigError

ENV_CONFIRM = "HMARL_LIVE_TRADING"  # must be exactly "yes"
ENV_ROUTING_PASSWORD = "PROFITDLL_ROUTING_PASSWORD"


class LiveRefused(ConfigError):
    """One line: what is missing and how to give it (exit code 2, like any configuration error)."""


def refusal(cfg: Config, env: Mapping[str, str] | None = None) -> str | None:
    """None when live trading may start; otherwise the first missing condition as one line."""
    env = os.environ if env is None else env
    ex, risk, feed = cfg.execution, cfg.risk, cfg.feed
    if ex.mode != "live":
        return None
    if feed.kind not in ("profitdll", "simulator"):
        return (f"execution.mode = \"live\" needs the DLL (feed.kind = \"profitdll\", or \"simulator\" to rehearse); "
                f"feed.kind is {feed.kind!r}")
    if not feed.routing:
        return "execution.mode = \"live\" needs feed.routing = true (a routing login); set it in config.toml"
    if not ex.account or ex.broker <= 0:
        return ("execution.mode = \"live\" needs execution.account and execution.broker (your routing account and "
                "its broker id, as the DLL lists them); set both in config.toml")
    if risk.max_order_qty <= 0:
        return "execution.mode = \"live\" needs risk.max_order_qty > 0 (contracts per order); set it in config.toml"
    if risk.price_band_ticks <= 0:
        return ("execution.mode = \"live\" needs risk.price_band_ticks > 0 (how far from the last trade an order may "
                "be priced); set it in config.toml")
    if risk.kill_switch:
        return "risk.kill_switch is on: a live run would only flatten; turn it off to trade, or run `flatten`"
    if feed.kind == "profitdll" and not env.get(ENV_ROUTING_PASSWORD):
        return f"execution.mode = \"live\" needs the routing password in the environment variable {ENV_ROUTING_PASSWORD}"
    if env.get(ENV_CONFIRM) != "yes":
        return (f"execution.mode = \"live\" needs {ENV_CONFIRM}=yes in the environment of this process: the "
                "confirmation that this run may send real orders")
    return None


def check(cfg: Config, env: Mapping[str, str] | None = None) -> None:
    why = refusal(cfg, env)
    if why is not None:
        raise LiveRefused(why)
