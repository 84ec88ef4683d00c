import json
import subprocess
import sys
import tempfile

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


def test_monitor_renders_to_a_non_terminal_and_shows_the_real_counts():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                          cwd=tempfile.mkdtemp(prefix="hmarl-mon-"), env=child_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    text = out["text"]
    assert "\x1b[" not in text  # plain text on a non-terminal
    for ticker, n in out["trades"].items():
        assert ticker in text and f"{n:,}" in text, (ticker, n)
    for ticker, h in out["hierarchy"].items():
        for name in h["specialists"]:
            assert name in text
    assert f"{out['valkey']:,}" in text and f"{out['zmq']:,}" in text
