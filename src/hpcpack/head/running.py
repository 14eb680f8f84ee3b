"""Launching tasks (through launch.py), reaping them, recording how they ended, retries, and
completing jobs whose work is done."""

from __future__ import annotations

import os
import pwd
import sqlite3

from ..errors import HpcError
from ..model import jobspec, paths
from ..model.objects import FINISHED_BY_USER, TASKS_JOB_CANCELED, Job, Task, now
from ..model.params import SWEEP_WINDOW, WINDOW_BYTES
from ..model.states import TASK_TERMINAL, TASK_WAITING, JobState, TaskState
from . import executor, slurm
from .cancels import Cancels
from .core import (
    TASK_FAILURE,
    Leftover,
    log,
)
from .executor import StartFailure


class Running(Cancels):
    def start_ready_units(self) -> None:
        for job in self._each(self.in_state(JobState.Running)):
            self._start_units(job, [u for u in job.units() if u.type != "NodeRelease"])
        for job in self._each(self.in_state(JobState.Canceling, JobState.Finishing)):
            self._start_units(job, [u for u in job.units() if u.type == "NodeRelease"])

    def _start_units(self, job: Job, units: list[Task]) -> None:
        waiting = [u for u in units if u.state == TaskState.Queued]
        if not waiting:
            return
        used: dict[str, int] = {}
        for unit in units:
            if unit.state in (TaskState.Running, TaskState.Canceling) and unit.type not in ("NodePrep", "NodeRelease"):
                for node, cores in (unit.held or {unit.node: unit.min_cores}).items():
                    used[node] = used.get(node, 0) + cores
        prep = next((t for t in job.tasks if t.type == "NodePrep"), None)
        prepared = {u.node for u in prep.instances if u.state == TaskState.Finished} if prep else None
        by_name: dict[str, list[Task]] = {}
        for task in job.tasks:
            by_name.setdefault(task.name, []).append(task)
        for unit in waiting:
            if unit.is_node_task:
                self._launch(job, unit, unit.node)
                continue
            blocked = self._dependency_state(unit, by_name)
            if blocked == "never":
                self._cancel_unreachable(job, unit)
                continue
            if blocked == "wait":
                continue
            usable = [n for n in job.allocation if (prepared is None or n in prepared) and self.node_usable(n)]
            why = self._never_fits(job, unit)
            if why:
                self._unstartable(job, unit, why)
                continue
            held = self._place(job, unit, [n for n in usable if self._required(unit, n)], used)
            if held is None:
                continue
            for node, cores in held.items():
                used[node] = used.get(node, 0) + cores
            unit.held = held if len(held) > 1 or unit.unit_type != "Core" else {}
            self._launch(job, unit, next(iter(held)))

    @staticmethod
    def _required(unit: Task, node: str) -> bool:
        return not unit.required_nodes or node.lower() in {n.lower() for n in unit.required_nodes}

    def _cores_per_socket(self, node: str) -> int:
        info = next((n for n in self.config.nodes if n.name == node), None)
        return max(1, info.cores // max(1, info.sockets)) if info is not None else 1

    def _place(self, job: Job, unit: Task, nodes: list[str], used: dict[str, int]) -> dict[str, int] | None:
        """Where the task runs now, as cores by node (the first is where its command starts), or None
        while the job's cores are busy. A task asks in cores (on one node), sockets (that many sockets'
        cores on one node) or nodes (that many of the job's nodes, whole: HPC Pack's multi-node task)."""
        free = {n: job.allocation[n] - used.get(n, 0) for n in nodes}
        if unit.unit_type == "Node":
            whole = [n for n in nodes if used.get(n, 0) == 0]
            return {n: job.allocation[n] for n in whole[:unit.min_units]} if len(whole) >= unit.min_units else None
        for node in nodes:
            cores = unit.min_units * self._cores_per_socket(node) if unit.unit_type == "Socket" else unit.min_cores
            if free[node] >= cores:
                return {node: cores}
        return None

    def _never_fits(self, job: Job, unit: Task) -> str:
        """Why the task can never start with the job's allocation, or ''."""
        nodes = [n for n in job.allocation if self._required(unit, n)]
        if unit.required_nodes and not nodes:
            return f"none of its required nodes ({', '.join(unit.required_nodes)}) is allocated to the job"
        if unit.unit_type == "Node" and len(nodes) < unit.min_units:
            return f"it needs {unit.min_units} nodes and the job was given {len(nodes)}"
        if unit.unit_type == "Socket" and not any(
                job.allocation[n] >= unit.min_units * self._cores_per_socket(n) for n in nodes):
            return f"it needs {unit.min_units} socket(s) on one node and the job has none that big"
        return ""

    def _unstartable(self, job: Job, unit: Task, why: str) -> None:
        unit.move("unstartable")
        unit.error_code, unit.end_time = TASK_FAILURE, now()
        unit.error_message = f"The task cannot start: {why}."
        self.commit(job, [unit], job_changed=False)
        self._task_failed(job, unit)

    def _dependency_state(self, unit: Task, by_name: dict[str, list[Task]]) -> str:
        states = [t.shown_state for name in unit.depends for t in by_name.get(name, [])]
        if any(s in (TaskState.Failed, TaskState.Canceled) for s in states):
            return "never"
        return "ready" if all(s == TaskState.Finished for s in states) else "wait"

    def _cancel_unreachable(self, job: Job, unit: Task) -> None:
        """A task whose dependency failed or was canceled never runs: Canceled, or Failed when the job
        says FailDependentTasks (HPC Pack's rule)."""
        unit.move("unstartable" if job.fail_dependent_tasks else "cancel")
        unit.error_code, unit.end_time = (TASK_FAILURE if job.fail_dependent_tasks else TASKS_JOB_CANCELED), now()
        unit.error_message = "A task this task depends on did not finish, so it cannot run."
        self.commit(job, [unit], job_changed=False)

    def _launch(self, job: Job, unit: Task, node: str) -> None:
        unit.node = node
        unit.move("start")
        unit.start_time = now()
        unit.token = executor.task_marker(self.head_id, job.id, unit.key, unit.requeue_count)
        # Intent before action: Running is on record before the process exists, so a crash in between
        # can never make the task run twice (the restarted head node finds no process and no exit code).
        self.commit(job, [unit], job_changed=False)
        try:
            spec = self._run_spec(job, unit)
            popen = self.launchers.start(spec, self.cgroups.create(unit.token))
        except Exception as e:  # whatever it is, it ends this task, never the head node
            log.warning("task %s of job %d could not be started: %r", unit.key, job.id, e)
            self._fail_start(job, unit, str(e) if isinstance(e, StartFailure) else repr(e))
            return
        unit.pid = popen.pid  # stored with the task's next change
        self.running[popen.pid] = (job, unit)
        self.popen[popen.pid] = popen

    def _fail_start(self, job: Job, unit: Task, reason: str) -> None:
        unit.move("stopped" if unit.state == TaskState.Canceling else "exited_failed")
        unit.end_time, unit.error_code = now(), TASK_FAILURE
        unit.error_message = f"The task could not be started: {reason}"
        self.commit(job, [unit], job_changed=False)
        self._task_failed(job, unit)

    def _run_spec(self, job: Job, unit: Task) -> executor.RunSpec:
        uid = self._task_uid(job)
        try:
            account = pwd.getpwuid(uid)
        except KeyError:
            raise StartFailure(f"the job's owner {job.owner} (uid {uid}) has no account on this machine.") from None
        env = {"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name,
               "SHELL": account.pw_shell or "/bin/sh", "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
               "LANG": os.environ.get("LANG", "C.UTF-8")}
        # CCP_NODES: the job's nodes; a task on several nodes (or sockets) is told just its own.
        mine = unit.held or job.allocation
        nodes = " ".join(f"{n} {c}" for n, c in sorted(mine.items()))
        env.update({
            "CCP_JOBID": str(job.id), "CCP_TASKID": str(unit.task_id), "CCP_TASKINSTANCEID": str(unit.sub_id),
            "CCP_JOBNAME": job.name, "CCP_TASKNAME": unit.name, "CCP_NODES": f"{len(mine)} {nodes}",
            "CCP_NUMCPUS": str(sum(unit.held.values()) if unit.held else unit.min_cores),
            "CCP_SCHEDULER": self.name, "CCP_RERUNNABLE": str(unit.rerunnable),
            "CCP_OWNER": job.owner, "COMPUTERNAME": unit.node, "CCP_WORKDIR": unit.work_dir,
        })
        for source in (self.cluster_environment(), job.env, unit.env):
            for name, value in source.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
        try:  # Windows paths of migrated scripts, by the head node's path map (model.paths)
            work_dir, stdin, stdout, stderr = (paths.map_path(value, self.config.path_map, what) for value, what in (
                (unit.work_dir, "WorkDir"), (unit.stdin, "Stdin"), (unit.stdout, "Stdout"), (unit.stderr, "Stderr")))
        except HpcError as e:
            raise StartFailure(e.message) from None
        env["CCP_WORKDIR"] = work_dir
        groups = os.getgrouplist(account.pw_name, account.pw_gid)
        argv = self._step_argv(job, unit, env)
        return executor.RunSpec(
            argv=argv, command=unit.command, env=env, cwd=work_dir or account.pw_dir, cwd_required=bool(work_dir),
            uid=account.pw_uid, gid=account.pw_gid, groups=groups,
            job_marker=executor.job_marker(self.head_id, job.id), task_marker=unit.token,
            output_path=self._output_path(unit), exit_path=self._exit_path(unit),
            stdin=stdin, stdout=stdout, stderr=stderr)

    def _step_argv(self, job: Job, unit: Task, env: dict[str, str]) -> list[str]:
        """On Slurm, the task runs as a step of its job's allocation on its node (see slurm.py)."""
        if self.slurm is None:
            return []
        if not job.slurm_job_id:
            raise StartFailure("the job holds no Slurm allocation.")
        if "SLURM_CONF" in self.slurm.env:  # srun finds slurmctld as the head node does
            env["SLURM_CONF"] = self.slurm.env["SLURM_CONF"]
        cores = 1 if unit.is_node_task else unit.min_cores
        name = slurm.step_name(self.head_id, job.id, unit.key, unit.requeue_count)
        return self.slurm.step_argv(job.slurm_job_id, unit.node, cores, name, unit.command)

    def reap_exited_units(self) -> None:
        """Records each exited task; an exit that could not be recorded (the store failed) is kept and
        recorded on a later pass, so a task that exited 0 is never taken for killed."""
        self._exits += executor.reap()
        while self._exits:
            pid, status = self._exits[0]
            entry = self.running.get(pid)
            if entry is not None:
                self._current = entry[0]
                try:
                    self._wrapper_exited(entry[0], entry[1], executor.exit_code(status))
                except sqlite3.Error:
                    raise  # kept: recorded on a later pass
                except Exception:
                    self._exits.pop(0)  # a fault of this job: it is failed, the exit is not retried...
                    self.running.pop(pid, None)
                    self.popen.pop(pid, None)
                    self._ended_by_fault(entry[0], entry[1], executor.exit_code(status))
                    raise
            self._exits.pop(0)
            self.running.pop(pid, None)
            popen = self.popen.pop(pid, None)
            if popen is not None:
                popen.returncode = executor.exit_code(status)

    def _ended_by_fault(self, job: Job, unit: Task, code: int) -> None:
        """...but its task has ended all the same: recorded Failed, so that the job's end (and its cores)
        never waits for a process that is gone."""
        if unit.state not in (TaskState.Running, TaskState.Canceling):
            return
        unit.move("stopped" if unit.state == TaskState.Canceling else "exited_failed")
        unit.exit_code, unit.end_time, unit.error_code = code, now(), TASK_FAILURE
        unit.error_message = "The head node failed while recording how the task ended."
        try:
            self.commit(job, [unit], job_changed=False)
        except Exception:  # the job is failed next (_fault); memory already says the task ended
            log.exception("the end of task %s could not be stored", unit.key)

    def _wrapper_exited(self, job: Job, unit: Task, status: int) -> None:
        """The launcher's wrapper ended: the task's exit code is in its exit file; without one the
        wrapper itself was killed (`status`), and a start error there fails the task with its reason."""
        code, error = executor.read_result(self._exit_path(unit))
        if error:
            unit.output = executor.read_output(self._output_path(unit))
            self._fail_start(job, unit, error)
            return
        self._unit_exited(job, unit, code if code is not None else status)

    def _unit_exited(self, job: Job, unit: Task, code: int) -> None:
        unit.exit_code = code
        unit.end_time = now()
        unit.output = executor.read_output(self._output_path(unit))
        stopping = unit.state == TaskState.Canceling
        if not stopping or job.state != JobState.Canceling:
            # Nothing outlives its task: leftovers of a task that ended are killed at the next sweep.
            self._sweep.append(Leftover(job, unit.token, unit.start_time))
        if stopping and unit.requeue_when_stopped and job.state == JobState.Running:
            unit.requeue_when_stopped = False
            unit.requeue()
            self.commit(job, [unit], job_changed=False)
            return
        if stopping:
            # A job being finished (-State Finished): a task that ends well is Finished, even if it ended
            # by itself just as the stop arrived.
            finishing = (job.cancel is not None and job.cancel.final_state == "Finished"
                         and self._exit_ok(job, code, unit))
            finished = unit.error_code == FINISHED_BY_USER or finishing
            unit.move("stopped_finished" if finished else "stopped")
            if job.state == JobState.Canceling and not unit.error_message:
                unit.error_code = TASKS_JOB_CANCELED
                unit.error_message = "The job to which the task belongs was canceled."
        elif self._exit_ok(job, code, unit):
            unit.move("exited_ok")
        else:
            unit.move("exited_failed")
            unit.error_code = TASK_FAILURE
            unit.error_message = (f"The task was killed by {executor.signal_name(code)}." if code < 0
                                  else f"The task failed with exit code {code}.")
        self.commit(job, [unit], job_changed=False)
        if unit.state == TaskState.Failed and not self._retry(job, unit):
            self._task_failed(job, unit)

    def _task_failed(self, job: Job, unit: Task) -> None:
        """A failed task fails its running job when the job or task asks for it, or it prepared a node."""
        if unit.state == TaskState.Failed and job.state == JobState.Running and (
                job.fail_on_task_failure or self._failures_reached(job, unit) or unit.type == "NodePrep"):
            # The job's message is public and the task's may name private paths: only what is safe here.
            how = f"with exit code {unit.exit_code}" if unit.exit_code is not None else "to start"
            self._fail_job(job, f"Task {unit.key} failed {how}; its error message says more.")

    @staticmethod
    def _failures_reached(job: Job, unit: Task) -> bool:
        """FailJobOnFailure: the first failure fails the job, or the FailJobOnFailureCount-th of the task's
        units (a sweep's steps)."""
        if not unit.fail_job_on_failure:
            return False
        task = job.task(unit.task_id)
        units = (task.instances if task is not None and task.instances else [unit])
        return sum(1 for u in units if u.state == TaskState.Failed) >= max(1, unit.fail_job_on_failure_count)

    def _retry(self, job: Job, unit: Task) -> bool:
        """TaskExecutionFailureRetryLimit: a failed, rerunnable task of a running job runs again."""
        if (job.state != JobState.Running or not unit.rerunnable or unit.is_node_task
                or unit.requeue_count >= job.task_retry_limit):
            return False
        failure = unit.error_message
        unit.requeue()
        self.commit(job, [unit], ("scheduler", "task retry", failure, unit.key), job_changed=False)
        return True

    def _exit_ok(self, job: Job, code: int, unit: Task | None = None) -> bool:
        """The task's ValidExitCodes, else the job's, else 0 alone (both were checked when set; a value
        stored by an older version that does not parse counts as 0 alone)."""
        codes = unit.valid_exit_codes if unit is not None and unit.valid_exit_codes else job.valid_exit_codes
        try:
            ranges = jobspec.valid_exit_codes(codes)
        except HpcError:
            ranges = [(0, 0)]
        return any(lo <= code <= hi for lo, hi in ranges)

    def expand_sweeps(self) -> None:
        """Creates the next steps of sweeps whose created steps are running out (a window at a time, a
        bounded number and size each pass, so one huge sweep never holds the loop). A job not yet
        running gets its sweeps' first window here too, never inside the request that added them."""
        budget = [2 * SWEEP_WINDOW, 2 * WINDOW_BYTES]  # steps, bytes: this pass's
        for job in self._each(self.sweep_jobs(JobState.Configuring, JobState.Submitted, JobState.Queued,
                                              JobState.Running)):
            for sweep in [t for t in job.tasks if t.pending_steps and not t.rest_canceled]:
                if min(budget) <= 0:
                    return
                self._expand(job, sweep, budget)

    def _expand(self, job: Job, sweep: Task, budget: list[int]) -> None:
        window = jobspec.window(sweep)
        waiting = sum(1 for u in sweep.instances if u.state in TASK_WAITING)
        if waiting * 2 >= window or (job.state != JobState.Running and sweep.instances):
            return
        steps = jobspec.more_steps(sweep, min(window, budget[0]))
        if sweep.state != TaskState.Configuring:
            self._queue_task_units(steps)
        sweep.instances += steps
        budget[0] -= len(steps)
        budget[1] -= sum(jobspec.unit_bytes(s) for s in steps)
        with self.batch():
            for step in steps:
                self.store.insert_task(step)

    def complete_finished_jobs(self) -> None:
        for job in self._each(self.in_state(JobState.Running)):
            work = [u for u in job.units() if not u.is_node_task]
            if job.run_until_canceled or any(u.state not in TASK_TERMINAL for u in work) or any(
                    t.pending_steps and not t.rest_canceled for t in job.tasks):
                continue
            if any(u.state not in TASK_TERMINAL for u in job.units()):
                continue
            self._move(job, "complete")
            self.commit(job)
