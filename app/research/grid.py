"""`--grid KEY=V1,V2,...` -> the settings to sweep, every value typed and validated against the config.

A key is a dotted config key (as config.load's overrides take them). A value is read as the type the key already
has in the base config (bool: true/false, int, float, str; a list as [a,b] with commas inside brackets), then the
whole override goes through the config's own validation, so a value the App would refuse (entry_threshold=1.5) is
refused here, before any work, with one line naming the key.
"""
from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec

from app import config as config_mod

Setting = tuple[tuple[str, Any], ...]  # ((dotted key, value), ...) sorted by key: hashable and ordered


class GridError(ValueError):
    """A bad --grid: one line naming the key or value."""


def _split_values(text: str) -> list[str]:
    """Commas separate values except inside brackets, so list values ([1,2],[1,2,4]) survive."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def _current(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    path = key.split(".")
    for i, part in enumerate(path):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(path[:i]) or "the top level"
            known = sorted(node) if isinstance(node, dict) else []
            raise GridError(f"--grid {key}: no such config key ({part!r} is not in {where}"
                            + (f"; known there: {', '.join(known)}" if known else "") + ")")
        node = node[part]
    if isinstance(node, dict):
        raise GridError(f"--grid {key}: is a section, not a setting; name one of its keys: {', '.join(sorted(node))}")
    return node


def _typed(key: str, raw: str, like: Any) -> Any:
    if raw == "":
        raise GridError(f"--grid {key}: an empty value; give values as {key}=V1,V2")
    try:
        if isinstance(like, bool):  # before int: bool is an int in Python
            low = raw.lower()
            if low not in ("true", "false"):
                raise ValueError
            return low == "true"
        if isinstance(like, int):
            return int(raw)
        if isinstance(like, float):
            return float(raw)
        if isinstance(like, list):
            value = json.loads(raw)
            if not isinstance(value, list):
                raise ValueError
            return value
        return raw
    except ValueError:
        kind = type(like).__name__
        raise GridError(f"--grid {key}={raw}: not a {kind} (the config's {key} is {like!r})") from None


def parse(specs: list[str], base: config_mod.Config) -> list[tuple[str, list[Any]]]:
    """[(key, [values...]), ...] sorted by key; values keep the order given (the heat map's axes follow it)."""
    if not specs:
        raise GridError("no --grid given; sweep at least one key, e.g. --grid coordination.entry_threshold=0.3,0.5")
    data = msgspec.to_builtins(base)
    out: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, rest = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GridError(f"--grid {spec}: expected KEY=V1,V2,... (a dotted config key, then values)")
        if key in out:
            raise GridError(f"--grid {key}: given twice; put all its values in one --grid")
        like = _current(data, key)
        values = [_typed(key, raw, like) for raw in _split_values(rest)]
        if len(set(map(repr, values))) != len(values):
            raise GridError(f"--grid {key}: a value is repeated ({rest})")
        for v in values:
            try:
                config_mod.with_overrides(base, {key: v})
            except config_mod.ConfigError as err:
                raise GridError(f"--grid {key}={format_value(v)}: refused by the config ({err})") from None
        out[key] = values
    return sorted(out.items())


def settings(axes: list[tuple[str, list[Any]]]) -> list[Setting]:
    """Every combination, in a fixed order (keys sorted, each key's values in the order given)."""
    keys = [k for k, _ in axes]
    return [tuple(zip(keys, combo)) for combo in itertools.product(*(vs for _, vs in axes))]


def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    return str(v)


def label(s: Setting) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in s) or "(defaults)"


def to_toml(s: Setting, header: str = "") -> str:
    """A config fragment: one table per section, so `--config` reads it as a config file (the rest defaults)."""
    sections: dict[str, list[str]] = {}
    for key, value in s:
        section, _, leaf = key.rpartition(".")
        sections.setdefault(section, []).append(f"{leaf} = {_toml_value(value)}")
    lines = [f"# {line}" for line in header.splitlines()]
    for section in sorted(sections):
        if lines:
            lines.append("")
        if section:
            lines.append(f"[{section}]")
        lines.extend(sections[section])
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string
