"""A real two-node Slurm cluster on this machine, for tests that need Slurm as the execution engine.

Layout (facts in ../shared/reference/slurm-local.md, section 6.2, adapted so that a head node in the
root network namespace can talk to slurmctld without nsenter):

- one munged (the machine's, or started here), shared by every namespace through /run/munge;
- slurmctld in the root namespace, listening on a bridge `hpcs-br` with 10.213.0.1/24;
- one slurmd per node in its own network and UTS namespace (`hpcs-node1`, ... with 10.213.0.2, ...;
  hostname = node name), joined to the bridge by a veth pair;
- proctrack/cgroup with cgroup/v1, so a cancel kills every process of a job, even ones that left
  the process tree;
- every file (slurm.conf, cgroup.conf, epilog, state, spool, logs) under `base`; clients find the
  configuration through SLURM_CONF, daemons through `-f`: /etc/slurm is neither read nor written.

Start and stop both begin by removing whatever an earlier (possibly crashed) cluster left: its daemons,
the processes in its namespaces, its cgroups, namespaces, bridge and files. A lock held for the
cluster's lifetime tells a stale leftover from a cluster that is still running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import pytest

SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"
MUNGED = "/usr/sbin/munged"
# Debian package that provides each program the cluster runs.
PACKAGES = {SLURMCTLD: "slurmctld", SLURMD: "slurmd", "/usr/bin/sbatch": "slurm-client", MUNGED: "munge",
            "/usr/sbin/ip": "iproute2", "/usr/bin/nsenter": "util-linux"}
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
MUNGE_KEY = Path("/etc/munge/munge.key")
CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/run/netns")
LOCK_WAIT = 900.0  # seconds to wait for another test run's cluster to stop
LOCK_FILE = Path("/run/hpc-slurm-cluster.lock")
BRIDGE = "hpcs-br"
# Marks that munged was started by a SlurmCluster, so stop() ends it (and only then).
MUNGED_MARKER = "munged-started-here"

Scope = Literal["session", "package", "module", "class", "function"]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Polls `predicate` until it is true; raises with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout} s")
        time.sleep(interval)


def run(args: Sequence[str], check: bool = True, env: dict[str, str] | None = None, timeout: float | None = 600,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a command, capturing its output; a failure's message shows the command and its stderr."""
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (rc={result.returncode}): {result.stderr.strip()}")
    return result


def install_packages() -> None:
    """apt-get installs whatever Slurm, MUNGE or namespace tool is missing (CI starts with nothing)."""
    missing = sorted({pkg for path, pkg in PACKAGES.items() if not Path(path).exists()})
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if "Candidate: (none)" in run(["apt-cache", "policy", *missing], env=env).stdout or not any(
            Path("/var/lib/apt/lists").glob("*Packages*")):
        run(["apt-get", "update"], env=env)
    # Without systemd, the packages' scripts would try to start the daemons with the packaged
    # configuration; policy-rc.d (exit 101) forbids that, as Debian's container images do.
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env)
    finally:
        if added_policy:
            policy.unlink()


def munge_works() -> bool:
    return MUNGE_SOCKET.exists() and run(["munge", "-n"], check=False).returncode == 0


def start_munged(marker: Path) -> None:
    """Starts munged as the munge user unless one already answers; systemd's RuntimeDirectory is made by hand."""
    if munge_works():
        return
    munge = pwd.getpwnam("munge")
    run_dir = MUNGE_SOCKET.parent
    run_dir.mkdir(mode=0o755, exist_ok=True)
    os.chown(run_dir, munge.pw_uid, munge.pw_gid)
    if not MUNGE_KEY.exists():
        run(["runuser", "-u", "munge", "--", "mungekey", "--create", f"--keyfile={MUNGE_KEY}"])
    run(["runuser", "-u", "munge", "--", MUNGED])
    wait_for(munge_works, 10, "munged answering on /run/munge")
    marker.write_text((run_dir / "munged.pid").read_text())


def stop_munged(marker: Path) -> None:
    """Ends munged if a SlurmCluster started it (the pid in the marker is still munged)."""
    if not marker.exists():
        return
    pid = int(marker.read_text().split()[0])
    if process_name(pid) == "munged":
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: process_name(pid) != "munged", 10, f"munged {pid} ending")
    marker.unlink()


def process_name(pid: int) -> str | None:
    """The program name of a live process; None when gone or a zombie (its parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
    return None if state in "ZX" else name


def pids_in_netns(netns: Path) -> list[int]:
    """Every process whose network namespace is `netns`: a node's slurmd, slurmstepds and job tasks."""
    try:
        target = netns.stat()
    except OSError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ns = (entry / "ns" / "net").stat()
            except OSError:
                continue
            if (ns.st_ino, ns.st_dev) == (target.st_ino, target.st_dev):
                pids.append(int(entry.name))
    return pids


