"""Slurm as the execution engine: the head node keeps the HPC model, Slurm allocates and launches.

An HPC job is one Slurm allocation, asked for as the job's owner (`runuser -u <owner> -- sbatch` of a
holder script that only sleeps, so the allocation lives until the head node ends it); each task unit
is a job step (`srun --jobid=<allocation> --overlap ...`) started by the ordinary launcher as the owner,
so the local srun is the task's process here and its exit code is the task's. Everything a user sends
(command line, environment, message) goes as one argv word or through the environment, never into
shell text or a Slurm option string.

Only root's client commands talk to slurmctld from here (root is Slurm's administrator); the owner's
identity reaches Slurm through MUNGE when sbatch and srun run as the owner.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..config import Node

log = logging.getLogger("hpcpack.head.slurm")

COMMAND_TIMEOUT = 15.0  # seconds a Slurm command may take before the head node gives up on it
# The holder keeps the allocation: the head node, not the script, decides when it ends.
HOLDER_SCRIPT = "#!/bin/sh\nexec sleep infinity\n"
LIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING"})
# The markers stay on this machine: a step's processes are found through Slurm, not by scanning /proc.
UNMARK = ("/usr/bin/env", "-u", "HPCPACK_JOB", "-u", "HPCPACK_TASK")
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
# HPC priority as the owner's --nice (priority/basic: priority = a counter that falls by one per submit, minus
# nice), so jobs of one band keep their submit order while fewer than NICE_STEP submits lie between them.
# Two ranks per HPC priority (0-4000): a requeued job (the front of its band, as in HPC Pack) ranks higher.
NICE_STEP = 1 << 18
TOP_RANK = 2 * 4000 + 1
NODE_FORMAT = "%N|%c|%m|%X|%T|%C|%f|%P|%E"  # the reason (%E) last: it is free text and may hold a "|"


class SlurmError(Exception):
    """A Slurm command failed; the message has the command and what it said."""


@dataclass(frozen=True)
class Request:
    """What an HPC job asks Slurm for: cores (or whole nodes), where, and whether it shares nodes."""

    cores: int
    nodes: str = ""  # "min-max" for NumNodes jobs, else empty
    exclude: tuple[str, ...] = ()
    exclusive: bool = False
    partition: str = ""  # --partition: Slurm's own partition names, comma-separated
    constraint: str = ""  # --constraint: Slurm's own feature names joined by & | [ ]
    nice: int = 0  # --nice: the job's HPC priority (see nice())


@dataclass(frozen=True)
class SlurmNode:
    """One node as sinfo shows it; `state` is sinfo's long state (idle, mixed, draining, drained, down*, ...)."""

    name: str
    cpus: int
    memory: int  # MB
    sockets: int
    state: str
    alloc_cpus: int
    features: tuple[str, ...]
    partitions: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Holder:
    """A live Slurm job as squeue lists it: who submitted it, under which name, in which state."""

    job_id: int
    user: str
    state: str
    name: str


