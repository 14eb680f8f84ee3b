"""The contract suite's backends: every backend the cmdlets can speak to passes the same tests
(tests/contract/test_contract.py), as huey's storage tests run on every storage. A backend is added
here by name, with a factory that starts it for one test and stops it afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from hpcpack.backends.client import Client
from hpcpack.backends.contract import Backend
from hpcpack.backends.headnode import HeadNodeBackend

from ..conftest import running_head_node, slurm_engine_config, start_head_node

GRACE = 1  # TaskCancelGracePeriod in seconds on every backend under test


@contextmanager
def embedded(state_dir: Path) -> Iterator[Backend]:
    """The embedded head node, run by root, over its Unix socket."""
    with contextmanager(running_head_node)(state_dir) as node:
        backend = HeadNodeBackend(Client(f"unix:{node.socket}"))
        backend.set_properties({"TaskCancelGracePeriod": GRACE})
        try:
            yield backend
        finally:
            backend.close()


@contextmanager
def on_slurm(state_dir: Path, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A head node run by root with `engine: slurm` on the tests' real two-node Slurm cluster."""
    cluster = request.getfixturevalue("slurm")  # started once per session, only when this backend runs
    node = start_head_node(state_dir, slurm_engine_config(cluster))
    backend = HeadNodeBackend(Client(f"unix:{node.socket}"))
    try:
        backend.set_properties({"TaskCancelGracePeriod": GRACE})
        yield backend
    finally:
        backend.close()
        node.stop()


BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], AbstractContextManager[Backend]]] = {
    "embedded": lambda state_dir, _: embedded(state_dir), "slurm": on_slurm}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, state_dir: Path, users: object) -> Iterator[Backend]:
    with BACKENDS[request.param](state_dir, request) as started:
        yield started
