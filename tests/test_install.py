"""The machine-wide install (make install as root) serves a fresh non-root user end to end, on real pwsh with the
distribution's Python; make purge leaves nothing behind. Also: one version everywhere, and the module naming
precisely what is wrong with the Python it was given."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from hpcpack.backends.client import Client

from .conftest import ROOT, SYSTEM_PYTHON, needs_root, run_pwsh, wait_until
from .jobs import job, task_states, wait_state
from .test_lifecycle import spec_example

STATE = Path("/var/lib/hpcpack")
PREFIX = Path("/opt/hpcpack")
MODULE_DIR = Path("/usr/local/share/powershell/Modules/HPC")


def make(*targets: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *targets], capture_output=True,
                            text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"make {' '.join(targets)}:\n{result.stdout}\n{result.stderr}"
    return result


@dataclass
class Machine:
    user: str
    installed: list[Path]
    head: subprocess.Popen[bytes]

    def as_user(self, *command: str, cwd: str = "/tmp") -> subprocess.CompletedProcess[str]:
        """A login-like environment: nothing of root's, the system PATH only."""
        env = ["HOME=" + os.path.expanduser(f"~{self.user}"), "PATH=/usr/local/bin:/usr/bin:/bin",
               "POWERSHELL_TELEMETRY_OPTOUT=1", "LANG=C.UTF-8", "TERM=dumb"]
        return subprocess.run(["runuser", "-u", self.user, "--", "env", "-i", *env, *command], capture_output=True,
                              text=True, timeout=300, cwd=cwd, stdin=subprocess.DEVNULL)

    def pwsh(self, script: str) -> str:
        result = self.as_user("pwsh", "-NoProfile", "-Command", script)
        assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
        return result.stdout


def machine_client() -> Client:
    """Root's client of the machine's head node: an administrator there."""
    return Client(f"unix:{STATE / 'headnode.sock'}")


@pytest.fixture
def shared_tmp(state_dir: Path) -> Path:
    """A folder the fresh user's tasks can write to (pytest's own are closed to other users)."""
    state_dir.chmod(0o777)
    return state_dir


@pytest.fixture(scope="module")
def machine() -> Iterator[Machine]:
    if os.geteuid() != 0:
        pytest.skip("needs root: installs for the whole machine and creates a Unix user (run 'sudo make test')")
    assert not STATE.exists() and not PREFIX.exists(), \
        f"{STATE} or {PREFIX} exists: this test needs a machine without the product installed ('make purge')"
    user = "hpcfresh" + uuid.uuid4().hex[:6]
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user], check=True)
    head = None
    try:
        make("install")
        installed = [Path(p) for p in (PREFIX / "installed-files").read_text().split()]
        # The administrator's configuration: the examples' three running jobs need more cores than CI has.
        with open(STATE / "headnode.yaml", "a") as config:
            config.write("nodes:\n  - {name: NODE1, cores: 4}\n  - {name: NODE2, cores: 4}\n")
        head = subprocess.Popen(["/usr/local/bin/hpc-headnode"], stdin=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: (STATE / "headnode.sock").exists(), 15)
        yield Machine(user, installed, head)
    finally:
        if head is not None and head.poll() is None:
            client = machine_client()
            unfinished = [j["Id"] for j in client.call("get_jobs", state="All") if j["State"] in
                          ("Queued", "Running", "Canceling", "Configuring", "Submitted", "Validating")]
            if unfinished:
                client.call("cancel_jobs", ids=unfinished, force=True)
            client.close()
        make("purge")
        if head is not None and head.poll() is None:
            head.send_signal(signal.SIGKILL)
        subprocess.run(["pkill", "-KILL", "-u", user], check=False)
        subprocess.run(["userdel", "--remove", user], check=False, capture_output=True)


