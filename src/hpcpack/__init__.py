"""HPC Pack's job scheduler for Linux: an embedded head node and the backend of the HPC module."""

from importlib import metadata


def _version() -> str:
    """The project's one version: pyproject.toml's, as installed (or read from the source tree when not)."""
    try:
        return metadata.version("hpcpack")
    except metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

        with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])


__version__ = _version()
