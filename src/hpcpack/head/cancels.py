"""The cancel pipeline, exactly as HPC Pack does it: stop waiting tasks, SIGTERM, grace period,
SIGKILL, node release, proof that nothing is left, final state; and requeue, which builds on it."""

from __future__ import annotations

import signal
from functools import partial

from ..errors import HpcError
from ..identity import Caller
from ..model.objects import CANCELED_BY_USER, FINISHED_BY_USER, TASKS_JOB_CANCELED, CancelRequest, Job, Task, now
from ..model.states import JOB_CANCELABLE, TASK_TERMINAL, TASK_WAITING, JobState, TaskState
from ..model.stop import StopOptions
from .core import (
    _CANCEL_KINDS,
    JOB_RUNTIME_EXPIRED,
    SLURM_STEP_STUCK_AFTER,
    SLURM_STEPS_REPORT_AFTER,
    TASK_FAILURE,
    log,
)
from .processes import Processes
from .store import Rows

NEVER_STARTED = JOB_CANCELABLE - {JobState.Running}


class Cancels(Processes):
    def cancel_job(self, caller: Caller, job_id: int, options: StopOptions) -> Job:
        """Cancels (or finishes) the job; its processes are signalled only once that is committed."""
        with self.batch():
            return self._cancel_job(caller, job_id, options)

    def cancel_jobs(self, caller: Caller, ids: list[int], options: StopOptions, together: bool = True
                    ) -> list[Job | HpcError]:
        """Cancels each job in order, in the caller's transaction; a refused job is its error, undone alone.
        Jobs that never started, the bulk of a bulk cancel, are changed in memory and written together
        (Store.write: a statement per table, not several per job); any other takes cancel_job's way."""
        outcomes: list[Job | HpcError] = []
        rows = Rows()
        for job_id in ids:
            if together and self._ends_at_once(caller, job_id):
                outcomes.append(self._cancel_job(caller, job_id, options, rows))
                continue
            self.store.write(rows)  # first: a refusal puts its job back as stored
            rows = Rows()
            outcomes.append(self.alone(job_id, partial(self._cancel_job, caller, job_id, options)))
        self.store.write(rows)
        return outcomes

    def _ends_at_once(self, caller: Caller, job_id: int) -> bool:
        """The caller may cancel the job and it never started: its cancel cannot be refused, stops no
        process and ends it at once."""
        job = self.jobs.get(job_id)
        return job is not None and job.state in NEVER_STARTED and self.may_change(caller, job)

    def _cancel_job(self, caller: Caller, job_id: int, options: StopOptions, rows: Rows | None = None) -> Job:
        force, graceful, finish, message = options.force, options.graceful, options.finish, options.message
        # One not in memory has ended: refused below, read without its tasks and not kept (a bulk cancel of
        # 10,000 ended jobs loaded each with all its tasks and held them, for any user).
        job = self.job(job_id) if job_id in self.jobs else self.read_job(job_id)
        self.authorize(caller, job)
        kind, request = _CANCEL_KINDS[(force, graceful, finish)]
        if job.state == JobState.Canceling and job.cancel is not None:
            return self._escalate(caller, job, kind, force, graceful, message)
        if job.state not in JOB_CANCELABLE:
            raise HpcError("InvalidCancelJobState", f"You cannot cancel job {job.id} in its current state "
                           f"({job.state.name}).", job.id)
        was_running, before = job.state == JobState.Running, int(job.state)
        self._move(job, "cancel")
        job.request_cancel = request
        job.error_code = FINISHED_BY_USER if finish else CANCELED_BY_USER
        job.error_message = message or ("Finished by user." if finish else "Canceled by user.")
        job.cancel = CancelRequest(kind=kind, final_state="Finished" if finish else "Canceled", force=force,
                                   graceful=graceful, message=message or "", actor=caller.name, at=now())
        self._mirror_message(job)
        changed = self._cancel_waiting_units(job)
        if was_running and not graceful:
            changed += self._stop_running_units(job, force)
        if was_running:
            self.commit(job, changed, (caller.name, kind, message or ""))
            return job
        # It never started: it leaves the queue at once, in one write (cancel_job's or requeue_job's transaction).
        changed += self._end(job)
        self.commit(job, changed, (caller.name, kind, message or ""), expected=before, rows=rows)
        self.history(job, "scheduler", "end", job.state.name or "", rows=rows)
        return job

    def describe_cancel(self, caller: Caller, job: Job, options: StopOptions) -> str:
        """The cancel's effect on this job, in words; raises what cancel_job would raise."""
        force, graceful, finish = options.force, options.graceful, options.finish
        self.authorize(caller, job)
        if job.state not in JOB_CANCELABLE and job.state != JobState.Canceling:
            raise HpcError("InvalidCancelJobState", f"You cannot cancel job {job.id} in its current state "
                           f"({job.state.name}).", job.id)
        running = sum(1 for u in job.units() if u.state in (TaskState.Running, TaskState.Canceling))
        waiting = sum(1 for u in job.units() if u.state in TASK_WAITING)
        parts = []
        if waiting:
            parts.append(f"cancel {waiting} waiting task(s)")
        if running and graceful:
            parts.append(f"let {running} running task(s) finish")
        elif running and force:
            parts.append(f"kill {running} running task(s) now")
        elif running:
            grace = self.property("TaskCancelGracePeriod")
            parts.append(f"stop {running} running task(s) (SIGTERM, {grace} s grace, then SIGKILL)")
        release = any(t.type == "NodeRelease" for t in job.tasks)
        if release and job.allocation:
            parts.append("skip the node-release task" if force else "run the node-release task")
        if job.allocation:
            parts.append(f"free {sum(job.allocation.values())} core(s)")
        parts.append("end Finished" if finish else "end Canceled")
        return "Stop-HpcJob: " + ", ".join(parts)

    def _escalate(self, caller: Caller, job: Job, kind: str, force: bool, graceful: bool,
                  message: str | None) -> Job:
        """A repeat request while Canceling: a graceful cancel can become a plain or forced one. A repeat
        that changes nothing (the same kind, no new message) is accepted but neither applied nor logged."""
        assert job.cancel is not None
        changed: list[Task] = []
        escalated = (job.cancel.graceful and not graceful) or (force and not job.cancel.force)
        if job.cancel.graceful and not graceful:
            job.cancel.graceful = False
            changed = self._stop_running_units(job, force)
        if force and not job.cancel.force:
            job.cancel.force = True
            changed += self._stop_running_units(job, True)
        new_message = bool(message) and message != job.cancel.message
        if not escalated and not new_message:
            return job
        if message:
            job.cancel.message = job.error_message = message
        self.commit(job, changed, (caller.name, kind, message or "", "repeated while Canceling"))
        return job

    def _mirror_message(self, job: Job) -> None:
        """Slurm's Comment shows the cancel's message; it is set once the cancel is committed and before
        any scancel of the job (Slurm keeps no comment of a job it has cancelled)."""
        self._slurm_after_commit(job, "comment", job.error_message)

    def _cancel_waiting_units(self, job: Job) -> list[Task]:
        changed = []
        for unit in job.units():
            if unit.state in TASK_WAITING:
                unit.move("cancel")
                unit.error_code = TASKS_JOB_CANCELED
                unit.error_message = "The job to which the task belongs was canceled."
                unit.end_time = now()
                changed.append(unit)
        return changed + self._cancel_pending_steps(job.tasks)

    @staticmethod
    def _cancel_pending_steps(tasks: list[Task]) -> list[Task]:
        """A sweep's steps not created yet are canceled with it: they will never be created."""
        sweeps = [t for t in tasks if t.pending_steps and not t.rest_canceled]
        for sweep in sweeps:
            sweep.rest_canceled = True
        return sweeps

    def _stop_running_units(self, job: Job, force: bool) -> list[Task]:
        """SIGTERM (or SIGKILL with force) to every running unit; the grace clock starts now."""
        assert job.cancel is not None
        changed = []
        units = [u for u in job.units() if u.state in (TaskState.Running, TaskState.Canceling)]
        for unit in units:
            if unit.state == TaskState.Running:
                unit.move("stop")
                changed.append(unit)
        grace = 0 if force else self.property("TaskCancelGracePeriod")
        sig = signal.SIGKILL if force or grace == 0 else signal.SIGTERM
        self._signal_units(job, units, sig)
        deadline = now() + grace
        if job.cancel.term_deadline is None or deadline < job.cancel.term_deadline:
            job.cancel.term_deadline = deadline
        return changed

    def cancel_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int, options: StopOptions) -> Task:
        with self.batch():  # signals wait for the commit
            return self._cancel_task(caller, job_id, task_id, sub_id, options)

    def _cancel_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int, options: StopOptions) -> Task:
        message, force, finish = options.message, options.force, options.finish
        job = self.job(job_id)
        self.authorize(caller, job)
        task = self.find_task(job, task_id, sub_id)
        units = task.instances if (task.parametric and not sub_id) else [task]
        if task.shown_state in TASK_TERMINAL:
            raise HpcError("InvalidCancelTaskState", f"You cannot cancel task {task.key} in its current state "
                           f"({task.shown_state.name}).", task.key)
        changed = self._cancel_pending_steps([task])
        if changed:
            task.error_code = CANCELED_BY_USER  # a sweep canceled by its user stays so on a requeue
        for unit in units:
            if unit.state in TASK_WAITING:
                unit.move("cancel")
                unit.error_code, unit.end_time = CANCELED_BY_USER, now()
                unit.error_message = message or "The task was canceled by the user."
                changed.append(unit)
            elif unit.state == TaskState.Running:
                unit.move("stop")
                unit.error_message = message or "The task was canceled by the user."
                unit.error_code = FINISHED_BY_USER if finish else CANCELED_BY_USER
                changed.append(unit)
                self._signal_units(job, [unit], signal.SIGKILL if force else signal.SIGTERM)
                if not force:
                    self._kill_later(job, unit)
        event = "task finish" if finish else "task cancel"
        self.commit(job, changed, (caller.name, event, message or "", task.key), job_changed=False)
        return task

    def _fail_job(self, job: Job, reason: str) -> None:
        self._stop_by_scheduler(job, "fail", reason, "Failed", TASK_FAILURE)

    def _stop_by_scheduler(self, job: Job, kind: str, reason: str, final_state: str, code: int) -> None:
        """The scheduler's own cancel (a failed task, an expired run time): grace period, release, verify."""
        with self.batch():  # signals wait for the commit
            self._move(job, "cancel")
            self._scheduler_cancel(job, kind, reason, final_state, code)

    def _scheduler_cancel(self, job: Job, kind: str, reason: str, final_state: str, code: int) -> None:
        job.error_message, job.error_code = reason, code
        job.cancel = CancelRequest(kind=kind, final_state=final_state, force=False, graceful=False,
                                   message=reason, actor="scheduler", at=now())
        changed = self._cancel_waiting_units(job) + self._stop_running_units(job, False)
        self.commit(job, changed, ("scheduler", kind, reason))

    def enforce_run_times(self) -> None:
        """A job that runs past its RunTime is canceled, as HPC Pack does (JobRuntimeExpired); a task
        past its own RunTime is stopped (SIGTERM, grace period, SIGKILL) and ends Failed."""
        for job in self._each(self.in_state(JobState.Running)):
            if job.runtime > 0 and job.start_time is not None and now() >= job.start_time + job.runtime:
                reason = f"The job exceeded its run-time limit of {job.runtime // 60} minute(s)."
                self._stop_by_scheduler(job, "run time expired", reason, "Canceled", JOB_RUNTIME_EXPIRED)
                continue
            expired = [u for u in job.units() if u.state == TaskState.Running and u.runtime_limit > 0
                       and u.start_time is not None and now() >= u.start_time + u.runtime_limit]
            if not expired:
                continue
            with self.batch():  # signals wait for the commit
                for unit in expired:
                    unit.move("stop")
                    unit.error_code = TASK_FAILURE
                    unit.error_message = (f"The task exceeded its run-time limit of {unit.runtime_limit // 60} "
                                          "minute(s).")
                    self._signal_units(job, [unit], signal.SIGTERM)
                    self._kill_later(job, unit)
                self.commit(job, expired, ("scheduler", "run time expired", expired[0].error_message,
                                           ",".join(u.key for u in expired)), job_changed=False)

    def advance_ending_jobs(self) -> None:
        for job in self._each(self.in_state(JobState.Canceling, JobState.Finishing)):
            self._advance_ending(job)

    def _advance_ending(self, job: Job) -> None:
        """Grace period -> kill -> node release -> verify nothing is left -> final state."""
        if self._work_still_running(job) or self._release_pending(job) or self._survivors_remain(job):
            return
        self._finalize(job)

    def _work_still_running(self, job: Job) -> bool:
        cancel = job.cancel
        work = [u for u in job.units() if u.type != "NodeRelease"]
        running = [u for u in work if u.state in (TaskState.Running, TaskState.Canceling)]
        if cancel is not None and cancel.graceful and running:
            return True
        release_tokens = {u.token for u in job.units() if u.type == "NodeRelease" and u.token}
        left = self._job_processes(job, exclude=release_tokens)
        if not running and not left:
            return False
        if cancel is None or (cancel.term_deadline is not None and now() >= cancel.term_deadline):
            self._kill(job, left)
        return True

    def _release_pending(self, job: Job) -> bool:
        release = next((t for t in job.tasks if t.type == "NodeRelease"), None)
        if release is None or not job.allocation or (job.cancel is not None and job.cancel.force):
            return False
        if not release.instances:
            job.release_deadline = now() + self.property("NodeReleaseTaskTimeout")
            self.commit(job, self._node_instances(job, release))
            return True
        pending = [u for u in release.instances if u.state not in TASK_TERMINAL]
        if pending and job.release_deadline is not None and now() >= job.release_deadline:
            self._signal_units(job, pending, signal.SIGKILL)
        return bool(pending)

    def _survivors_remain(self, job: Job) -> bool:
        """The proof step: no process of the job may be left; survivors are killed and, if they
        outlast SIGKILL, reported on the job instead of a false success."""
        left = self._job_processes(job)
        steps = self._slurm_steps_left(job)
        if not left and not steps:
            return False
        # Nothing of the job is to run any more (its node release is done): a step Slurm has listed this
        # long goes with the allocation, which the job's end would end next anyway (SLURM_STEP_STUCK_AFTER).
        listed = now() - self._steps_left_since.setdefault(job.id, now()) if steps else 0.0
        self._kill(job, left, end_allocation=listed > SLURM_STEP_STUCK_AFTER)
        if steps:
            self._report_steps_left(job, steps)
        return True

    def _report_steps_left(self, job: Job, steps: list[str]) -> None:
        """Steps Slurm still lists after SIGKILL: the job is visibly in trouble, never falsely ended."""
        since = job.cancel.term_deadline if job.cancel and job.cancel.term_deadline else job.end_time
        if since is None or now() - since <= SLURM_STEPS_REPORT_AFTER:
            return
        message = (f"Cancel incomplete: Slurm still lists {len(steps)} step(s) of job {job.id} "
                   f"({', '.join(steps[:10])}) after SIGKILL.")
        if job.error_message != message:
            job.error_message = message
            self.commit(job, entry=("scheduler", "trouble", message))

    def _finalize(self, job: Job) -> None:
        expected = int(job.state)
        requeue = job.cancel is not None and job.cancel.final_state == "Requeue"
        with self.batch():
            ended = self._end(job)
            self.commit(job, ended, ("scheduler", "end", job.state.name or ""), expected=expected)
            if requeue and job.cancel is not None:
                self._requeue(job.cancel.actor, job)

    def _end(self, job: Job) -> list[Task]:
        """The final state, in memory: returns the units it changed."""
        work = [u for u in job.units() if not u.is_node_task]
        if job.state == JobState.Finishing:
            failed = any(u.state == TaskState.Failed for u in work)
            event = "failed" if failed else "finished"
            if failed and not job.error_message:
                job.error_message = "One or more tasks failed."
        else:
            assert job.cancel is not None
            event = {"Canceled": "canceled", "Requeue": "canceled", "Finished": "finished_by_user", "Failed": "failed"}[
                job.cancel.final_state]
        self._move(job, event)
        job.end_time = now()
        never_ran = [u for t in job.tasks for u in [t, *t.instances] if u.state in TASK_WAITING]
        for unit in never_ran:  # e.g. a node-release task that Force skipped
            unit.move("cancel")
            unit.error_code, unit.end_time = TASKS_JOB_CANCELED, now()
        job.allocation = {}
        job.release_deadline = None
        if job.slurm_job_id:  # the allocation ends once the end is on record
            self._slurm_after_commit(job, "end")
            self._next_step_kill.pop(job.id, None)
            self._steps_left_since.pop(job.id, None)
        if job.cancel is not None:
            job.cancel.survivors = []
        for unit in job.units():
            self.cgroups.remove(unit.token)
        return never_ran

    def requeue_job(self, caller: Caller, job_id: int) -> Job:
        """HPC Pack's job requeue: a Canceled or Failed job is queued again at once; a Running one is
        cancelled first (grace period, node release) and queued again once it has ended."""
        with self.batch():
            job = self.job(job_id)
            self.authorize(caller, job)
            if job.state in (JobState.Canceled, JobState.Failed):
                self.enforce_template(caller, job)
                return self._requeue(caller.name, job)
            if job.state != JobState.Running:
                raise HpcError("InvalidOperation", f"Job {job.id} is {job.state.name}; only Running, Canceled or "
                               "Failed jobs can be requeued.", job.id)
            self._cancel_job(caller, job_id, StopOptions(message="Requeued by user."))
            assert job.cancel is not None
            job.cancel.final_state = "Requeue"
            self.commit(job)
            return job

    def _requeue(self, actor: str, job: Job) -> Job:
        """Finished tasks stay Finished, tasks cancelled on their own stay Canceled, the rest queue again."""
        self._move(job, "requeue")
        job.requeue_count += 1
        job.submit_time = now()
        job.queue_order = self._take_order(front=True)
        job.end_time = job.start_time = None
        job.cancel = None
        job.slurm_job_id = 0  # its old allocation was ended with it: it asks Slurm again
        job.error_message, job.error_code, job.request_cancel = "", 0, "None"
        changed: list[Task] = []
        for task in job.tasks:
            if task.is_node_task:
                task.instances = []
                continue
            if task.rest_canceled and task.error_code != CANCELED_BY_USER:
                task.rest_canceled = False  # its steps not created yet will be, as the job runs again
                changed.append(task)
            for unit in task.instances if task.parametric else [task]:
                keep = unit.state == TaskState.Finished or (
                    unit.state == TaskState.Canceled and unit.error_code == CANCELED_BY_USER)
                if keep:
                    continue
                unit.requeue()
                changed.append(unit)
        with self.batch():
            for task in job.tasks:
                if task.is_node_task:
                    self.store.delete_instances(job.id, task.task_id)
            self.store.save_job(job)
            for unit in changed:
                self.store.save_task(unit)
            self.history(job, actor, "requeue", details=f"{len(changed)} tasks queued again")
        return job

    def requeue_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int) -> Task:
        """HPC Pack's task requeue: a Failed or Canceled task is queued again at once; a Running one is
        stopped first (SIGTERM, grace period) and queued again once it has stopped."""
        with self.batch():  # signals wait for the commit
            return self._requeue_task(caller, job_id, task_id, sub_id)

    def _requeue_task(self, caller: Caller, job_id: int, task_id: int, sub_id: int) -> Task:
        job = self.job(job_id)
        self.authorize(caller, job)
        task = self.find_task(job, task_id, sub_id)
        units = task.instances if (task.parametric and not sub_id) else [task]
        changed = [u for u in units if u.state in (TaskState.Failed, TaskState.Canceled)]
        running = [u for u in units if u.state == TaskState.Running]
        if not changed and not running:
            raise HpcError("InvalidOperation", f"Task {task.key} is {task.shown_state.name}; only Running, Failed "
                           "or Canceled tasks can be requeued.", task.key)
        if job.state != JobState.Configuring and (job.terminal or job.state in (JobState.Canceling,
                                                                                JobState.Finishing)):
            raise HpcError("InvalidOperation", f"Job {job.id} is {job.state.name}; requeue the job with "
                           "Submit-HpcJob instead.", job.id)
        for unit in changed:  # checked first, changed after: a refusal changes nothing
            unit.requeue()
        for unit in running:
            unit.move("stop")
            unit.requeue_when_stopped = True
            self._signal_units(job, [unit], signal.SIGTERM)
            self._kill_later(job, unit)
        self.commit(job, changed + running, (caller.name, "task requeue", "", task.key), job_changed=False)
        return task

    def _fault(self, job: Job, error: Exception) -> None:
        """An unexpected error while handling a job ends that job Failed, never the head node."""
        job = self.jobs.get(job.id, job)
        reason = f"The head node failed while handling this job: {error!r}"
        try:
            if job.state in JOB_CANCELABLE:
                self._stop_by_scheduler(job, "fault", reason, "Failed", TASK_FAILURE)
                return
            if job.state in (JobState.Canceling, JobState.Finishing) and job.cancel is not None:
                job.cancel.final_state, job.cancel.force = "Failed", True
                job.error_message = reason
                self.commit(job, entry=("scheduler", "fault", reason))
                return
        except Exception:
            log.exception("job %d could not be failed; it is set aside until the head node restarts", job.id)
            self.reload([job.id])
        self._quarantine.add(job.id)
