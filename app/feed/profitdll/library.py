"""Load ProfitDLL (or the native stand-in) and declare every function the binding calls.

Nothing here calls a DLL function: calls happen only on the owner thread (see session.py).
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

from app.feed.base import FeedError
from app.feed.profitdll.abi import FIXED_BUILD, FIXED_BUILD_EXPORTS, FUNCTIONS, OPTIONAL_EXPORTS

# file names the real DLL ships under (spec §1): 64-bit packages use either name
DLL_NAMES = ("ProfitDLL64.dll", "ProfitDLL.dll")


class ProfitLibrary:
    """The resolved exports of one loaded library, each with argtypes and restype set."""

    def __init__(self, handle: ctypes.CDLL, path: str, allow_old: bool = False) -> None:
        self.handle = handle
        self.path = path
        missing = [name for name in FUNCTIONS if not hasattr(handle, name)]
        if missing:
            raise FeedError(
                f"{path} does not export {', '.join(missing)}; it is not a ProfitDLL build this binding supports "
                "(needs 4.0.0.31 or newer)"
            )
        lacking = [name for name in FIXED_BUILD_EXPORTS if not hasattr(handle, name)]
        # True when the build predates the fixes and the operator chose to run it anyway
        self.old_build = bool(lacking)
        if lacking and not allow_old:
            raise FeedError(
                f"{path} is a ProfitDLL build older than {FIXED_BUILD} (no {', '.join(lacking)}): those builds lose "
                "trades on SetTradeCallbackV2, read the buy side for every price depth and send no full book after "
                f"a resubscribe; install ProfitDLL {FIXED_BUILD} or newer, or set feed.allow_old_dll = true to run "
                "it anyway"
            )
        declared = dict(FUNCTIONS)
        declared.update({k: v for k, v in FIXED_BUILD_EXPORTS.items() if k not in lacking})
        declared.update({k: v for k, v in OPTIONAL_EXPORTS.items() if hasattr(handle, k)})
        # optional exports this build lacks: None, so a caller tests before it calls
        for name in OPTIONAL_EXPORTS:
            setattr(self, name, None)
        for name, (restype, argtypes) in declared.items():
            fn = getattr(handle, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    @staticmethod
    def resolved_names() -> list[str]:
        return sorted(FUNCTIONS)


def load(path: str | os.PathLike[str], allow_old: bool = False) -> ProfitLibrary:
    p = Path(path)
    if not p.exists():
        raise FeedError(f"DLL not found at {p}; set feed.dll_path in config.toml to the ProfitDLL64.dll location")
    try:
        if os.name == "nt":
            # companion OpenSSL DLLs live beside ProfitDLL: let the loader find them there
            os.add_dll_directory(str(p.parent.resolve()))  # type: ignore[attr-defined]
            handle = ctypes.WinDLL(str(p))  # type: ignore[attr-defined]
        else:
            handle = ctypes.CDLL(str(p))
    except OSError as exc:
        raise FeedError(
            f"cannot load {p}: {exc}; check the file is the 64-bit DLL matching this Python and that its "
            "companion DLLs (libcrypto/libssl) are in the same folder"
        ) from None
    return ProfitLibrary(handle, str(p), allow_old)


def find_real_dll(configured: str) -> Path:
    """feed.dll_path if set, else the usual names beside the working directory and on PATH (Windows)."""
    if configured:
        return Path(configured)
    candidates = [Path.cwd() / name for name in DLL_NAMES]
    candidates += [Path.cwd() / "DLLs" / "Win64" / name for name in DLL_NAMES]
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry:
            candidates += [Path(entry) / name for name in DLL_NAMES]
    for c in candidates:
        if c.is_file():
            return c
    raise FeedError(
        "ProfitDLL not found: set feed.dll_path in config.toml to the full path of ProfitDLL64.dll "
        "(or put it in the working directory)"
    )
