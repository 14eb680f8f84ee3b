"""The head node's state and the few rules every part uses: jobs and their per-state index,
permissions, one transaction per change, and putting jobs back as stored after a failed change."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from ..config import PROPERTY_DEFAULTS, HeadNodeConfig
from ..errors import HpcError
from ..identity import Caller
from ..model import jobspec
from ..model.objects import Job, Task, now
from ..model.states import JobState, TaskState
from . import executor
from .slurm import Slurm
from .store import Rows, Store, Transaction
from .waits import Waits

log = logging.getLogger("hpcpack.head.headnode")


# HPC Pack's error codes stored on failed jobs and tasks (those of cancels are in model).
TASK_FAILURE = 0x800409DC
JOB_RUNTIME_EXPIRED = 0x800409D5

_CANCEL_KINDS = {  # (force, graceful, finish) -> (history word, RequestCancel value)
    (False, False, False): ("cancel", "CancelByUser"),
    (True, False, False): ("force", "CancelForceByUser"),
    (False, True, False): ("graceful", "CancelGraceful"),
    (False, False, True): ("finish", "Finish"),
    (True, False, True): ("finish", "FinishForce"),
    (False, True, True): ("finish", "FinishGraceful"),
}
SURVIVOR_REPORT_AFTER = 2.0  # seconds after SIGKILL before survivors are reported as trouble
SWEEP_INTERVAL = 0.1  # seconds between scans for what ended tasks left behind
ADOPTED_POLL_INTERVAL = 0.1  # seconds between looks at tasks adopted after a restart (a /proc scan each)
# Slurm lists a killed step until slurmstepd has seen its cgroup empty (about 3 s here): only later is
# a step still listed reported as trouble.
SLURM_STEPS_REPORT_AFTER = 30.0
# A step Slurm lists this long once all the job's work is over ends with its allocation: a launch whose
# srun was killed before slurmstepd could reach it ("Slurmd could not connect IO") can leave a step record
# that Slurm lists until the job ends.
SLURM_STEP_STUCK_AFTER = 10.0
STEP_KILL_INTERVAL = 0.5  # seconds between SIGKILLs through Slurm to the steps of a job being ended
SLURM_POLL_INTERVAL = 0.05  # seconds between asking Slurm whether queued jobs' allocations were granted
CLEANUP_INTERVAL = 3600.0  # seconds between looks for ended jobs past their time to live


@dataclass(frozen=True)
class Leftover:
    """A run of a task that ended: whatever of it is still alive is killed at the next sweep."""

    job: Job
    token: str
    since: float | None


ENDED_STATES = (JobState.Finished, JobState.Failed, JobState.Canceled)
ACTIVE_STATES = tuple(s for s in JobState.__members__.values() if s not in (*ENDED_STATES, JobState.All))
ENV_PREFIX = "env:"  # cluster environment variables among the stored cluster properties
EVICT_AFTER = 60.0  # seconds an ended job stays in memory


class Core:
    def __init__(self, state_dir: Path, config: HeadNodeConfig) -> None:
        self.state_dir = state_dir
        self.config = config
        self.store = Store(state_dir / "headnode.db")
        self._properties: dict[str, str] | None = None
        self.head_id = self._head_id()
        self.output_dir = state_dir / "output"
        self.cgroups = executor.Cgroups(self.head_id)
        self.launchers = executor.Launchers()
        self.name = socket.gethostname().upper()
        self.slurm: Slurm | None = None
        if config.engine == "slurm":
            self.slurm = Slurm(config.slurm_conf)
            config.nodes = self.slurm.nodes()  # Slurm's nodes are the cluster's
        self._next_slurm_poll = 0.0
        self._next_step_kill: dict[int, float] = {}  # job id -> when its steps may be killed through Slurm again
        self._steps_left_since: dict[int, float] = {}  # job id -> when its proof step first saw Slurm list a step
        self._slurm_gathered: dict[tuple[str, str], list[int]] = {}  # (command, text) -> Slurm job ids, see processes
        self.jobs: dict[int, Job] = {}
        self._by_state: dict[JobState, dict[int, Job]] = {s: {} for s in JobState.__members__.values()}
        self._sweep_jobs: set[int] = set()  # jobs with a parametric sweep (the only ones expand_sweeps reads)
        for job in self.store.load_jobs(states=ACTIVE_STATES):  # ended jobs stay on disk until asked for
            self._add(job)
        self.running: dict[int, tuple[Job, Task]] = {}  # pid -> unit whose process we started
        self.popen: dict[int, Popen[bytes]] = {}
        self.adopted: dict[str, tuple[Job, Task]] = {}  # units found running after a restart
        self.waits = Waits()
        self._task_deadlines: dict[str, tuple[float, Job, Task]] = {}  # single-task cancels in their grace
        self._sweep: list[Leftover] = []  # ended tasks whose leftover processes are still to be killed
        self._next_sweep = 0.0
        self._next_eviction = 0.0
        self._next_cleanup = 0.0
        self._processes: list[executor.ProcessInfo] | None = None  # one /proc scan per step, taken lazily
        self._current: Job | None = None  # the job a loop phase is working on
        self.touched: set[int] = set()  # jobs the current request looked up
        self._quarantine: set[int] = set()  # jobs that faulted and could not even be failed
        self._exits: list[tuple[int, int]] = []  # (pid, status) reaped, not yet recorded
        self._next_order = self._order_counter()
        self.store.on_rollback(self.forget_uncommitted)

    def forget_uncommitted(self, written: set[int]) -> None:
        """After a rollback, memory is what the store has: the jobs the transaction looked up or wrote
        are read again (one it created is gone, so nothing lists a job that was never stored), and what
        is derived from stored rows (cluster properties, queue order) is taken again from them."""
        self.reload(self.touched | written)
        self._properties = None
        self._next_order = self._order_counter()

    def _order_counter(self) -> float:
        """The queue-order counter as the jobs in memory have it: beyond every order given (a job put
        in front of the queue has a negative one)."""
        return max([0.0, *(abs(j.queue_order) for j in self.jobs.values())]) + 1

    def close(self) -> None:
        self.launchers.close()
        self.cgroups.close()
        self.store.close()

    def _add(self, job: Job) -> None:
        self.jobs[job.id] = job
        self._by_state[job.state][job.id] = job
        self.note_sweeps(job)

    def note_sweeps(self, job: Job) -> None:
        """Remembers a job that has a parametric sweep: called whenever a job gets or changes tasks."""
        if any(t.parametric for t in job.tasks):
            self._sweep_jobs.add(job.id)

    def sweep_jobs(self, *states: JobState) -> list[Job]:
        """The jobs in these states that have a sweep (a walk of the sweeps, not of every active job)."""
        jobs = []
        for job_id in sorted(self._sweep_jobs):
            job = self.jobs.get(job_id)
            if job is None:
                self._sweep_jobs.discard(job_id)  # evicted or deleted (read again, it is noted again)
            elif job.state in states:
                jobs.append(job)
        return jobs

    def _move(self, job: Job, event: str) -> None:
        """Every job transition goes through here, so the per-state index stays true."""
        before = job.state
        job.move(event)
        del self._by_state[before][job.id]
        self._by_state[job.state][job.id] = job
        if job.terminal:
            self.waits.job_ended(job.id)

    def node_usable(self, name: str) -> bool:
        """New work may start on the node (head.nodes knows node states; here every node may)."""
        return True

    def in_state(self, *states: JobState) -> list[Job]:
        """The jobs in these states (each loop step looks only at the jobs it can act on)."""
        return [job for state in states for job in list(self._by_state[state].values())]

    def _head_id(self) -> str:
        props = self.store.properties()
        if "HeadNodeId" not in props:
            self.store.set_property("HeadNodeId", uuid.uuid4().hex[:12])
            props = self.store.properties()
        return props["HeadNodeId"]

    def property(self, name: str) -> int:
        if self._properties is None:
            self._properties = self.store.properties()  # the head node is the only writer
        value = self._properties.get(name)
        return int(value) if value is not None else PROPERTY_DEFAULTS[name]

    def cluster_environment(self) -> dict[str, str]:
        """Cluster-wide environment variables (Set-HpcClusterProperty -Environment): every task gets them."""
        if self._properties is None:
            self._properties = self.store.properties()
        return {k.removeprefix(ENV_PREFIX): v for k, v in self._properties.items() if k.startswith(ENV_PREFIX)}

    def set_environment(self, values: dict[str, str | None]) -> None:
        with self.store.transaction():
            for name, value in values.items():
                if value is None:
                    self.store.db.execute("DELETE FROM cluster_properties WHERE name = ?", (ENV_PREFIX + name,))
                else:
                    self.store.set_property(ENV_PREFIX + name, value)
        self._properties = None

    def job(self, job_id: int) -> Job:
        """The job, remembered as touched by the current request (see reload); InvalidJobId if none."""
        self.touched.add(job_id)
        job = self.find(job_id)
        if job is None:
            raise self._no_such_job(job_id)
        return job

    def read_job(self, job_id: int) -> Job:
        """The job for a question about it: from memory, or read from the store without its tasks (its record
        has their counters) and without keeping it, so that questions about many ended jobs do not fill
        memory (each lookup kept a job and all its tasks for EVICT_AFTER); InvalidJobId if none."""
        job = self.jobs.get(job_id) or (self.store.stored_job(job_id) if 0 < job_id < 2**63 else None)
        if job is None:
            raise self._no_such_job(job_id)
        return job

    def _no_such_job(self, job_id: int) -> HpcError:
        return HpcError("InvalidJobId", f"Job {job_id} does not exist on the head node {self.name}.", job_id)

    def find(self, job_id: int) -> Job | None:
        """The job from memory, or read from the store (an ended job is kept in memory only a while)."""
        job = self.jobs.get(job_id)
        if job is None and 0 < job_id < 2**63:  # (SQLite's integers)
            for job in self.store.load_jobs(job_id):
                self._add(job)
        return job

    def evict_ended_jobs(self) -> None:
        """Memory holds the jobs that can still change: an ended job leaves it EVICT_AFTER seconds after
        its end (the store keeps it), so memory does not grow with the history of the cluster."""
        if now() < self._next_eviction:
            return
        self._next_eviction = now() + EVICT_AFTER / 6
        for job in self.in_state(*ENDED_STATES):  # (waits keep no ended job: they have its state)
            if (job.end_time or 0) < now() - EVICT_AFTER:
                with self.batch():  # its stored task counters as they are now (listings read only those)
                    self.store.save_job(job, int(job.state))
                del self.jobs[job.id], self._by_state[job.state][job.id]

    def may_read(self, caller: Caller, job: Job) -> bool:
        """Whether the caller may see what can carry secrets (model.PRIVATE_*_FIELDS; about_HPC)."""
        return caller.admin or caller.name == job.owner

    @staticmethod
    def may_change(caller: Caller, job: Job) -> bool:
        return caller.admin or caller.name == job.owner

    def authorize_read(self, caller: Caller, job: Job) -> None:
        if not self.may_read(caller, job):
            raise HpcError("PermissionDenied", f"The user {caller.name} may not read the details of job {job.id}, "
                           f"which belongs to {job.owner}; only its owner and administrators can.", job.id)

    def enforce_template(self, caller: Caller, job: Job) -> None:
        """The job's template, applied whenever the job enters the queue or changes there (admission.py
        does it; at this level there is none)."""

    def authorize(self, caller: Caller, job: Job) -> None:
        if not self.may_change(caller, job):
            raise HpcError("PermissionDenied", f"The user {caller.name} does not have permission to change job "
                           f"{job.id}, which belongs to {job.owner}.", job.id)

    def history(self, job: Job, actor: str, event: str, message: str = "", details: str = "", *,
                rows: Rows | None = None) -> None:
        row = (job.id, now(), actor, event, message, details)
        if rows is None:
            self.store.add_history(*row)
        else:
            rows.history.append(row)

    def commit(self, job: Job, units: Iterable[Task] = (), entry: tuple[str, ...] = (), job_changed: bool = True,
               expected: int | None = None, rows: Rows | None = None) -> None:
        """Writes one change in one transaction: the job (compare-and-set on its state), the units it
        changed, and its history row (actor, event[, message[, details]]). Inside a transaction it is
        a part of it, undone with it. With `rows`, the writes are gathered there instead (Store.write)."""
        if rows is not None:
            rows.jobs += [(job, expected)] if job_changed else []
            rows.tasks.extend(units)
            if entry:
                self.history(job, *entry, rows=rows)
            return
        with self.store.atomic():
            if job_changed:
                self.store.save_job(job, expected)
            for unit in units:
                self.store.save_task(unit)
            if entry:
                self.history(job, *entry)

    def alone(self, job_id: int, action: Callable[[], Job]) -> Job | HpcError:
        """`action()` in a savepoint of its own: when it is refused, its writes and its job in memory are
        undone and the refusal returned, so that the other jobs of a bulk request go on."""
        try:
            with self.batch():
                return action()
        except HpcError as e:
            self.reload([job_id])
            return e

    def batch(self) -> Transaction:
        """One transaction for several changes (nested ones join it)."""
        return self.store.transaction()

    def begin(self) -> None:
        """Forget the last process scan and the jobs touched: called before each request and each step."""
        self._processes = None
        self.touched = set()

    def reload(self, job_ids: Iterable[int]) -> None:
        """Puts the jobs back as the store has them (after a change that could not be committed), and
        every reference the head node keeps to them with them. All are read before any is replaced: a
        read that fails (an I/O error) leaves memory as it was, rather than without some active jobs."""
        wanted = set(job_ids)
        fresh = {job.id: job for job_id in wanted for job in self.store.load_jobs(job_id)}
        for job_id in wanted:
            old = self.jobs.pop(job_id, None)
            if old is not None:
                del self._by_state[old.state][job_id]
        for job in fresh.values():
            self._add(job)
        if not fresh:
            return

        def renew(job: Job, unit: Task) -> tuple[Job, Task]:
            new = fresh.get(job.id)
            match = next((u for u in new.units() if u.key == unit.key), None) if new else None
            return (new, match) if new is not None and match is not None else (job, unit)
        self.running = {pid: renew(*entry) for pid, entry in self.running.items()}
        self.adopted = {key: renew(*entry) for key, entry in self.adopted.items()}
        self._task_deadlines = {key: (deadline, *renew(job, unit))
                                for key, (deadline, job, unit) in self._task_deadlines.items()}

    def _active_ids(self) -> list[int]:
        ended = (JobState.Finished, JobState.Failed, JobState.Canceled)
        return [job_id for state, jobs in self._by_state.items() if state not in ended for job_id in jobs]

    def find_task(self, job: Job, task_id: int, sub_id: int) -> Task:
        task = job.task(int(task_id))
        if task is not None and sub_id:
            task = next((i for i in task.instances if i.sub_id == int(sub_id)), None)
        if task is None:
            suffix = f".{sub_id}" if sub_id else ""
            raise HpcError("InvalidTaskId", f"Task {job.id}.{task_id}{suffix} does not exist.", f"{job.id}.{task_id}")
        return task

    def _output_path(self, unit: Task) -> Path:
        return self.output_dir / str(unit.job_id) / f"{unit.task_id}.{unit.sub_id}.{unit.requeue_count}.out"

    def _exit_path(self, unit: Task) -> Path:
        return self.output_dir / str(unit.job_id) / f"{unit.task_id}.{unit.sub_id}.{unit.requeue_count}.rc"

    def _node_instances(self, job: Job, template: Task) -> list[Task]:
        template.instances = [jobspec.node_instance(template, i + 1, node)
                              for i, node in enumerate(sorted(job.allocation))]
        for unit in template.instances:
            unit.move("submit")
        return template.instances

    def _queue_task(self, task: Task) -> None:
        self._queue_task_units([task, *task.instances])

    def _queue_task_units(self, units: list[Task]) -> None:
        for unit in units:
            if unit.state == TaskState.Configuring:
                unit.move("submit")
                unit.submit_time = now()

    def _take_order(self, front: bool = False) -> float:
        self._next_order += 1
        return -self._next_order if front else self._next_order

    def _core_demand(self, job: Job) -> tuple[int, int]:
        per_unit = [u.min_cores for u in job.units() if not u.is_node_task] or [1]
        per_node = max((n.cores for n in self.config.nodes), default=1)
        scale = {"Core": 1, "Socket": 1, "Node": per_node}[job.unit_type]
        low = job.min_units * scale if job.min_units is not None else max(per_unit)
        high = job.max_units * scale if job.max_units is not None else max(low, sum(per_unit))
        return low, high

    def _each(self, jobs: list[Job]) -> Iterable[Job]:
        """The jobs a phase works on, each remembered while it is worked on (to blame it for a fault)."""
        for job in jobs:
            if job.id not in self._quarantine:
                self._current = self.jobs.get(job.id, job)
                yield self._current
