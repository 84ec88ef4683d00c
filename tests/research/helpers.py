"""Task functions that misbehave once, importable by worker processes (a test module's local function is not)."""
from __future__ import annotations

import os
from pathlib import Path

from app.research.tasks import Task, run_task


class DieOnce:
    """Kills its worker process (os._exit, as the OOM killer or a lost node would) the first time it meets task
    `index`; a marker file says it already did, across processes and retries."""

    def __init__(self, marker: Path, index: int) -> None:
        self.marker, self.index = str(marker), index

    def __call__(self, task: Task) -> dict:
        if task.index == self.index and not os.path.exists(self.marker):
            Path(self.marker).write_text("died once")
            os._exit(17)
        return run_task(task)


class RaiseOnce(DieOnce):
    """Raises instead: a task error rather than a lost worker."""

    def __call__(self, task: Task) -> dict:
        if task.index == self.index and not os.path.exists(self.marker):
            Path(self.marker).write_text("raised once")
            raise RuntimeError("planted failure")
        return run_task(task)
