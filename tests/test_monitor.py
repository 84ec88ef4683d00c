import json
import os
import subprocess
import sys
import tempfile

import pytest

from tests.conftest import child_env

SCRIPT = r'''
import asyncio, io, json
from rich.console import Console
from app import App
from app.monitor import render, RateTracker

async def main():
    app = App.from_config(None, **{"zmq.endpoint": "tcp://127.0.0.1:0", "simulator.rate": 400.0})
    await app.start()
    await asyncio.sleep(3)
    await app.stop()          # freeze the counts, then render what the monitor would show
    snap = app.snapshot()
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=160, color_system=None)
    console.print(render(snap, RateTracker()))
    print(json.dumps({"text": buf.getvalue(), "trades": snap["continuity"]["trades"],
                      "hierarchy": {t: {"target": h["target"], "specialists": list(h["specialists"])}
                                    for t, h in snap["hierarchy"]["tickers"].items()},
                      "valkey": snap.get("valkey", {}).get("written"), "zmq": snap.get("zmq", {}).get("sent")}))

asyncio.run(main())
'''


def run_script(script: str) -> dict:
    """A real App in a process of its own (the DLL initializes once a process); the script's last line is JSON."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tempfile.mkdtemp(prefix="hmarl-mon-"), env=child_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_monitor_renders_to_a_non_terminal_and_shows_the_real_counts():
    out = run_script(SCRIPT)
    text = out["text"]
    assert "\x1b[" not in text  # plain text on a non-terminal
    for ticker, n in out["trades"].items():
        assert ticker in text and f"{n:,}" in text, (ticker, n)
    for ticker, h in out["hierarchy"].items():
        for name in h["specialists"]:
            assert name in text
    assert f"{out['valkey']:,}" in text and f"{out['zmq']:,}" in text
    assert "(DLL side)" in text and ("callbacks native, dwell p99" in text or "callbacks ctypes, dwell p99" in text)


# -- live routing: the panel, the position check and the flatten key ---------------------------------------------

LIVE_SCRIPT = r'''
import asyncio, io, json, os, tempfile
from rich.console import Console
from app import config as config_mod
from app.app import App
from app.soak.live_round import LIVE
from app.monitor import PROMPT, RateTracker, render

def plain(snap, keys):
    buf = io.StringIO()
    Console(file=buf, force_terminal=False, width=200, color_system=None).print(render(snap, RateTracker(), keys))
    return buf.getvalue()

def on_red(snap):
    console = Console(file=io.StringIO(), force_terminal=True, width=200, color_system="truecolor")
    return [s.text for s in console.render(render(snap, RateTracker()), console.options)
            if s.style is not None and s.style.bgcolor is not None and s.style.bgcolor.name == "red"]

async def main():
    os.environ["HMARL_LIVE_TRADING"] = "yes"
    app = App(config_mod.load(None, {**LIVE, "run.data_dir": tempfile.mkdtemp(prefix="hmarl-mon-live-")}), fresh=True)
    await app.start()
    await asyncio.sleep(3)
    await app.stop(finalize=True)  # freeze the counts; the stop read the broker's positions one last time
    snap = app.snapshot()
    out = {"live": json.loads(json.dumps(snap["live"])), "text": plain(snap, PROMPT), "no_keys": plain(snap, None), "agreeing_red": on_red(snap)}
    paper = {k: v for k, v in snap.items() if k != "live"}
    out["paper"] = plain(paper, "")
    t = sorted(snap["live"]["ours"])[0]
    snap["live"]["broker_positions"][t] = snap["live"]["ours"][t] + 1  # the broker holds one contract we do not
    out["ticker"], out["mismatch_red"] = t, on_red(snap)
    print(json.dumps(out))

asyncio.run(main())
'''


def test_live_panel_shows_reconciliation_orders_and_positions_and_a_mismatch_in_red():
    out = run_script(LIVE_SCRIPT)
    live, text = out["live"], out["text"]
    assert live["reconciled"] and live["sent"] > 0
    assert "live routing: account SIM-0001 (broker 1)" in text and "reconciled: yes" in text
    assert f"orders sent {live['sent']:,}  refused {live['refused']:,}" in text
    assert f"working orders ({len(live['working'])})" in text
    cut = {w["ticker"] for w in live["working"] if not w["local_id"]}  # a send the stop cut: its fill is not ours
    for t, q in live["ours"].items():
        if t in cut:
            continue
        assert live["broker_positions"][t] == q  # the broker agreed with us at the end of this run
        row = next(line for line in text.splitlines() if line.strip("│ ").startswith(t) and "agrees" in line)
        assert str(live["fills"][t]) in row
    # the key hint and the confirmation prompt only when routing live and keys are read
    assert "F then y = FLATTEN" in text and "press y within 5 s to FLATTEN" in text
    assert "FLATTEN" not in out["no_keys"] and "FLATTEN" not in out["paper"] and "live routing" not in out["paper"]
    assert out["agreeing_red"] == [] or cut
    red = "".join(out["mismatch_red"])
    assert "MISMATCH" in red and f"{live['ours'][out['ticker']] + 1:+d}" in red


def test_position_check_calls_a_difference_a_mismatch_only_when_two_reads_in_a_row_see_it():
    from app.monitor_live import PositionCheck

    check = PositionCheck()
    check.record({"WDO": 1, "WIN": 0}, {"WDO": 0, "WIN": 0}, 1.0)  # a fill the broker saw before our update
    assert check.rows["WDO"]["differs"] == 1 and check.rows["WIN"]["differs"] == 0
    check.record({"WDO": 1, "WIN": 0}, {"WDO": 1, "WIN": 0}, 2.0)  # our update arrived: agreed again
    assert check.rows["WDO"]["differs"] == 0
    check.record({"WDO": 2}, {"WDO": 1}, 3.0)
    check.record({"WDO": 2}, {"WDO": 1}, 4.0)
    assert check.rows["WDO"]["differs"] == 2  # red on the screen


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def flatten_key():
    from app.monitor import FlattenKey

    calls = []

    async def flatten() -> str:
        calls.append(1)
        return "kill switch on; flattening at market: WDO +1"

    clock = FakeClock()
    return FlattenKey(flatten, clock), calls, clock


def test_flatten_key_f_then_y_flattens_once():
    import asyncio

    async def main():
        key, calls, clock = flatten_key()
        key.on_key("F")
        assert "press y within 5 s" in key.line()
        clock.t += 4.9
        key.on_key("y")
        key.on_key("y")  # a second y is not a second confirmation
        await key.task
        key.on_key("y")
        return calls, key.line()

    calls, line = asyncio.run(main())
    assert calls == [1] and "kill switch on; flattening at market: WDO +1" in line


def test_flatten_key_needs_the_confirmation_in_time_and_as_the_next_key():
    import asyncio

    async def main():
        key, calls, clock = flatten_key()
        key.on_key("y")  # y alone
        key.on_key("F")
        clock.t += 5.1  # too late
        key.on_key("y")
        key.on_key("F")
        key.on_key("n")  # another key disarms
        key.on_key("y")
        key.on_key("F")
        key.on_key("F")  # F again re-arms, it does not confirm
        armed = key.line()
        await asyncio.sleep(0)
        return calls, key.task, armed

    calls, task, armed = asyncio.run(main())
    assert calls == [] and task is None and "press y" in armed


def test_flatten_key_confirmed_while_one_runs_starts_none():
    import asyncio

    async def main():
        from app.monitor import FlattenKey

        release = asyncio.Event()
        calls = []

        async def flatten() -> str:
            calls.append(1)
            await release.wait()
            return "done"

        key = FlattenKey(flatten, FakeClock())
        key.on_key("F"), key.on_key("y")
        await asyncio.sleep(0)
        assert key.line() == "flattening..."
        key.on_key("F"), key.on_key("y")
        release.set()
        await key.task
        return calls, key.line()

    calls, line = asyncio.run(main())
    assert calls == [1] and line.endswith(": done")


def test_a_failed_flatten_says_so():
    import asyncio

    from app.monitor import FlattenKey

    async def main():
        async def flatten() -> str:
            raise RuntimeError("routing is not connected")

        key = FlattenKey(flatten, FakeClock())
        key.on_key("F"), key.on_key("y")
        await key.task
        return key.line()

    assert "FAILED: RuntimeError: routing is not connected" in asyncio.run(main())


def test_keys_are_not_read_without_a_terminal():
    import asyncio
    import io

    from app.monitor import KeyReader

    async def main():
        return KeyReader(lambda ch: None, io.StringIO()).start()

    assert asyncio.run(main()) is False


@pytest.mark.skipif(not hasattr(os, "openpty") or sys.platform == "win32", reason="needs a pseudo-terminal")
def test_keys_from_a_terminal_reach_the_handler_and_the_terminal_mode_is_restored():
    import asyncio
    import termios

    from app.monitor import FlattenKey, KeyReader

    master, slave = os.openpty()
    stream = os.fdopen(slave, "rb", buffering=0)
    before = termios.tcgetattr(slave)

    async def main():
        called = asyncio.Event()

        async def flatten() -> str:
            called.set()
            return "ok"

        key = FlattenKey(flatten)
        reader = KeyReader(key.on_key, stream)
        assert reader.start()
        try:
            assert not termios.tcgetattr(slave)[3] & termios.ICANON  # one key at a time, no Enter
            os.write(master, b"Fy")
            await asyncio.wait_for(called.wait(), 30)
        finally:
            reader.stop()
        reader.stop()  # again, as a forced exit would: harmless
        await key.task

    try:
        asyncio.run(main())
        assert termios.tcgetattr(slave) == before
    finally:
        stream.close()
        os.close(master)
