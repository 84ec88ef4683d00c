"""ABI conformance: struct layouts against the spec's x64 table, exports against what the binding resolves."""
import ctypes
import os
import shutil
import subprocess

import pytest

from app.feed.profitdll import abi
from app.feed.profitdll.library import ProfitLibrary
from app.feed.simulator import library_path

# every name of spec §3 the stand-in may export (the real ABI); SIM_* is the stand-in's own control surface
REAL_NAMES = set(abi.FUNCTIONS) | set(abi.FIXED_BUILD_EXPORTS) | set(abi.OPTIONAL_EXPORTS) | {
    "GetHealthStatus", "SetEnabledLogToDebug", "GetTheoreticalValues", "SetHistoryTradeCallbackV2",
    "GetHistoryTrades", "SetDailyCallback", "SetOfferBookCallbackV2", "SetTheoreticalPriceCallback",
}


@pytest.mark.parametrize("name", sorted(abi.X64_LAYOUT))
def test_struct_size_and_offsets_match_the_spec_x64_table(name):
    size, offsets = abi.X64_LAYOUT[name]
    struct = abi.STRUCTS[name]
    assert ctypes.sizeof(struct) == size
    for field, offset in offsets.items():
        assert getattr(struct, field).offset == offset, field


def test_every_declared_function_has_argtypes_and_restype():
    lib = ProfitLibrary(ctypes.CDLL(str(library_path())), "stand-in")
    for name in abi.FUNCTIONS:
        fn = getattr(lib, name)
        assert fn.restype is not None and fn.argtypes is not None, name


def _exported(path) -> set[str]:
    nm = shutil.which("nm")
    assert nm, "binutils nm is needed for the export check"
    out = subprocess.run([nm, "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if " T " in line}


def test_stand_in_exports_exactly_real_abi_names_plus_its_sim_controls():
    exported = _exported(library_path())
    assert set(abi.FUNCTIONS) <= exported, set(abi.FUNCTIONS) - exported
    others = {n for n in exported - REAL_NAMES if not n.startswith("SIM_") and not n.startswith("PyInit_")}
    assert not others, f"stand-in exports names the real DLL does not have: {others}"


def test_wrong_dll_path_is_one_clear_error():
    from app.feed.base import FeedError
    from app.feed.profitdll.library import load

    with pytest.raises(FeedError, match="DLL not found at /nonexistent/ProfitDLL64.dll; set feed.dll_path"):
        load("/nonexistent/ProfitDLL64.dll")


def test_a_library_without_the_abi_is_refused_naming_the_missing_functions():
    from app.feed.base import FeedError
    from app.feed.profitdll.library import load

    libm = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                             "/lib64/libm.so.6", "/usr/lib64/libm.so.6") if os.path.exists(p)), None)
    if libm is None:
        pytest.skip("no libm on this system to stand for a wrong DLL")
    with pytest.raises(FeedError, match="does not export .*DLLInitializeMarketLogin"):
        load(libm)