@needs_root
def test_a_fresh_user_runs_the_specs_four_examples_on_the_machines_head_node(machine: Machine,
                                                                             shared_tmp: Path) -> None:
    gate, ready = shared_tmp / "gate", shared_tmp / "ready"
    # The jobs the examples stop, made by the user (the examples stop jobs 27, 39 and 45).
    setup = f"""
function UpTo([int] $n) {{ do {{ $id = (New-HpcJob -Name filler).Id }} while ($id -lt $n - 1) }}
UpTo 27
$j = New-HpcJob -Name 27 -NumCores 1
$null = $j | Add-HpcTask -CommandLine "touch {ready}; while [ ! -e {gate} ]; do sleep 0.05; done; echo done"
$null = $j | Add-HpcTask -CommandLine 'echo never'
UpTo 39
$j = New-HpcJob -Name 39
$null = $j | Add-HpcTask -Type NodeRelease -CommandLine 'echo released >> {shared_tmp}/release39'
$null = $j | Add-HpcTask -CommandLine "trap '' TERM; sleep 300"
UpTo 45
$j = New-HpcJob -Name 45
$null = $j | Add-HpcTask -CommandLine 'sleep 300'
Submit-HpcJob -Id 27 | Out-Null; Submit-HpcJob -Id 39 | Out-Null; Submit-HpcJob -Id 45 | Out-Null
(Get-HpcJob -Id 45).Owner
"""
    assert machine.pwsh(setup).split()[-1] == machine.user
    client = machine_client()
    wait_until(lambda: ready.exists() and all(job(client, i)["State"] == "Running" for i in (39, 45))
               and "Running" in task_states(client, 39).values(), 30)

    machine.pwsh(spec_example(1))
    assert job(client, 45)["State"] == "Canceled"
    assert job(client, 45)["ErrorMessage"] == "Clearing space for Job 51, which needs to run immediately."
    machine.pwsh(spec_example(2))
    assert job(client, 39)["State"] == "Canceled" and not (shared_tmp / "release39").exists()
    machine.pwsh(spec_example(3))
    created = max(j["Id"] for j in client.call("get_jobs", state="All"))
    assert job(client, created)["Owner"] == machine.user
    assert wait_state(client, created, "Finished")
    machine.pwsh(spec_example(4))
    assert job(client, 27)["State"] == "Canceling"
    gate.touch()
    assert wait_state(client, 27, "Finished")
    client.close()


@needs_root
def test_a_fresh_user_runs_the_job_command_and_sees_which_head_node(machine: Machine) -> None:
    made = machine.as_user("job", "new", "/jobname:from-cli", "/numcores:1")
    assert made.returncode == 0, made.stderr
    job_id = int(made.stdout.split("ID:")[1])
    assert machine.as_user("job", "add", str(job_id), "id", "-un").returncode == 0
    assert "submitted" in machine.as_user("job", "submit", f"/id:{job_id}").stdout
    client = machine_client()
    wait_state(client, job_id, "Finished")
    client.close()
    view = machine.as_user("job", "view", str(job_id)).stdout
    assert re.search(rf"Owner\s+: {machine.user}\b", view)
    assert re.search(rf"HeadNode\s+: unix:{STATE}/headnode.sock", view)
    task = machine.as_user("task", "view", f"{job_id}.1")  # HPC Pack's `task` command is on the PATH too
    assert task.returncode == 0 and re.search(r"State\s+: Finished", task.stdout), task.stderr
    shown = machine.pwsh("(Get-HpcClusterProperty -Name HeadNode).Value").strip()
    assert shown == f"unix:{STATE}/headnode.sock"


@needs_root
def test_the_install_uses_the_distributions_python_for_everyone(machine: Machine) -> None:
    pointer = dict(line.split("=", 1) for line in (MODULE_DIR / "bin" / "python-env.txt").read_text().split())
    debian = subprocess.run(["/usr/bin/python3", str(ROOT / "src/hpcpack/pythonenv.py"), "check", "--public"],
                            capture_output=True, text=True)
    if debian.returncode == 0:  # a distribution python3 that qualifies is preferred for a machine-wide install
        assert pointer["libpython"] == debian.stdout.strip()
    assert pointer["venv"] == str(PREFIX / "venv")
    version = machine.as_user("hpc-headnode", "--version").stdout.strip()
    assert version == metadata.version("hpcpack")
    assert machine.pwsh("(Get-Module -ListAvailable HPC).Version.ToString()").strip() == version


