"""The same grid and tapes give the same table on 1 or 2 local processes, on a Dask LocalCluster, and after a
worker is killed mid-sweep or a task fails once."""
import contextlib
import io
import json

import pytest

from app import config
from app.cli import main
from app.research import engine, results as R
from app.research.grid import label
from tests.research.helpers import DieOnce, RaiseOnce

GRID = ["--grid", "coordination.entry_threshold=0.3,0.5", "--grid", "coordination.learner.fixed_share=0.01,0.05"]
WINDOWS = ["--train-days", "2", "--test-days", "1"]


def sweep_json(tapes, *extra):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["sweep", str(tapes), *GRID, *WINDOWS, "--json", *extra]) == 0
    doc = json.loads(buf.getvalue())
    doc.pop("timing")
    doc.pop("config_fragment", None)  # the --out path itself
    doc.pop("heat_map_keys", None)  # only with --out; the files themselves are compared byte for byte
    return doc


def table(tapes, jobs=1, cluster=None, fn=None):
    """The table through the engine directly, so a misbehaving task function can be put in."""
    from app.commands.sweep import plan
    from app.cli import build_parser

    args = build_parser().parse_args(["sweep", str(tapes), *GRID, *WINDOWS])
    axes, settings, tasks, steps = plan(args, config.load(None))
    out, tally = engine.run(tasks, fn or engine_task(), jobs=jobs, cluster=cluster)
    sw = R.evaluate(settings, steps, R.collect(tasks, out), 2)
    return (R.summary_rows(sw), R.step_rows(sw), R.setting_rows(sw), label(settings[sw.next_choice])), tally


def engine_task():
    from app.research.tasks import run_task
    return run_task


@pytest.fixture(scope="module")
def jobs_1(tapes, tmp_path_factory):
    """The reference: the command on one local process, with its files."""
    out = tmp_path_factory.mktemp("jobs1")
    return sweep_json(tapes, "--jobs", "1", "--out", str(out)), out


@pytest.fixture(scope="module")
def reference(tapes):
    return table(tapes, jobs=1)[0]


def test_jobs_1_and_2_give_identical_tables_and_files(tapes, tmp_path, capsys, jobs_1):
    one, a = jobs_1
    two = sweep_json(tapes, "--jobs", "2", "--out", str(tmp_path / "b"))
    assert one == two
    assert [r["row"] for r in one["summary"]] == ["walk-forward choice", "defaults", "flat", "equal weight"]
    assert len(one["steps"]) == 2 and len(one["settings"]) == 4
    assert one["summary"][2]["oos_total"] == 0.0  # flat never trades: the plumbing check
    for name in ("summary.csv", "steps.csv", "settings.csv", "summary.md", "chosen.toml"):
        assert (a / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (a / "heatmap.png").stat().st_size > 1000
    cfg = config.load(a / "chosen.toml")  # the fragment changes what it chose
    chosen = dict(kv.split("=") for kv in one["next_choice"].split())
    assert cfg.coordination.entry_threshold == float(chosen["coordination.entry_threshold"])
    assert cfg.coordination.learner.fixed_share == float(chosen["coordination.learner.fixed_share"])
    assert main(["backtest", str(tapes), "--config", str(a / "chosen.toml"), "--json"]) == 0
    capsys.readouterr()


def test_a_killed_local_worker_is_retried(tapes, tmp_path, reference):
    killed, tally = table(tapes, jobs=2, fn=DieOnce(tmp_path / "died", 2))
    assert (tmp_path / "died").exists() and tally.retried >= 1 and tally.failed == 0
    assert killed == reference


def test_a_task_failing_once_is_retried(tapes, tmp_path, reference):
    raised, tally = table(tapes, jobs=2, fn=RaiseOnce(tmp_path / "raised", 1))
    assert tally.retried == 1 and raised == reference


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c.scheduler_address


def test_dask_cluster_gives_the_local_table(tapes, dask_cluster, jobs_1):
    on_dask = sweep_json(tapes, "--cluster", dask_cluster)
    assert on_dask == jobs_1[0]


def test_dask_worker_killed_mid_sweep_and_a_raising_task_still_give_the_table(tapes, tmp_path, dask_cluster,
                                                                               reference):
    # the scheduler itself re-runs the dead worker's task elsewhere (the nanny restarts the worker)
    killed, tally = table(tapes, cluster=dask_cluster, fn=DieOnce(tmp_path / "died", 3))
    assert (tmp_path / "died").exists() and tally.failed == 0 and tally.retried >= 1
    assert killed == reference
    raised, tally = table(tapes, cluster=dask_cluster, fn=RaiseOnce(tmp_path / "raised", 0))
    assert tally.retried == 1 and raised == reference


def test_tasks_that_always_fail_exit_5(tapes, capsys, monkeypatch):
    def broken(task):
        raise ValueError("always")
    monkeypatch.setattr("app.commands.sweep.run_task", broken)
    monkeypatch.setattr(engine, "_local", lambda tasks, fn, jobs, attempts, out, tally, progress: [
        engine._settle(i, ValueError("always"), [attempts - 1] * len(tasks), attempts, tally)
        for i in range(len(tasks))])
    assert main(["sweep", str(tapes), *GRID, *WINDOWS, "--jobs", "1"]) == 5
    assert "tasks failed after retries" in capsys.readouterr().err


def test_without_a_terminal_progress_is_plain_lines(tapes, capsys):
    assert main(["sweep", str(tapes), *GRID, *WINDOWS, "--jobs", "2"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "sweep: 10/10 tasks: 10 done, 0 failed, 0 retried"  # 5 settings x 2 tickers
    assert all(line.startswith("sweep: ") for line in err)


def test_each_task_gets_only_the_files_holding_its_ticker_and_day(tapes):
    from app.commands.sweep import plan
    from app.cli import build_parser

    args = build_parser().parse_args(["sweep", str(tapes), *GRID, *WINDOWS, "--fresh-each-day"])
    _axes, settings, tasks, steps = plan(args, config.load(None))
    assert len(tasks) == (len(settings) + 1) * (4 + 1)  # (settings + defaults) x (4 WDO days + 1 WIN day)
    assert {t.ticker: [p.rsplit("/", 1)[1] for p in t.paths] for t in tasks} == {"WDOZ26": ["wdo.csv"],
                                                                                 "WINZ26": ["win.csv"]}
    assert [t.index for t in tasks] == list(range(len(tasks)))
    assert [t.ticker for t in tasks] == sorted(t.ticker for t in tasks)  # ticker-major: workers reuse their files
    assert [len(s.test) for s in steps] == [1, 1]
