"""Which libpython the HPC module embeds, found the way Python itself reports it (sysconfig).

Run as a script by any Python (it needs only the standard library), before the package is installed:

    python3 src/hpcpack/pythonenv.py check             # can this Python be embedded? (exit 1 and why if not)
    python3 src/hpcpack/pythonenv.py check --public    # ... and can every user of the machine read it?
    <venv>/bin/python -m hpcpack.pythonenv pointer     # the module's bin/python-env.txt for this environment

The pointer file holds `key=value` lines (venv, libpython, version) that the module's C# side reads
(dotnet/Shim/PythonBridge.cs); it checks them again at load time and names the file it cannot use.
"""

from __future__ import annotations

import os
import stat
import sys
import sysconfig
from pathlib import Path

# pythonnet 3.2.1 embeds CPython 3.11 to 3.15.
SUPPORTED = ((3, 11), (3, 15))


class Unusable(Exception):
    """This Python cannot be embedded; the message says why and what to do."""


def libpython() -> Path:
    """The shared libpython of the running interpreter (of the base install when run from a venv)."""
    version = sys.version_info[:2]
    if not SUPPORTED[0] <= version <= SUPPORTED[1]:
        raise Unusable(f"{sys.executable} is Python {version[0]}.{version[1]}; the HPC module needs Python "
                       f"{SUPPORTED[0][0]}.{SUPPORTED[0][1]} to {SUPPORTED[1][0]}.{SUPPORTED[1][1]}.")
    name = str(sysconfig.get_config_var("LDLIBRARY") or "")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not name.endswith(".so"):
        raise Unusable(f"{sys.executable} was built without a shared libpython (LDLIBRARY={name or 'unset'}); the "
                       "HPC module embeds Python and needs one built with --enable-shared (Debian/Ubuntu: "
                       "apt-get install python3 python3-venv; pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared "
                       "pyenv install 3.11). Choose it with 'make PYTHON=/path/to/python3'.")
    folders = [sysconfig.get_config_var(key) for key in ("LIBDIR", "LIBPL")]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if folders[0] and multiarch:
        folders.append(os.path.join(folders[0], multiarch))
    candidates = [Path(str(folder), name) for folder in folders if folder]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    raise Unusable(f"{sys.executable} reports its shared library as {name}, but it is in none of "
                   f"{', '.join(str(c.parent) for c in candidates)} (Debian/Ubuntu: apt-get install libpython3-dev "
                   f"or libpython{version[0]}.{version[1]}).")


def unreadable_by_others(path: Path) -> Path | None:
    """The first folder on the way to `path` that other users cannot enter, or `path` if they cannot read it."""
    for folder in reversed(path.parents):
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None if os.stat(path).st_mode & stat.S_IROTH else path


def check(public: bool) -> Path:
    lib = libpython()
    if public:
        for needed in (lib, Path(sys.executable).resolve(), Path(sysconfig.get_paths()["stdlib"]) / "os.py"):
            blocked = unreadable_by_others(needed)
            if blocked is not None:
                raise Unusable(f"{needed} is not readable by other users ({blocked} is closed to them), so a "
                               f"machine-wide install cannot use {sys.executable}. Give 'make install' a Python "
                               "every user can read, e.g. 'make install INSTALL_PYTHON=/usr/bin/python3'.")
    return lib


def pointer() -> str:
    """The lines of bin/python-env.txt for the environment this interpreter runs in."""
    return (f"venv={Path(sys.prefix).resolve()}\nlibpython={libpython()}\n"
            f"version={sys.version_info[0]}.{sys.version_info[1]}\n")


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["check"] and set(argv[1:]) <= {"--public"}:
            print(check("--public" in argv))
        elif argv == ["pointer"]:
            sys.stdout.write(pointer())
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Unusable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
