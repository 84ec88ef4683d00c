"""`python -m app <command>`: each command is a module in app/commands exposing NAME, HELP, add_arguments, run."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import app.commands

EXIT_OK, EXIT_CONFIG, EXIT_FEED, EXIT_STORAGE, EXIT_INTERRUPTED = 0, 2, 3, 4, 130


def _commands() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(app.commands.__path__):
        module = importlib.import_module(f"app.commands.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found[module.NAME] = module
    return dict(sorted(found.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="hmarl: ProfitDLL market data and a "
                                     "hierarchical multi-agent trader for B3 futures")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _commands().items():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)  # type: ignore[attr-defined]
        p.add_argument("--config", default=None, help="path to config.toml (default: ./config.toml if present)")
        module.add_arguments(p)  # type: ignore[attr-defined]
        p.set_defaults(_module=module)
    return parser


def setup_logging(level: str = "info") -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return EXIT_CONFIG
    if args.config is None:
        from pathlib import Path

        if Path("config.toml").is_file():
            args.config = "config.toml"
    from app.config import ConfigError

    try:
        return int(args._module.run(args))
    except ConfigError as exc:  # every command: one line naming the key, exit 2
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