class Slurm:
    """Slurm's client commands, run with the head node's SLURM_CONF."""

    def __init__(self, conf: str | None) -> None:
        self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        if conf:
            self.env["SLURM_CONF"] = conf
        self.srun = shutil.which("srun") or "/usr/bin/srun"

    def run(self, args: Sequence[str], user: str = "", stdin: str = "") -> str:
        """Runs a Slurm command (as `user` when given) and returns its standard output."""
        argv = ["runuser", "-u", user, "--", *args] if user and os.geteuid() == 0 else list(args)
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=self.env,
                                  timeout=COMMAND_TIMEOUT, cwd="/")
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SlurmError(f"{args[0]} could not run: {e}") from None
        if done.returncode != 0:
            raise SlurmError(f"{' '.join(args[:2])} failed: {done.stderr.strip() or done.returncode}")
        return done.stdout

    def nodes(self) -> list[Node]:
        """The cluster's nodes: CPUs, sockets and memory."""
        return [Node(n.name, n.cpus, n.sockets, n.memory) for n in self.node_info()]

    def node_info(self) -> list[SlurmNode]:
        """Every node once, by name, with all its partitions (sinfo lists it once per partition): one call
        for the whole cluster. Feature and partition names that no Slurm option could carry are left out."""
        found: dict[str, SlurmNode] = {}
        for line in self.run(["sinfo", "-h", "-N", "-o", NODE_FORMAT]).splitlines():
            name, cpus, memory, sockets, state, counts, features, partition, reason = line.split("|", 8)
            known = found.get(name)
            partitions = (*known.partitions, partition.rstrip("*")) if known else (partition.rstrip("*"),)
            found[name] = SlurmNode(name, int(cpus), int(memory), int(sockets), state, int(counts.split("/")[0]),
                                    _names(features.split(",")), _names(partitions), reason)
        return [found[n] for n in sorted(found)]

    def idle_cpus(self) -> dict[str, int]:
        """Node -> CPUs nobody holds now (sinfo's %C is allocated/idle/other/total)."""
        idle: dict[str, int] = {}
        for line in self.run(["sinfo", "-h", "-N", "-o", "%N %C"]).splitlines():
            name, counts = line.split()
            idle[name] = int(counts.split("/")[1])
        return idle

    def submit_holder(self, owner: str, name: str, request: Request) -> int:
        """Asks for the allocation as `owner`; returns Slurm's job id at once (the job may wait)."""
        # No --export: with NONE (or any list) slurmd first builds the user's login environment
        # (--get-user-env), and on 22.05 the batch script was then never launched; the environment
        # passed on is the head node's own minimal one (self.env), nothing of the owner's.
        args = ["sbatch", "--parsable", f"--job-name={_safe(name)}", f"--ntasks={request.cores}",
                "--output=/dev/null", "--error=/dev/null", "--chdir=/"]
        if request.nodes:
            args.append(f"--nodes={request.nodes}")
        if request.exclude:
            args.append(f"--exclude={','.join(_safe(n) for n in request.exclude)}")
        if request.exclusive:
            args.append("--exclusive")
        args += [f"--{option}={value}" for option, value in (("partition", request.partition),
                 ("constraint", request.constraint), ("nice", request.nice)) if value]
        out = self.run(args, user=owner, stdin=HOLDER_SCRIPT)  # the script comes on stdin: no file to trust
        return int(out.strip().split(";")[0])

    def states(self, job_ids: Iterable[int]) -> dict[int, str]:
        """Slurm job id -> state for the jobs Slurm still lists (a gone job is missing)."""
        ids = sorted(set(job_ids))
        if not ids:
            return {}
        try:
            out = self.run(["squeue", "-h", "-o", "%i %T", f"--jobs={','.join(map(str, ids))}"])
        except SlurmError:  # squeue refuses a list with an id it no longer knows: ask one by one
            if len(ids) == 1:
                return {}
            return {k: v for i in ids for k, v in self.states([i]).items()}
        return {int(i): state for i, state in (line.split() for line in out.splitlines()) if i.isdigit()}

    def holders(self, names: Sequence[str] = ()) -> list[Holder]:
        """Live Slurm jobs of every user with these names (every live job when none is given): how a
        holder whose id the head node never stored (it died right after sbatch) is found again."""
        # The name last: it may hold a '|'. Any user names their Slurm jobs, newlines included, so a name
        # can print as lines of its own ("101|alice|RUNNING|hpc-..."): only lines with this call's mark,
        # which no name can know, are squeue's own.
        mark = secrets.token_hex(8)
        args = ["squeue", "-h", "--all", "-o", f"%i|%u|%T|{mark}|%j"]
        if names:
            args.append(f"--name={','.join(_safe(n) for n in names)}")
        found = []
        for line in self.run(args).splitlines():
            job_id, user, state, seen, name = (line.split("|", 4) + ["", "", "", ""])[:5]
            # array elements ("12_3") are never holders
            if seen == mark and job_id.isdigit() and state in LIVE_STATES:
                found.append(Holder(int(job_id), user, state, name))
        return found

    def allocation(self, job_id: int) -> dict[str, int]:
        """Node -> CPUs of a running allocation. Its nodes and CPUs come from squeue, in a line with this
        call's mark; across nodes the split is scontrol's detailed `Nodes=... CPU_IDs=...` lines, taken
        only when they add up to exactly those nodes and CPUs: the owner's job name or comment can print
        lines of that shape too. Raises SlurmError when the job is not listed or the two disagree."""
        mark = secrets.token_hex(8)
        out = self.run(["squeue", "-h", f"--jobs={job_id}", "-o", f"{mark}|%C|%N"])
        line = next((row for row in out.splitlines() if row.startswith(f"{mark}|")), "")
        if not line:
            raise SlurmError(f"Slurm job {job_id} is not listed")
        _, cpus, nodelist = line.split("|", 2)
        nodes = self.hostnames(nodelist)
        if len(nodes) == 1:
            return {nodes[0]: int(cpus)}
        text = self.run(["scontrol", "-d", "show", "job", str(job_id)])
        split = [(node, _count_ids(cpu_ids)) for names, cpu_ids in
                 re.findall(r"^ +Nodes=(\S+) CPU_IDs=(\S+)", text, re.MULTILINE) for node in self.hostnames(names)]
        grant = dict(split)  # a node named twice is never Slurm's own split
        if len(grant) != len(split) or sorted(grant) != sorted(nodes) or sum(grant.values()) != int(cpus):
            raise SlurmError(f"Slurm job {job_id}: its CPUs by node ({grant}) are not its {cpus} CPUs on {nodelist}")
        return grant

    def hostnames(self, nodelist: str) -> list[str]:
        if "[" not in nodelist:
            return nodelist.split(",")
        return self.run(["scontrol", "show", "hostnames", nodelist]).split()

    def steps(self, job_id: int) -> dict[str, str]:
        """Step id ("J.S") -> step name, for the steps of the allocation other than its holder."""
        # The owner names steps of their own (srun --jobid), newlines included: only lines with this
        # call's mark are squeue's own, and only this allocation's steps are ever signalled (as root).
        mark = secrets.token_hex(8)
        out = self.run(["squeue", "-h", "-s", "-o", f"%i {mark} %j", f"--jobs={job_id}"])
        steps = {}
        for line in out.splitlines():
            step, seen, name = (line.split(" ", 2) + ["", ""])[:3]
            if seen == mark and step.startswith(f"{job_id}.") and step.split(".")[-1] not in ("batch", "extern"):
                steps[step] = name
        return steps

    def signal_steps(self, job_id: int, names: Iterable[str], sig: signal.Signals) -> None:
        """Sends `sig` to the allocation's steps that carry these names."""
        wanted = set(names)
        steps = [s for s, name in self.steps(job_id).items() if name in wanted]
        if steps:
            self.run(["scancel", f"--signal={sig.name.removeprefix('SIG')}", *steps])

    def kill_all_steps(self, job_id: int) -> None:
        """SIGKILL to every step but the holder, by step id: a signal to the job would reach the batch
        step too and end the allocation, which still has node-release steps to run."""
        steps = list(self.steps(job_id))
        if steps:
            self.run(["scancel", "--signal=KILL", *steps])

    def set_nice(self, job_id: int, nice: int) -> None:
        """A waiting job's new HPC priority (as root: a user may only lower a job's priority)."""
        self.run(["scontrol", "update", f"jobid={job_id}", f"nice={nice}"])

    def shrink(self, job_id: int, nodes: Iterable[str]) -> None:
        """A running allocation keeps only `nodes` (Slurm refuses to give up the batch host)."""
        self.run(["scontrol", "update", f"jobid={job_id}", f"nodelist={','.join(_safe(n) for n in nodes)}"])

    def drain(self, node: str, reason: str) -> None:
        """No new allocation on `node`; the running ones go on (sinfo: draining, then drained)."""
        self.run(["scontrol", "update", f"nodename={_safe(node)}", "state=drain", f"reason={reason}"])

    def resume(self, node: str) -> None:
        self.run(["scontrol", "update", f"nodename={_safe(node)}", "state=resume"])

    def comment(self, job_ids: Sequence[int], text: str) -> None:
        """Mirrors the cancel message into these jobs' Comment, so Slurm's tools show it (one argv word,
        one command for them all)."""
        self.run(["scontrol", "update", f"job={','.join(map(str, job_ids))}", f"comment={text}"])

    def end(self, *job_ids: int) -> None:
        """Ends the allocations (their holders and whatever is left in them), in one scancel."""
        self.run(["scancel", *map(str, job_ids)])

    def step_argv(self, job_id: int, node: str, cores: int, name: str, command: str) -> list[str]:
        """The command line of a task as one step on `node`; the task's environment, WorkDir and
        redirections are the local srun's (the launcher sets them up as the owner), and srun passes
        them on. --quiet keeps srun's own messages out of the task's output."""
        return [self.srun, f"--jobid={job_id}", "--overlap", "--quiet", "--nodes=1", "--ntasks=1",
                f"--cpus-per-task={cores}", f"--nodelist={_safe(node)}", f"--job-name={_safe(name)}",
                "--", *UNMARK, "/bin/sh", "-c", command]


def step_name(head_id: str, job_id: int, unit_key: str, attempt: int) -> str:
    """A step's name, unique on this head node: the task's unit and its attempt."""
    return f"hpc-{head_id}-{job_id}-{unit_key}-{attempt}"


def nice(priority: int, front: bool) -> int:
    """The --nice of a job of this HPC priority (0-4000); `front`: requeued, first in its band."""
    return NICE_STEP * (TOP_RANK - 2 * max(0, min(priority, 4000)) - int(front))


def _names(words: Iterable[str]) -> tuple[str, ...]:
    """Slurm's names that options may carry, in order, once each (sinfo's "(null)" is none)."""
    return tuple(dict.fromkeys(w for w in words if _NAME.fullmatch(w)))


def _safe(word: str) -> str:
    """A name that goes inside a Slurm option: only the characters names have, or it is refused."""
    if not _NAME.fullmatch(word):
        raise SlurmError(f"'{word}' is not a name Slurm options may carry")
    return word


def _count_ids(cpu_ids: str) -> int:
    """'0-1,3' -> 3."""
    count = 0
    for part in cpu_ids.split(","):
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count
