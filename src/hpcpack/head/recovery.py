"""After a restart: tasks still running are adopted, those that ended are closed from their
exit files, and cancels that were under way are resumed."""

from __future__ import annotations

import signal
import sqlite3

from ..model.objects import Job
from ..model.states import JobState, TaskState
from .core import (
    log,
)
from .running import Running


class Recovery(Running):
    def recover(self) -> None:
        """After a restart: units that were running are adopted if alive, else closed from their exit file.
        A job whose recovery fails is failed alone (see step)."""
        for job in list(self.jobs.values()):
            try:
                self._recover(job)
            except sqlite3.Error:
                raise  # the store itself is unusable: nothing can be served
            except Exception as e:
                log.exception("job %d could not be recovered", job.id)
                self.reload([job.id])
                self._fault(job, e)

    def _recover(self, job: Job) -> None:
        for unit in job.units():
            if unit.state not in (TaskState.Running, TaskState.Canceling):
                continue
            if self._unit_processes(job, unit):  # alive (its wrapper at least): keep it, watch it
                self.adopted[unit.key] = (job, unit)
            else:
                self._wrapper_exited(job, unit, -signal.SIGKILL)
        if job.state == JobState.Canceling:
            self.history(job, "scheduler", "recover", details="cancel resumed after a head node restart")
            self._resignal(job)

    def _resignal(self, job: Job) -> None:
        """A committed cancel whose signals a crash may have cut short: its stopping tasks get them again
        (a repeated SIGTERM is harmless; the grace period still ends when it was due)."""
        stopping = [u for u in job.units() if u.state == TaskState.Canceling]
        if stopping and job.cancel is not None and not job.cancel.graceful:
            self._signal_units(job, stopping, signal.SIGKILL if job.cancel.force else signal.SIGTERM)

    def watch_adopted_units(self) -> None:
        for key, (job, unit) in list(self.adopted.items()):
            if not self._unit_processes(job, unit):
                del self.adopted[key]
                self._wrapper_exited(job, unit, -signal.SIGKILL)