def test_one_version_everywhere() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert metadata.version("hpcpack") == version
    manifest = (ROOT / "module" / "HPC.psd1").read_text()
    assert re.search(r"ModuleVersion\s*=\s*'([^']+)'", manifest).group(1) == version  # type: ignore[union-attr]
    cli = subprocess.run([sys.executable, "-m", "hpcpack.head.daemon", "--version"], capture_output=True, text=True)
    assert cli.stdout.strip() == version


@pytest.mark.parametrize("case", ["missing", "static", "version"])
def test_the_module_names_what_is_wrong_with_its_python(case: str, tmp_path: Path) -> None:
    module = tmp_path / "HPC"
    shutil.copytree(ROOT / "module", module)
    pointer = dict(line.split("=", 1) for line in (module / "bin" / "python-env.txt").read_text().split())
    real = Path(pointer["libpython"])
    lib, expected = {
        "missing": (tmp_path / "libpython3.11.so", "does not exist"),
        "static": (tmp_path / "libpython3.11.a", "is not a shared libpython"),
        "version": (tmp_path / "libpython3.9.so", "is Python 3.9; the module needs Python 3.11 to 3.15"),
    }[case]
    if case == "static":
        lib.write_bytes(b"!<arch>\n" + b"\0" * 64)
    elif case == "version":
        shutil.copy(real, lib)
    (module / "bin" / "python-env.txt").write_text(f"venv={pointer['venv']}\nlibpython={lib}\nversion=3.11\n")
    result = run_pwsh(f"Import-Module '{module}/HPC.psd1'; Get-HpcJob", import_module=False,
                      env={**os.environ, "HPCPACK_HOME": str(tmp_path / "state")})
    assert result.returncode != 0
    assert "The HPC module cannot start Python" in result.stderr and str(lib) in result.stderr, result.stderr
    assert expected in result.stderr


