"""config.toml says it holds every option with its default: every key of the typed defaults is there with the
same value, and nothing else (issue 10 item 6)."""
from __future__ import annotations

import tomllib
from typing import Any

import msgspec

from app.config import Config
from tests.conftest import ROOT

CHECKED = tuple(Config.__struct_fields__)  # every section


def _paths(data: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested tables as "a.b.c" -> value."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_paths(value, f"{prefix}.{key}" if prefix else key))
    return out


def test_config_toml_holds_every_option_with_its_default():
    defaults = msgspec.to_builtins(Config())
    in_file = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    for section in CHECKED:
        expected = _paths(defaults[section], section)
        found = _paths(in_file.get(section, {}), section)
        missing = sorted(set(expected) - set(found))
        assert not missing, f"config.toml lacks {missing}"
        differ = {k: (found[k], v) for k, v in expected.items() if found[k] != v}
        assert not differ, f"config.toml value differs from the default (file, default): {differ}"
        unknown = sorted(set(found) - set(expected))
        assert not unknown, f"config.toml has keys the typed config does not: {unknown}"
