"""HPC Pack's job scheduler for Linux: an embedded head node and the backend of the HPC module."""

import os
import sys


def _version() -> str:
    """The project's one version: pyproject.toml's, as installed (or read from the source tree when not).
    Read from the installed `hpcpack-<version>.dist-info` folder's name: importlib.metadata would cost
    every `job` command tens of milliseconds."""
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("hpcpack-") and name.endswith(".dist-info"):
                return name.removeprefix("hpcpack-").removesuffix(".dist-info")
    import tomllib

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "pyproject.toml"), "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


__version__ = _version()