def test_the_users_python_variables_neither_end_pwsh_nor_reach_the_modules_python(tmp_path: Path) -> None:
    """PYTHONHOME naming no Python ended CPython's start with a fatal error, and pwsh with it, at Import-Module
    (the start begins there): the module's Python, and the embedded head node it starts, ignore PYTHON*
    variables, as 'python -E' does."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.write(2, b'user sitecustomize ran\\n')\n")
    state = tmp_path / "state"
    env = {**os.environ, "HPCPACK_HOME": str(state), "PYTHONHOME": str(tmp_path / "nowhere"),
           "PYTHONPATH": str(site), "PYTHONMALLOC": "no-such-allocator"}
    env.pop("CCP_SCHEDULER", None)
    try:
        imported = run_pwsh("'imported'; (Get-Command Get-HpcJob).Name", env=env)
        assert (imported.returncode, imported.stdout, imported.stderr) == (0, "imported\nGet-HpcJob\n", "")
        used = run_pwsh("$job = New-HpcJob -Name variables; (Get-HpcJob -Id $job.Id).Name", env=env)
        assert (used.returncode, used.stdout, used.stderr) == (0, "variables\n", "")
    finally:
        subprocess.run([sys.executable, "-m", "hpcpack.head.daemon", "--state-dir", str(state), "--stop"],
                       capture_output=True, timeout=60)


def test_a_failed_load_of_libpython_is_named_again_by_the_next_cmdlet(tmp_path: Path) -> None:
    """pythonnet loads one libpython a process: once that failed, the next cmdlet repeats the first error (with
    the file at fault), even after the environment file is mended, not a confusing one about the mended file."""
    module = tmp_path / "HPC"
    shutil.copytree(ROOT / "module", module)
    pointer_file = module / "bin" / "python-env.txt"
    good = pointer_file.read_text()
    pointer = dict(line.split("=", 1) for line in good.split())
    fake = tmp_path / "libpython3.11.so.1.0"
    shutil.copy(next(Path("/usr/lib/x86_64-linux-gnu").glob("libz.so.1*")), fake)  # an ELF library, not Python
    pointer_file.write_text(f"venv={pointer['venv']}\nlibpython={fake}\n")
    script = (f"Import-Module '{module}/HPC.psd1'\n"
              "try { Get-HpcJob -ErrorAction Stop } catch { 'first: ' + $_.Exception.Message }\n"
              f"Set-Content -LiteralPath '{pointer_file}' -Value @'\n{good}'@\n"
              "try { Get-HpcJob -ErrorAction Stop } catch { 'second: ' + $_.Exception.Message }\n")
    result = run_pwsh(script, import_module=False, env={**os.environ, "HPCPACK_HOME": str(tmp_path / "state")})
    first, second = (line for line in result.stdout.splitlines() if line.startswith(("first: ", "second: ")))
    assert f"loading {fake} failed" in first and "Start a new pwsh" in first, result.stdout + result.stderr
    assert second.removeprefix("second: ") == first.removeprefix("first: "), result.stdout


@needs_root
def test_a_python_other_users_cannot_read_is_named_as_such(machine: Machine, shared_tmp: Path) -> None:
    """What a user met when the module's Python lay under root's 0700 home: now named, with the file."""
    module = shared_tmp / "HPC"
    shutil.copytree(MODULE_DIR, module)
    private = shared_tmp / "private"
    private.mkdir(mode=0o700)
    pointer = dict(line.split("=", 1) for line in (module / "bin" / "python-env.txt").read_text().split())
    lib = private / Path(pointer["libpython"]).name
    shutil.copy(pointer["libpython"], lib)
    (module / "bin" / "python-env.txt").write_text(f"venv={pointer['venv']}\nlibpython={lib}\n")
    result = machine.as_user("pwsh", "-NoProfile", "-Command", f"Import-Module '{module}/HPC.psd1'; Get-HpcJob")
    assert result.returncode != 0
    assert f"the Python library {lib} cannot be read by user {machine.user}" in result.stderr, result.stderr


@needs_root
def test_a_user_builds_and_installs_for_themselves_then_uninstalls(machine: Machine) -> None:
    """make install as a normal user: their CurrentUser module path and ~/.local/bin, nothing of the machine's."""
    home = Path(os.path.expanduser(f"~{machine.user}"))
    checkout = home / "hpc"
    shutil.copytree(ROOT, checkout, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "bin", "obj", "*.egg-info", "__pycache__", ".*_cache"))
    shutil.copytree(ROOT / "bin", checkout / "bin")  # the ignore above is for dotnet's bin folders
    subprocess.run(["chown", "-R", f"{machine.user}:", str(checkout)], check=True)
    # The wheel source the Makefile uses: ../shared/wheels beside the checkout, else the caller's pip settings.
    shared_wheels = ROOT.parent / "shared" / "wheels"
    wheels = {k: os.environ[k] for k in ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_INDEX_URL") if k in os.environ}
    if shared_wheels.is_dir():
        wheels.update({"PIP_FIND_LINKS": str(shared_wheels), "PIP_NO_INDEX": "1"})
    built = machine.as_user("env", *(f"{k}={v}" for k, v in wheels.items()), "make", "install", cwd=str(checkout))
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    mine = home / ".local/share/powershell/Modules/HPC"
    out = machine.pwsh("Import-Module HPC; (Get-Module HPC).ModuleBase; (Get-HpcClusterProperty -Name HeadNode).Value")
    assert out.split() == [str(mine), f"unix:{STATE}/headnode.sock"]  # theirs first; the machine's head node
    pointer = (mine / "bin" / "python-env.txt").read_text()
    assert f"venv={home}/.local/share/hpcpack/venv" in pointer
    assert (home / ".local/bin/job").resolve() == home / ".local/share/hpcpack/venv/bin/job"
    # A head node of their own, run from the environment the uninstall removes: it is stopped first (its
    # next task would fail to start, its files gone), and the next command starts one again.
    own = home / ".local/state/hpcpack"
    started = machine.as_user("sh", "-c", f"setsid {home}/.local/bin/hpc-headnode --state-dir {own} "
                                          "</dev/null >/dev/null 2>&1 &")
    assert started.returncode == 0, started.stderr
    wait_until(lambda: (own / "headnode.sock").exists(), 15)
    assert own_head_nodes(machine.user)
    removed = machine.as_user("make", "uninstall", cwd=str(checkout))
    assert removed.returncode == 0, removed.stderr
    assert not own_head_nodes(machine.user), removed.stderr
    shutil.rmtree(own)  # what this test made (the machine fixture's user is shared by the tests after it)
    assert not mine.exists() and not (home / ".local/bin/job").exists() and not (home / ".local/share/hpcpack").exists()
    assert MODULE_DIR.exists()  # the machine's install is untouched


def own_head_nodes(user: str) -> list[str]:
    """The pids of the head nodes `user` runs."""
    found = subprocess.run(["pgrep", "-u", user, "-f", "hpc-headnode --state-dir"], capture_output=True, text=True)
    return found.stdout.split()


@needs_root
def test_while_the_machines_head_node_is_down_users_are_told_and_cannot_start_their_own(machine: Machine) -> None:
    subprocess.run(["/usr/local/bin/hpc-headnode", "--stop"], check=True, capture_output=True)
    assert machine.head.wait(15) == 0
    refused = machine.as_user("job", "list")
    assert refused.returncode != 0
    assert "the machine's head node is not running" in refused.stderr, refused.stderr
    assert not (Path(os.path.expanduser(f"~{machine.user}")) / ".local/state/hpcpack").exists()


@needs_root
def test_purge_leaves_nothing_behind(machine: Machine) -> None:
    assert all(p.exists() or p.is_symlink() for p in machine.installed)
    make("purge")
    left = [p for p in [*machine.installed, PREFIX, STATE, MODULE_DIR] if p.exists() or p.is_symlink()]
    assert left == []


def test_make_with_another_python_makes_a_new_venv_and_a_plain_make_keeps_the_venv(tmp_path: Path) -> None:
    """The module's own error tells a user whose Python others cannot read to run 'make PYTHON=...': on a
    tree built with another Python that did nothing (the venv only depended on pyproject.toml)."""
    tree = tmp_path / "tree"
    for name in ("Makefile", "pyproject.toml", "src/hpcpack/pythonenv.py"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tree / name)
    venv = tree / ".venv"
    venv.mkdir()
    (venv / ".python").write_text("/elsewhere/bin/python3 3.11.0\n")
    (venv / ".installed").touch()
    (venv / "made-before").touch()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["make", "--no-print-directory", "-C", str(tree), *args], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    assert "-m venv" not in run("-n", ".venv/.installed").stdout  # plain make: the venv stays
    wanted = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.executable, sys.version.split()[0])"],
                            capture_output=True, text=True, check=True).stdout
    assert f"make: a new .venv for {wanted.strip()}" in run(f"PYTHON={SYSTEM_PYTHON}", ".venv/.python").stdout
    assert not (venv / "made-before").exists() and (venv / ".python").read_text() == wanted
    assert f"{SYSTEM_PYTHON} -m venv .venv" in run(f"PYTHON={SYSTEM_PYTHON}", "-n", ".venv/.installed").stdout
    assert "a new" not in run(f"PYTHON={SYSTEM_PYTHON}", ".venv/.python").stdout  # the same Python: kept


