"""Which queued job gets which cores, and when: the scheduler's pass over the queue (head/scheduler.py
decides, pure), holds and parent jobs, jobs left without nodes, and on Slurm the allocations Slurm
grants (head/slurm.py)."""

from __future__ import annotations

from dataclasses import replace

from ..model.objects import Job, now
from ..model.states import JobState, TaskState
from . import scheduler, slurm
from .admission import Admission
from .core import SLURM_POLL_INTERVAL, log


class Allocation(Admission):
    def _stranded(self) -> list[Job]:
        """Running jobs left without nodes (their nodes were taken offline) that still have work to start."""
        return [j for j in self.in_state(JobState.Running) if not j.allocation
                and any(u.state == TaskState.Queued for u in j.units())]

    def allocate_queued_jobs(self) -> None:
        stranded = self._stranded()
        if not self._by_state[JobState.Queued] and not stranded:
            return
        if self.slurm is not None:
            self._allocate_on_slurm(self.slurm)
            return
        # Only Online nodes take new work: a Draining or Offline node gives no cores.
        free = {n.name: n.cores for n in self.config.nodes if self.node_usable(n.name)}
        for job in self.in_state(JobState.Running, JobState.Canceling, JobState.Finishing):
            for node, cores in job.allocation.items():
                if node in free:
                    free[node] -= cores
        for job in self._by_state[JobState.Queued].values():  # (every pass, every queued job: kept lean)
            job.pending_reason = "Resources" if job.hold_until is None and not job.parent_job_ids else (
                self._hold_reason(job) or "Resources")
        if not any(cores > 0 for cores in free.values()):
            return  # nothing can start, however long the queue
        queued = [j for j in self._each(self.in_state(JobState.Queued)) if self._may_start(j)] + stranded
        idle = {n for n, cores in free.items() if cores == next(c.cores for c in self.config.nodes if c.name == n)}
        demands = []
        for job in queued:
            demand = self.demand(job)
            if demand is not None:  # else none of its nodes is there now: it waits, Resources
                demands.append(demand)
        capacity = {n.name: n.cores for n in self.config.nodes if self.node_usable(n.name)}
        grants = scheduler.plan(free, idle, demands, capacity)
        # Passed over by the plan: it would hold up the queue, and can never start as things are.
        never = [d for d in demands if d.job_id not in grants and not scheduler.can_ever_start(d, capacity)]
        for demand in never:
            self.jobs[demand.job_id].pending_reason = ("Resources: the nodes it may use, as they are now, "
                                                       f"cannot give it {demand.min_cores} cores")
        demands = [d for d in demands if d not in never]
        waiting = sorted((d for d in demands if d.job_id not in grants), key=scheduler.order)
        for place, demand in enumerate(waiting):  # the first waits for cores, the rest also for it
            self.jobs[demand.job_id].pending_reason = "Resources" if place == 0 else "Priority"
        for job_id, grant in grants.items():
            job = self.jobs[job_id]
            if job.state == JobState.Running:  # a stranded job: new nodes, the same run
                job.allocation = grant
                self.commit(job, entry=("scheduler", "nodes allocated", ",".join(sorted(grant))))
                continue
            self._start_job(job, grant)

    def _start_job(self, job: Job, grant: dict[str, int]) -> None:
        job.allocation = grant
        self._move(job, "start")
        job.start_time = now()
        prep = next((t for t in job.tasks if t.type == "NodePrep"), None)
        instances = self._node_instances(job, prep) if prep else []
        self.commit(job, instances)

    def _allocate_on_slurm(self, engine: slurm.Slurm) -> None:
        """Slurm decides when and where: a queued job asks for its allocation as its owner and stays
        Queued until Slurm grants it; then the granted nodes and CPUs are the job's allocation."""
        # Asked for in HPC order: within a band of equal priority Slurm keeps its submit order (slurm.nice).
        queued = sorted(self.in_state(JobState.Queued), key=lambda j: (-j.priority, j.queue_order, j.id))
        for job in (j for j in queued if not j.slurm_job_id):  # one Slurm has keeps the last poll's reason
            job.pending_reason = self._hold_reason(job) or "Resources"
        if now() >= self._next_slurm_poll:
            self._next_slurm_poll = now() + SLURM_POLL_INTERVAL
            self._poll_allocations(engine, [j for j in queued if j.slurm_job_id])
        asking = [j for j in queued if not j.slurm_job_id and self._may_start(j)]
        if not asking:
            return
        try:  # a holder submitted but never stored (the commit after sbatch failed) is taken, not doubled
            # by name and user: anyone may name a Slurm job of their own as another user's holder
            found = {(h.name, h.user): h for h in engine.holders([self._holder_name(j) for j in asking])}
        except slurm.SlurmError as e:
            log.warning("Slurm's queue could not be read, no allocation asked for: %s", e)
            return
        for job in self._each(asking):
            holder = found.get((self._holder_name(job), job.owner))
            if holder is not None:
                self._adopt_holder(job, holder)
            else:
                self._request_allocation(engine, job)

    def recover(self) -> None:
        super().recover()
        if self.slurm is not None:
            self._reconcile_holders(self.slurm)

    def _reconcile_holders(self, engine: slurm.Slurm) -> None:
        """After a start: this head node's holders that no job records. One submitted just before a crash
        (sbatch done, its id not stored) is adopted by its queued job; any other (its job ended or
        unknown, a second one for a job that has its own) is ended, or it would hold cores forever."""
        prefix = f"hpc-{self.head_id}-"
        try:
            holders = [h for h in engine.holders() if h.name.startswith(prefix)
                       and h.name[len(prefix):].isdigit()]
        except slurm.SlurmError as e:
            log.warning("Slurm's queue could not be read at start, holders not reconciled: %s", e)
            return
        for holder in holders:
            job = self.find(int(holder.name[len(prefix):]))
            if job is not None and job.slurm_job_id == holder.job_id:
                continue
            if (job is not None and job.state == JobState.Queued and not job.slurm_job_id
                    and holder.user == job.owner):
                self._adopt_holder(job, holder)
                continue
            log.warning("Slurm job %d (%s) belongs to no job of this head node: ended", holder.job_id, holder.name)
            try:
                engine.end(holder.job_id)
            except slurm.SlurmError as e:
                log.warning("Slurm job %d could not be ended: %s", holder.job_id, e)

    def _adopt_holder(self, job: Job, holder: slurm.Holder) -> None:
        job.slurm_job_id = holder.job_id
        self.commit(job, entry=("scheduler", "slurm allocation adopted", "", str(holder.job_id)))

    def _holder_name(self, job: Job) -> str:
        return f"hpc-{self.head_id}-{job.id}"

    def _request_allocation(self, engine: slurm.Slurm, job: Job) -> None:
        try:
            job.slurm_job_id = engine.submit_holder(job.owner, self._holder_name(job),
                                                    self._slurm_request(engine, job))
        except slurm.SlurmError as e:
            self._fail_job(job, f"Slurm refused the job's allocation: {e}")
            return
        self.commit(job, entry=("scheduler", "slurm allocation", "", str(job.slurm_job_id)))

    def _slurm_request(self, engine: slurm.Slurm, job: Job) -> slurm.Request:
        """The job's demand in Slurm's terms: as many cores as are idle now up to its maximum (never
        under its minimum, which it then waits for), only on the nodes it may use (its node groups as
        partition and constraint), ranked by its HPC priority."""
        low, high = self._core_demand(job)
        names = [n.name for n in self.config.nodes]
        requested = {r.lower() for r in job.requested_nodes}
        excluded = {e.lower() for e in job.excluded_nodes}
        sets = self.node_sets(job)
        grouped = set().union(*sets) if sets else set(names)
        exclude = tuple(n for n in names if n.lower() in excluded or (requested and n.lower() not in requested)
                        or n not in grouped)
        # Only a range needs Slurm's idle CPUs (one sinfo): a fixed demand asks for itself.
        idle = sum(c for n, c in engine.idle_cpus().items() if n not in exclude) if low < high else low
        partition, constraint = self.slurm_group_options(job)
        request = slurm.Request(cores=max(low, min(high, idle)), exclude=exclude, exclusive=job.exclusive,
                                partition=partition, constraint=constraint, nice=self._slurm_nice(job))
        if job.unit_type == "Node":
            nodes = f"{job.min_units or 1}-{job.max_units or job.min_units or 1}"
            return replace(request, cores=job.min_units or 1, nodes=nodes, exclusive=True)
        return request

    @staticmethod
    def _slurm_nice(job: Job) -> int:
        return slurm.nice(job.priority, front=job.queue_order < 0)

    def reprioritize_on_slurm(self, job: Job) -> None:
        """Set-HpcJob -Priority of a job waiting for its allocation: Slurm's order follows."""
        if job.state == JobState.Queued:
            self._slurm_call(job, lambda s, a: s.set_nice(a, self._slurm_nice(job)))

    def _poll_allocations(self, engine: slurm.Slurm, waiting: list[Job]) -> None:
        states = engine.states(j.slurm_job_id for j in waiting)
        for job in self._each(waiting):
            state = states.get(job.slurm_job_id)
            if state == "RUNNING":
                self._start_granted(engine, job)
            elif state is None or state not in slurm.LIVE_STATES:
                log.warning("job %d: Slurm job %d ended while queued (%s); asking again", job.id,
                            job.slurm_job_id, state)
                job.slurm_job_id = 0
                self.commit(job)
            else:
                job.pending_reason = f"Resources (Slurm job {job.slurm_job_id} {state})"

    def _start_granted(self, engine: slurm.Slurm, job: Job) -> None:
        """Starts a job on the allocation Slurm granted; one that cannot be read now is read again at
        the next poll (the job stays Queued, and says why)."""
        try:
            grant = engine.allocation(job.slurm_job_id)
        except slurm.SlurmError as e:
            log.warning("job %d: %s", job.id, e)
            job.pending_reason = f"Resources (Slurm job {job.slurm_job_id} granted, not yet readable: {e})"
            return
        self._start_job(job, grant)

    def _hold_reason(self, job: Job) -> str:
        """Why a queued job may not start yet whatever the cores: held, or parents not finished."""
        if job.hold_until is None and not job.parent_job_ids:
            return ""  # (most jobs: each loop pass asks this of every queued job)
        if job.hold_until is not None and now() < job.hold_until:
            return "HoldUntil"
        waiting = [p for p in job.parent_job_ids if not self._finished(p)]
        return f"Dependency ({','.join(map(str, waiting))})" if waiting else ""

    def _finished(self, job_id: int) -> bool:
        parent = self.find(job_id)
        return parent is not None and parent.state == JobState.Finished

    def _may_start(self, job: Job) -> bool:
        """Its parent jobs have finished, and it is not held (HoldUntil)."""
        return not self._hold_reason(job)
