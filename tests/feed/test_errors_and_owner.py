import asyncio
import threading

import pytest

from app.feed.owner_thread import OwnerThread
from app.feed.profitdll import errors


def test_every_nl_code_maps_to_a_named_exception_with_code_and_function():
    for name, (hexcode, _meaning) in errors._CODES.items():
        code = hexcode - (1 << 32)
        with pytest.raises(errors.NLError) as info:
            errors.check("SubscribeTicker", code)
        assert info.value.name == name
        assert info.value.code == code
        assert "SubscribeTicker" in str(info.value) and name in str(info.value)
    assert errors.check("X", 0) == 0
    assert errors.check_count("GetPriceDepthSideCount", 7) == 7


def test_a_legacy_positive_code_is_an_error_not_a_success():
    with pytest.raises(errors.NLError, match=r"SubscribeTicker returned .*80 .*NL_ERR_INIT"):
        errors.check("SubscribeTicker", 80)
    with pytest.raises(errors.NLError):
        errors.check("DLLFinalize", 1)
    with pytest.raises(errors.NLError, match="NL_INVALID_ARGS"):
        errors.check_count("GetPriceDepthSideCount", errors.NL_INVALID_ARGS)


def test_owner_thread_runs_commands_on_itself_in_order_and_returns_errors_to_the_loop():
    owner = OwnerThread("test-owner")
    seen: list[tuple[int, int]] = []

    def record(i: int) -> int:
        seen.append((i, threading.get_ident()))
        return i * 2

    def boom() -> None:
        raise errors.error_class(errors.NL_INVALID_ARGS)("SubscribeTicker", errors.NL_INVALID_ARGS)

    async def main() -> list[int]:
        results = await asyncio.gather(*(owner.call(record, i) for i in range(20)))
        with pytest.raises(errors.NLError, match="NL_INVALID_ARGS"):
            await owner.call(boom)
        return results

    assert asyncio.run(main()) == [i * 2 for i in range(20)]
    assert [i for i, _ in seen] == list(range(20))
    assert {t for _, t in seen} == {owner.ident}
    assert owner.call_blocking(record, 5) == 10
    owner.stop()
