"""Where sweep tasks run: local worker processes (--jobs N) or an existing Dask distributed cluster (--cluster).

Both give results back in task order, whatever order they finish in, so the table never depends on scheduling.
A task that raises, or whose worker dies, is run again up to `attempts` times in all; after that it is reported
as failed (the command then exits non-zero rather than print a table with holes).

Local: a ProcessPoolExecutor of N processes (spawned, not forked: the caller may have a progress-bar thread, and a
fork copies held locks). A worker that dies (killed, out of memory) breaks the whole pool; the pool is rebuilt and
every task not yet finished is submitted again, each charged one attempt.

Dask: the scheduler itself re-runs the tasks of a lost worker on another one (up to its allowed-failures); a task
that raises, or that Dask gives up on (KilledWorker), is resubmitted here under a new key. Tasks are submitted with
pure=False so Dask never answers a retry from a cached failed result. The scheduler's own re-runs are invisible
to the futures, so they are read from it at the end (each task's `suspicious` count) and added to `retried`.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Tally:
    total: int
    done: int = 0
    failed: int = 0
    retried: int = 0
    errors: dict[int, str] = field(default_factory=dict)  # task index -> last error, for failed tasks


Progress = Callable[[Tally], None]


def run(tasks: list[Any], fn: Callable[[Any], dict], jobs: int = 1, cluster: str | None = None,
        progress: Progress | None = None, attempts: int = 3) -> tuple[list[dict | None], Tally]:
    tally = Tally(len(tasks))
    out: list[dict | None] = [None] * len(tasks)
    if not tasks:
        return out, tally
    if cluster:
        _on_dask(tasks, fn, cluster, attempts, out, tally, progress)
    else:
        _local(tasks, fn, jobs, attempts, out, tally, progress)
    return out, tally


def _settle(task_pos: int, err: BaseException, tries: list[int], attempts: int, tally: Tally) -> bool:
    """Count a failed attempt; True when the task gets another one."""
    tries[task_pos] += 1
    if tries[task_pos] < attempts:
        tally.retried += 1
        return True
    tally.failed += 1
    tally.errors[task_pos] = f"{type(err).__name__}: {err}"
    return False


def _local(tasks: list[Any], fn: Callable, jobs: int, attempts: int, out: list, tally: Tally,
           progress: Progress | None) -> None:
    tries = [0] * len(tasks)
    pending = list(range(len(tasks)))
    ctx = multiprocessing.get_context("spawn")
    while pending:
        again: list[int] = []
        with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx) as pool:
            futures = {pool.submit(fn, tasks[i]): i for i in pending}
            for fut in as_completed(futures):
                i = futures[fut]
                err = fut.exception()
                if err is None:
                    out[i] = fut.result()
                    tally.done += 1
                elif _settle(i, err, tries, attempts, tally):
                    again.append(i)
                if progress is not None:
                    progress(tally)
        pending = sorted(again)


def _on_dask(tasks: list[Any], fn: Callable, address: str, attempts: int, out: list, tally: Tally,
             progress: Progress | None) -> None:
    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:
        raise RuntimeError("--cluster needs Dask distributed: pip install 'hmarl[research]'") from None
    tries = [0] * len(tasks)
    with Client(address, timeout="20s") as client:
        futures = {client.submit(fn, t, pure=False): i for i, t in enumerate(tasks)}
        queue = dask_completed(list(futures))
        done = []  # held, not released, until the scheduler has told how often it re-ran each
        for fut in queue:
            i = futures.pop(fut)
            done.append(fut)
            if fut.status == "finished":
                out[i] = fut.result()
                tally.done += 1
            else:
                err = fut.exception()
                if _settle(i, err, tries, attempts, tally):
                    new = client.submit(fn, tasks[i], pure=False)
                    futures[new] = i
                    queue.add(new)
            if progress is not None:
                progress(tally)
        tally.retried += _rescheduled(client, [f.key for f in done])


def _rescheduled(client: Any, keys: list) -> int:
    """How many times the scheduler re-ran these tasks because their worker was lost (its own retries, which the
    futures do not show); 0 when the scheduler will not say."""
    def count(dask_scheduler: Any, keys: list = keys) -> int:
        tasks = dask_scheduler.tasks
        return sum(getattr(tasks[k], "suspicious", 0) for k in keys if k in tasks)
    try:
        return int(client.run_on_scheduler(count))
    except Exception:  # a scheduler that refuses run_on_scheduler: the table is unaffected, only the count
        return 0
