"""The wire's operations are declared once (operations.OPERATIONS): each has exactly one handler, each
handler an operation, and a client may resend exactly the operations that change nothing."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

from hpcpack.backends import headnode
from hpcpack.backends.client import Client
from hpcpack.backends.contract import Backend
from hpcpack.backends.headnode import HeadNodeBackend
from hpcpack.head.requests import Requests
from hpcpack.wire import operations, protocol


def test_every_operation_has_a_handler_and_every_handler_an_operation() -> None:
    handlers = {name.removeprefix("op_") for name, _ in inspect.getmembers(Requests, inspect.isfunction)
                if name.startswith("op_")}
    assert handlers == set(operations.OPERATIONS)


def test_each_handler_takes_its_operations_declared_arguments() -> None:
    for name, model in operations.OPERATIONS.items():
        hint = inspect.signature(getattr(Requests, "op_" + name)).parameters["params"].annotation
        declared = hint.rsplit(".", 1)[-1] if isinstance(hint, str) else hint.__name__
        assert declared in (model.__name__, "Request"), (name, declared, model.__name__)


def test_read_only_operations_are_operations() -> None:
    assert set(operations.OPERATIONS) >= protocol.READ_ONLY
    assert not protocol.READ_ONLY & {"new_job", "add_task", "cancel_jobs", "submit_jobs", "requeue_jobs"}


def test_the_head_node_backend_keeps_the_whole_contract_and_reaches_every_operation() -> None:
    """Every verb of backends.contract.Backend is implemented with its declared signature, and each wire
    operation is what some verb sends (apart from the connection's own: hello, and shutdown)."""
    verbs = {name for name, _ in inspect.getmembers(Backend) if not name.startswith("_")}
    for verb in verbs:
        ours, declared = getattr(HeadNodeBackend, verb), getattr(Backend, verb)
        if not isinstance(declared, property):
            assert inspect.signature(ours) == inspect.signature(declared), verb
    # (A listing's pages are sent by the client's job_page, which query_job_pages calls.)
    assert "self.client.job_page(" in inspect.getsource(HeadNodeBackend.query_job_pages)
    source = inspect.getsource(headnode) + inspect.getsource(Client.job_page)
    sent = set(re.findall(r'(?:\.call|\._per_job|\._send)\("(\w+)"', source))
    assert sent == set(operations.OPERATIONS) - {"hello", "shutdown"}


def test_the_client_paths_leave_the_wire_schemas_to_the_head_node() -> None:
    """job-py and the module's first cmdlet import no pydantic (about 200 ms of a command's start): the
    schemas are the head node's; clients share only wire/protocol.py's constants."""
    code = ("import sys, hpcpack.cli, hpcpack.shim, hpcpack.cmdlets.jobs, hpcpack.cmdlets.tasks\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_core')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