def test_set_up_names_a_missing_or_unusable_python_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "PYTHON=/nonexistent/python3",
                              "prerequisites"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert missing.returncode != 0 and "no /nonexistent/python3 on the PATH" in missing.stderr
    assert "make PYTHON=/path/to/python3" in missing.stderr

    from hpcpack import pythonenv
    real = pythonenv.sysconfig.get_config_var
    monkeypatch.setattr(pythonenv.sysconfig, "get_config_var",
                        lambda name: {"Py_ENABLE_SHARED": 0, "LDLIBRARY": "libpython3.11.a"}.get(name, real(name)))
    with pytest.raises(pythonenv.Unusable, match="built without a shared libpython .*--enable-shared"):
        pythonenv.libpython()
    monkeypatch.setattr(pythonenv.sysconfig, "get_config_var",
                        lambda name: {"LIBDIR": "/nonexistent", "LIBPL": "/nonexistent/config"}.get(name, real(name)))
    with pytest.raises(pythonenv.Unusable, match="it is in none of /nonexistent"):
        pythonenv.libpython()
    monkeypatch.setattr(pythonenv.sys, "version_info", (3, 10, 0))
    with pytest.raises(pythonenv.Unusable, match="is Python 3.10; the HPC module needs Python 3.11 to 3.15"):
        pythonenv.libpython()
