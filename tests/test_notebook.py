import ast
import json
import subprocess
import sys
import tempfile

from tests.conftest import ROOT, child_env


def test_example_notebook_runs_in_an_already_running_loop_and_restarts():
    cwd = tempfile.mkdtemp(prefix="hmarl-nb-")
    proc = subprocess.run([sys.executable, "-m", "tests.notebook_runner", str(ROOT / "examples/quickstart.ipynb")],
                          capture_output=True, text=True, timeout=180, cwd=cwd, env=child_env(),
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    cells = out["cells"]
    trades, gaps, decisions = ast.literal_eval(cells[1])
    assert set(t[:3] for t in trades) == {"WDO", "WIN"} and min(trades.values()) > 100
    assert gaps == 0 and decisions > 0
    second = ast.literal_eval(cells[-1])
    assert sum(second.values()) > 0  # the second start in the same process delivered trades
    assert "uvloop" not in out["loop"]  # it ran on the host's plain asyncio loop