def kill_all(pids_now: Callable[[], list[int]], what: str) -> None:
    """SIGKILLs until `pids_now()` is empty (a dying slurmstepd may still fork)."""
    def gone() -> bool:
        for pid in pids_now():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return not pids_now()
    wait_for(gone, 15, f"killing {what}")


def cgroup_dirs(name: str) -> list[Path]:
    """A node's cgroup trees (`slurm_<node>` under each v1 controller), deepest first for rmdir."""
    found: list[Path] = []
    for top in CGROUP_ROOT.glob(f"*/{name}"):
        found.extend(p for p in top.rglob("*") if p.is_dir())
        found.append(top)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_cgroups(name: str) -> None:
    """Kills what is left in a node's cgroups, then removes them (cgroupfs needs rmdir, not unlink)."""
    def procs() -> list[int]:
        return [int(pid) for d in cgroup_dirs(name) if (d / "cgroup.procs").exists()
                for pid in (d / "cgroup.procs").read_text().split()]
    kill_all(procs, f"processes in cgroup {name}")

    def removed() -> bool:
        for d in cgroup_dirs(name):
            try:
                d.rmdir()
            except OSError:
                return False
        return True
    wait_for(removed, 10, f"removing cgroup {name}")


@dataclass
class SlurmCluster:
    """Slurmctld plus one slurmd per node; `with SlurmCluster() as cluster:` or start()/stop()."""

    base: Path = Path("/run/hpc-slurm-cluster")
    nodes: tuple[str, ...] = ("node1", "node2")
    cpus_per_node: int = 2
    subnet: str = "10.213.0"  # a /24: .1 is slurmctld on the bridge, .2, .3, ... the nodes
    slurmctld_port: int = 16817  # not Slurm's 6817, so a real slurmctld on the machine does not collide
    cluster_name: str = "hpctest"
    # Node groups for tests of -NodeGroups: the nodes' features (one each, in order) and a second
    # partition of the last node besides `debug`, the default one of all nodes.
    features: tuple[str, ...] = ("big", "fast")
    partition: str = "small"
    _lock: IO[str] | None = field(default=None, init=False, repr=False)
    _daemons: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False, repr=False)

    # -- what a client or engine needs ---------------------------------------------------------

    @property
    def slurm_conf(self) -> Path:
        return self.base / "etc" / "slurm.conf"

    @property
    def epilog_log(self) -> Path:
        """One line per epilog run: `<job id> <SLURMD_NODENAME> <hostname>`."""
        return self.base / "epilog.log"

    @property
    def controller_address(self) -> str:
        return f"{self.subnet}.1"

    def node_address(self, node: str) -> str:
        return f"{self.subnet}.{self.nodes.index(node) + 2}"

    def netns(self, node: str) -> Path:
        return NETNS_DIR / f"hpcs-{node}"

    def env(self) -> dict[str, str]:
        """The environment for Slurm's client commands (sbatch, squeue, scancel, scontrol, sinfo, srun)."""
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf)}

    def run(self, args: Sequence[str], user: str | None = None, check: bool = True, timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Runs a Slurm client command from the root namespace, as root or as `user` (runuser: the
        job is then that user's, as MUNGE says who called)."""
        env = self.env()
        if user is not None:
            entry = pwd.getpwnam(user)
            env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
            args = ["runuser", "-u", user, "--", *args]
        return run(args, check=check, env=env, timeout=timeout, cwd=cwd)

    def node_states(self) -> dict[str, str]:
        """Node name -> sinfo's state (`idle`, `alloc`, `mix`, `down*`, ...)."""
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %t"]).stdout.split()
        return dict(zip(out[::2], out[1::2], strict=True))

    def clear(self, timeout: float = 60) -> None:
        """The cluster as a test found it: no job left (a stopped head node leaves its allocations, a
        failed test its jobs), no node drained. The cluster is shared by the whole test session."""
        jobs = self.run(["squeue", "-h", "-o", "%i"]).stdout.split()
        if jobs:
            self.run(["scancel", *jobs], check=False)
        wait_for(lambda: not self.run(["squeue", "-h", "-o", "%i"]).stdout.strip(), timeout, "no job left")
        for node, state in self.node_states().items():
            if state.startswith(("drain", "drng")):
                self.run(["scontrol", "update", f"nodename={node}", "state=resume"])

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> None:
        """Installs what is missing, clears leftovers, starts munged, slurmctld and the slurmds, and
        returns once every node is idle."""
        if os.geteuid() != 0:
            raise PermissionError("a SlurmCluster needs root: network namespaces, cgroups, daemons")
        self._take_lock()
        try:
            install_packages()
            self._clean()
            self.base.mkdir(mode=0o755, parents=True, exist_ok=True)
            start_munged(self.base.parent / f"{self.base.name}.{MUNGED_MARKER}")
            self._create_network()
            self._write_config()
            self._start_daemons()
            wait_for(self._all_idle, timeout, "every node idle")
        except BaseException:
            self.stop()
            raise

    def stop(self, keep_munged: bool = False) -> None:
        """Kills the daemons and every job process, removes namespaces, bridge, cgroups and files."""
        self._clean()
        if not keep_munged:
            stop_munged(self.base.parent / f"{self.base.name}.{MUNGED_MARKER}")
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _all_idle(self) -> bool:
        for proc in self._daemons:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited (rc={proc.returncode}); see {self.base}/log")
        try:
            states = self.node_states()
        except RuntimeError:  # slurmctld not answering yet
            return False
        return sorted(states) == sorted(self.nodes) and set(states.values()) == {"idle"}

    def _take_lock(self, wait: float = LOCK_WAIT) -> None:
        """One cluster per machine: its names (namespaces, bridge, cgroups) are fixed. Another test run
        holding it is waited for (up to `wait` seconds), so that two runs on one machine take turns."""
        if self._lock is not None:
            return
        lock = open(LOCK_FILE, "a")  # noqa: SIM115 - held open for the cluster's lifetime
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.close()
                    raise RuntimeError(f"another SlurmCluster runs on this machine ({LOCK_FILE} is locked "
                                       f"for more than {wait:.0f} s)") from None
                time.sleep(1)
        self._lock = lock

    # -- cleaning (also after a crash) ---------------------------------------------------------

    def _clean(self) -> None:
        self._stop_slurmctld()
        kill_all(self._node_pids, "the nodes' processes")
        self._daemons.clear()
        for node in self.nodes:
            remove_cgroups(f"slurm_{node}")
            if self.netns(node).exists():
                run(["ip", "netns", "delete", self.netns(node).name])
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            run(["ip", "link", "delete", BRIDGE])
        shutil.rmtree(self.base, ignore_errors=True)

    def _node_pids(self) -> list[int]:
        for proc in self._daemons:
            proc.poll()  # reaps a killed slurmd, our child
        return [pid for node in self.nodes for pid in pids_in_netns(self.netns(node))]

    def _stop_slurmctld(self) -> None:
        """Ends the slurmctld named in the pid file, if it is one started with this cluster's slurm.conf."""
        pid_file = self.base / "slurmctld.pid"
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if str(self.slurm_conf).encode() not in cmdline:
            return
        os.kill(pid, signal.SIGTERM)
        try:
            wait_for(lambda: process_name(pid) != "slurmctld", 10, "slurmctld ending")
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: process_name(pid) != "slurmctld", 10, "slurmctld killed")
        for proc in self._daemons:
            proc.poll()

    # -- starting ------------------------------------------------------------------------------

    def _create_network(self) -> None:
        """The bridge with slurmctld's address in the root namespace; one namespace and veth per node."""
        prefix = f"{self.subnet}."
        if any(prefix in line for line in run(["ip", "-4", "-o", "addr"]).stdout.splitlines()):
            raise RuntimeError(f"{self.subnet}.0/24 is already used on this machine; choose another subnet")
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.controller_address}/24", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        for node in self.nodes:
            ns, veth = self.netns(node).name, f"hpcs-v-{node}"[:15]
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
            run(["ip", "-n", ns, "addr", "add", f"{self.node_address(node)}/24", "dev", "eth0"])
            run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def _write_config(self) -> None:
        slurm = pwd.getpwnam("slurm")
        state = self.base / "state"
        for d in (self.slurm_conf.parent, state, self.base / "log", *(self.base / "spool" / n for n in self.nodes)):
            d.mkdir(mode=0o755, parents=True, exist_ok=True)
        # slurmctld runs as SlurmUser: it writes its state and log.
        for d in (state, self.base / "log"):
            os.chown(d, slurm.pw_uid, slurm.pw_gid)
        self.slurm_conf.write_text(self._slurm_conf_text())
        (self.slurm_conf.parent / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")
        epilog = self.slurm_conf.parent / "epilog"
        # Runs as root on each node after every job that ran; a non-zero exit would drain the node.
        epilog.write_text('#!/bin/sh\necho "$SLURM_JOB_ID $SLURMD_NODENAME $(hostname)" >>'
                          f" {self.epilog_log}\nexit 0\n")
        epilog.chmod(0o755)

    def _slurm_conf_text(self) -> str:
        host = socket.gethostname().split(".")[0]  # slurmctld checks SlurmctldHost against its hostname
        nodes = "\n".join(
            f"NodeName={n} NodeAddr={self.node_address(n)} NodeHostname={n} CPUs={self.cpus_per_node} "
            f"Boards=1 SocketsPerBoard=1 CoresPerSocket={self.cpus_per_node} ThreadsPerCore=1 "
            f"RealMemory=4000 State=UNKNOWN{self._feature(i)}" for i, n in enumerate(self.nodes))
        return f"""\
ClusterName={self.cluster_name}
SlurmctldHost={host}({self.controller_address})
SlurmctldPort={self.slurmctld_port}
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation={self.base}/state
SlurmctldPidFile={self.base}/slurmctld.pid
SlurmctldLogFile={self.base}/log/slurmctld.log
SlurmdSpoolDir={self.base}/spool/%n
SlurmdPidFile={self.base}/slurmd-%n.pid
SlurmdLogFile={self.base}/log/slurmd-%n.log
# proctrack/cgroup: a cancel also kills what left the process tree (setsid, double fork)
ProctrackType=proctrack/cgroup
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without DefMemPerCPU each job takes the whole node's memory, so only one runs at a time.
DefMemPerCPU=100
# batch_sched_delay=0: submit -> RUNNING in ~0.3 s instead of ~2.3 s. sched_interval=10: a job pending on a
# node that was drained, then resumed while Slurm still marked it not responding, waited for the next full
# scheduling pass, 60 s by default (seen twice in CI: the job on the resumed node did not start within 20 s)
SchedulerParameters=batch_sched_delay=0,sched_interval=10
# The benchmarks keep 5,000 held jobs and more (an ended job counts until MinJobAge, 300 s); Slurm's default is 10,000
MaxJobCount=50000
# CPUs may exceed the machine's real cores (CI machines differ)
SlurmdParameters=config_overrides
KillWait=5
ReturnToService=2
InactiveLimit=0
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
Epilog={self.slurm_conf.parent}/epilog
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName={self.partition} Nodes={self.nodes[-1]} MaxTime=INFINITE State=UP
"""

    def _feature(self, index: int) -> str:
        return f" Feature={self.features[index]}" if index < len(self.features) else ""

    def _start_daemons(self) -> None:
        """slurmctld in the root namespace; each slurmd in its node's network namespace with the
        node's name as hostname (nsenter, not `ip netns exec`, which remounts /sys and hides cgroups)."""
        self._spawn([SLURMCTLD, "-D", "-f", str(self.slurm_conf)], "slurmctld")
        pid_file = self.base / "slurmctld.pid"
        pid_file.write_text(str(self._daemons[-1].pid))  # slurmctld rewrites it; written now for a crash
        for node in self.nodes:
            self._spawn(["nsenter", f"--net={self.netns(node)}", "unshare", "--uts", "--",
                         "sh", "-c", 'hostname "$1" && exec "$2" -D -f "$3" -N "$1"', "sh",
                         node, SLURMD, str(self.slurm_conf)], f"slurmd-{node}")

    def _spawn(self, args: list[str], name: str) -> None:
        """Starts a daemon in the foreground (-D) as our child, its output in log/<name>.out."""
        with open(self.base / "log" / f"{name}.out", "ab") as out:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True, env=self.env())
        self._daemons.append(proc)


def ensure_user(name: str) -> pwd.struct_passwd:
    """A real Unix user for jobs that must not run as root (created once, kept like conftest's users)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/sh", name])
        return pwd.getpwnam(name)


def slurm_cluster_fixture(scope: Scope = "session", **options: object) -> Callable[[], Iterator[SlurmCluster]]:
    """A pytest fixture giving a started SlurmCluster (options as SlurmCluster's fields), stopped after
    its scope; skipped with the reason when not root. Use: `slurm = slurm_cluster_fixture()` in a test module."""
    @pytest.fixture(scope=scope)
    def fixture() -> Iterator[SlurmCluster]:
        if os.geteuid() != 0:
            pytest.skip("needs root: starts a real Slurm cluster (network namespaces, cgroups, daemons)")
        with SlurmCluster(**options) as cluster:  # type: ignore[arg-type]
            yield cluster
    return fixture
