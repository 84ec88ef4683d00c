"""Which specialists exist: the built-in four, and a user's own by import path ("mypkg.signals:MySpecialist").

A user specialist is a `BaseSpecialist` subclass (app/agents/base.py documents the contract). It is constructed as
`cls(market, params)`, where `params` is a SimpleNamespace of its `[agents.params.<name>]` table with `horizon`
always set (the table's value, else the class's `default_horizon`). The learner treats it like a built-in one: its
signal becomes experts at every configured horizon, with a contrarian twin, each scored on its own P&L.
"""
from __future__ import annotations

import importlib
import re
from types import SimpleNamespace
from typing import Any

from app.agents.base import BaseSpecialist, MarketState
from app.agents.footprint import Footprint
from app.agents.liquidity import Liquidity
from app.agents.orderflow import OrderFlow
from app.agents.tape import Tape

BUILTIN: dict[str, type[BaseSpecialist]] = {"orderflow": OrderFlow, "liquidity": Liquidity, "tape": Tape,
                                            "footprint": Footprint}
_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # goes into expert names, ZMQ topics and Valkey keys


class RegistryError(ValueError):
    """An `agents.enabled` entry that cannot be used; the message names it and the fix."""


def resolve(entry: str) -> type[BaseSpecialist]:
    cls = BUILTIN.get(entry)
    if cls is not None:
        return cls
    if not _PATH.match(entry):
        raise RegistryError(f"{entry!r} is neither a built-in specialist ({', '.join(BUILTIN)}) nor an import path "
                            "like \"mypkg.signals:MySpecialist\"")
    module_name, class_name = entry.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import error of the user's module must not become a traceback
        raise RegistryError(f"{entry!r}: cannot import {module_name} ({type(exc).__name__}: {exc}); check the "
                            "module path and that its package is installed or on PYTHONPATH") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise RegistryError(f"{entry!r}: {module_name} has no {class_name}; check the class name")
    if not (isinstance(cls, type) and issubclass(cls, BaseSpecialist)):
        raise RegistryError(f"{entry!r}: {class_name} is not a subclass of app.agents.base.BaseSpecialist; "
                            "derive it from that class")
    if not _NAME.match(getattr(cls, "name", "")) or cls.name == "base" or cls.name in BUILTIN or cls.name == "flat":
        raise RegistryError(f"{entry!r}: set the class attribute `name` to a short lower-case identifier of your own "
                            f"(letters, digits, _), not one of {', '.join([*BUILTIN, 'flat'])}")
    return cls


def build(entry: str, market: MarketState, agents_cfg: Any) -> BaseSpecialist:
    """One specialist for one ticker's market state."""
    cls = resolve(entry)
    if entry in BUILTIN:
        return cls(market, getattr(agents_cfg, entry))  # type: ignore[call-arg]
    table = dict(agents_cfg.params.get(cls.name, {}))
    table.setdefault("horizon", cls.default_horizon)
    horizon = table["horizon"]
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise RegistryError(f"agents.params.{cls.name}.horizon: {horizon!r} must be a whole number of trades >= 1")
    return cls(market, SimpleNamespace(**table))  # type: ignore[call-arg]


def base_horizon(entry: str, agents_cfg: Any) -> int:
    cls = resolve(entry)
    if entry in BUILTIN:
        return int(getattr(agents_cfg, entry).horizon)
    return int(agents_cfg.params.get(cls.name, {}).get("horizon", cls.default_horizon))
