"""A listing asks for some properties of each job (JobQuery.fields, `job list`'s columns); the head node then
builds only those, and they must be exactly what the whole record says, whatever state the job is in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import pytest

from hpcpack.backends.client import Client
from hpcpack.backends.contract import JobPage, JobQuery, TaskQuery
from hpcpack.backends.headnode import HeadNodeBackend
from hpcpack.cli.show import LIST_FIELDS
from hpcpack.config import Node
from hpcpack.errors import HpcError
from hpcpack.head.headnode import HeadNode
from hpcpack.identity import Caller
from hpcpack.model.objects import _COUNTERS, _LISTED, Job
from hpcpack.model.params import MAX_JOB_PROPERTY_BYTES
from hpcpack.model.states import JobState
from hpcpack.wire import protocol

from .conftest import HeadNodeProcess, in_process_head_node, run_pwsh, start_head_node, wait_until

ROOT = Caller(uid=0, gid=0, name="root", admin=True)
ASKED = (*LIST_FIELDS, *sorted(_LISTED), *sorted(_COUNTERS))


def _cut(node: HeadNode, job_id: int) -> tuple[dict[str, object], dict[str, object]]:
    return _cut_job(node.job(job_id), node.name)


def _cut_job(job: Job, name: str) -> tuple[dict[str, object], dict[str, object]]:
    whole = job.to_record(name)
    return job.to_record(name, fields=ASKED), {"__type__": "HpcJob", **{k: whole[k] for k in ASKED}}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[HeadNode]:
    yield from in_process_head_node(tmp_path, [Node("N1", 2)])


def test_a_listing_is_the_whole_record_cut_to_its_fields_in_every_state(node: HeadNode) -> None:
    ids = {"configuring": node.new_job(ROOT, {"Name": "c"}, [{"CommandLine": "true"}]).id}
    for name, tasks in (("finished", [{"CommandLine": "true"}]), ("failed", [{"CommandLine": "false"}]),
                        ("sweep", [{"CommandLine": "true", "Parametric": True, "Start": 1, "End": 3}]),
                        ("running", [{"CommandLine": "sleep 30"}]),
                        ("queued", [{"CommandLine": "sleep 30"}])):
        held = {"HoldUntil": "2099-01-01T00:00:00+00:00"} if name == "queued" else {}
        ids[name] = node.new_job(ROOT, {"Name": name, **held}, tasks).id
        node.submit_job(ROOT, ids[name])
    wait_until(lambda: (node.step(), node.job(ids["sweep"]).state == JobState.Finished
                        and node.job(ids["running"]).state == JobState.Running)[1], 20)
    states = {node.job(i).state.name for i in ids.values()}
    assert {"Configuring", "Queued", "Running", "Finished", "Failed"} <= states
    for job_id in ids.values():
        listed, whole = _cut(node, job_id)
        assert listed == whole
    # An ended job read back from the store comes without its tasks: its counters are its row's.
    for job_id in (ids["finished"], ids["failed"], ids["sweep"]):
        stored = Job.from_row(node.job(job_id).to_row())
        assert not stored.tasks
        listed, whole = _cut_job(stored, node.name)
        assert whole["TaskCount"] >= 1
        assert listed == whole


@pytest.fixture
def backend(head: HeadNodeProcess) -> Iterator[HeadNodeBackend]:
    backend = HeadNodeBackend(head.client())
    yield backend
    backend.close()


def test_a_query_for_some_fields_gets_exactly_those_and_an_unknown_name_is_refused(backend: HeadNodeBackend) -> None:
    job = backend.new_job({"Name": "listed", "JobEnv": ["A=1"]})
    found = list(backend.query_jobs(JobQuery(state="All", fields=("Id", "Name", "EnvironmentVariables"))))
    assert [{k: v for k, v in j.items() if k != "Scheduler"} for j in found] == [  # (the client adds Scheduler)
        {"__type__": "HpcJob", "Id": job["Id"], "Name": "listed", "EnvironmentVariables": {"A": "1"}}]
    with pytest.raises(HpcError) as refused:
        list(backend.query_jobs(JobQuery(state="All", fields=("Id", "Bogus"))))
    assert refused.value.error_id == "InvalidArgument"
    assert "Bogus" in refused.value.message
    # refused before any job is read: the same when nothing matches, and __type__ is no property
    for query in (JobQuery(state="All", name="no such job", fields=("Bogus",)),
                  JobQuery(state="Failed", owner="nobody", fields=("__type__",))):
        with pytest.raises(HpcError) as refused:
            list(backend.query_jobs(query))
        assert refused.value.error_id == "InvalidArgument", query


def test_a_close_while_the_next_chunk_is_being_made_lets_go_of_the_rest_once_it_is_made() -> None:
    """The module asks for a listing's next chunk ahead and does not wait for it when its pipeline stops
    (a head node that stopped answering would hold it for ever): a "Close" that comes while that "More"
    runs is kept, and the rest is not put back when the chunk is made. Without, each such stop would keep
    the rest of its listing (and the pages fetched for it) for as long as pwsh runs."""
    import threading

    from hpcpack.cmdlets import registry
    making = threading.Event()
    release = threading.Event()

    def answer() -> Iterator[dict[str, object]]:  # the rest of a listing, after its first chunk
        yield from ({"Id": i} for i in range(500))
        making.set()
        release.wait(10)  # the head node's next page, slow to come
        yield from ({"Id": i} for i in range(500, 3000))

    registry.CURSORS["c1"] = answer()
    fetched: list[list[dict[str, object]]] = []
    more = threading.Thread(target=lambda: fetched.append(registry.more(registry.Args({"Of": "c1"}))))
    more.start()
    assert making.wait(10)
    assert registry.close(registry.Args({"Of": "c1"})) == []
    release.set()
    more.join(10)
    assert len(fetched[0]) == registry.CHUNK + 1 and fetched[0][-1] == {"__type__": "More"}
    assert "c1" not in registry.CURSORS and not registry.FETCHING and not registry.CLOSED
    # A Close with no chunk being made leaves nothing behind either.
    registry.CURSORS["c2"] = answer()
    registry.close(registry.Args({"Of": "c2"}))
    registry.close(registry.Args({"Of": "c3"}))
    assert "c2" not in registry.CURSORS and not registry.CLOSED


def test_a_page_comes_as_the_head_node_wrote_it_with_its_count_and_last_id(backend: HeadNodeBackend) -> None:
    """The PowerShell module passes a listing's pages on unread (Client.job_page): the head node says how many
    jobs a page holds and the last one's id (where the next page starts), and writes each job's Scheduler as
    this client names the head node, as a record it reads would have it."""
    ids = [backend.new_job({"Name": f"p{i}"})["Id"] for i in range(5)]
    client = backend.client
    page = client.job_page(state="All", after=ids[0], limit=3)
    assert (page.count, page.last, page.jobs) == (3, ids[3], None)  # its text only, not read
    assert page.json is not None and bytes(page.json).startswith(b'[{"__type__":"HpcJob","Id":')
    assert page.records() == client.call("get_jobs", state="All", after=ids[0], limit=3)
    assert {job["Scheduler"] for job in page.records()} == {client.address} != {""}
    last = client.job_page(state="All", after=ids[3], limit=3)
    assert (last.count, last.last, [j["Id"] for j in last.records()]) == (1, ids[4], ids[4:])
    empty = client.job_page(state="All", after=ids[4], limit=3)
    assert (empty.count, empty.last, empty.records()) == (0, None, [])
    assert [j["Id"] for j in backend.query_jobs(JobQuery(state="All"))] == ids


def test_a_page_with_escaped_text_is_read_and_the_module_gets_it_as_unicode() -> None:
    """The head node escapes text it cannot write as UTF-8 (a lone surrogate): such a page is read, not passed
    on, and the module's encoder writes the surrogate as U+FFFD; pages and records join into one array."""
    from hpcpack import shim
    from hpcpack.backends.client import _counted, _escapes_surrogate
    from hpcpack.cmdlets import registry
    escaped = bytearray(b'{"ok":true,"result":{"count":1,"last":7,"jobs":[{"Id":7,"Name":"a\\udc80"}]}}')
    plain = bytearray(b'{"ok":true,"result":{"count":2,"last":9,"jobs":[{"__type__":"HpcJob","Id":8},'
                      b'{"__type__":"HpcJob","Id":9}]}}')
    assert _counted(escaped) is None
    # An escape is a "u" after an odd run of backslashes; after an even one, the backslashes are text.
    assert [_escapes_surrogate(bytearray(text)) for text in (b'"\\\\\\uDC80"', b'"\\\\ud800"', b'"\\ud7ff"',
                                                               b'"x\\u"', b'"\\ud"')] == [True, False, False, False, False]
    assert _counted(bytearray(b'{"ok":false,"error":{"error_id":"PermissionDenied"}}')) is None
    assert _counted(plain) == JobPage(count=2, last=9, json=plain[47:-2])
    answer = [{"Id": 1}, JobPage(count=2, last=9, json=b'[{"Id":8},{"Id":9}]'), JobPage(count=0, last=None, json=b"[]"),
              JobPage(count=1, last=7, jobs=[{"Id": 7, "Name": "a\udc80"}]), {"__type__": "More"}]
    registry.COMMANDS["Test-Pages"] = lambda args: answer
    try:
        text = shim.call_json("Test-Pages", {})
    finally:
        del registry.COMMANDS["Test-Pages"]
    text.decode("utf-8")  # strict
    assert json.loads(text) == [{"Id": 1}, {"Id": 8}, {"Id": 9}, {"Id": 7, "Name": "a\ufffd"}, {"__type__": "More"}]
    assert text.endswith(b'{"__type__":"More"}]')  # as the module looks for it (Records.EndsWithMore)


def test_a_head_node_whose_pages_do_not_move_on_does_not_keep_a_listing_going() -> None:
    """A page's last id must be past the one before: a head node (a remote one, maybe hostile) that answers
    every page with the same full page ends the listing with an error, instead of holding its client for ever
    or (helper 39) repeating its jobs."""
    class SamePage:
        def job_page(self, **args: object) -> JobPage:
            limit = int(str(args["limit"]))
            return JobPage(count=limit, last=5, jobs=[{"Id": 5}] * limit)

    pages = HeadNodeBackend(SamePage()).query_job_pages(JobQuery(state="All"))  # type: ignore[arg-type]
    assert next(pages).count == 100
    with pytest.raises(HpcError) as refused:
        next(pages)
    assert refused.value.error_id == "ProtocolError" and "does not follow job 5" in refused.value.message


def test_the_name_a_page_is_stamped_with_is_short_printable_text(backend: HeadNodeBackend) -> None:
    """Helper 38: a 64 KB name of control characters, which JSON writes six times as long, written into each
    of 10,000 jobs made a reply of 1.2 GB, and the head node served no one else for 20 s. The name is refused
    unless it is at most MAX_SCHEDULER_NAME printable ASCII characters."""
    backend.new_job({"Name": "stamped"})
    client = backend.client
    for name in ("\x01", "x" * (protocol.MAX_SCHEDULER_NAME + 1), "é"):
        with pytest.raises(HpcError) as refused:
            client.call("get_jobs", state="All", counted=True, scheduler=name, limit=10)
        assert refused.value.error_id == "InvalidArgument", name
    longest = "x" * protocol.MAX_SCHEDULER_NAME
    assert client.call("get_jobs", state="All", counted=True, scheduler=longest, limit=10)["jobs"][0]["Scheduler"] \
        == longest


def test_a_client_that_names_its_head_node_otherwise_reads_the_page_and_stamps_it(head: HeadNodeProcess,
                                                                                  tmp_path: Path) -> None:
    """A head node reached by a name the head node may not write (not ASCII: a folder named "é") gets no name
    to stamp: the client reads the page and stamps each job itself, as it did before pages went unread."""
    from hpcpack.backends.client import Client
    (tmp_path / "é").symlink_to(head.socket.parent)
    client = Client(f"unix:{tmp_path / 'é' / head.socket.name}")
    try:
        job_id = client.call("new_job", spec={"Name": "far"})["Id"]
        page = client.job_page(state="All", limit=10)
        assert page.json is None and [j["Id"] for j in page.records()] == [job_id]
        assert page.records()[0]["Scheduler"] == client.endpoint.name != head.socket  # type: ignore[union-attr]
        assert "é" in page.records()[0]["Scheduler"]
    finally:
        client.close()


def test_text_that_only_looks_like_an_escape_keeps_a_page_unread(backend: HeadNodeBackend) -> None:
    """Helper 38: a backslash before "ud" in any job (a Windows path, C:\\udata) sent every page through
    Python again; only a real escaped surrogate does now."""
    job_id = backend.new_job({"Name": "C:\\udata", "Project": "\\\\ud800 lit \\uD800"})["Id"]
    page = backend.client.job_page(state="All", limit=10)
    assert page.json is not None and b"C:\\\\udata" in bytes(page.json)
    [job] = page.records()
    assert (job["Id"], job["Name"], job["Project"]) == (job_id, "C:\\udata", "\\\\ud800 lit \\uD800")


@pytest.mark.parametrize("jobs, why", [
    (b'[{"__type__":"HpcJob","Id":5}]', "the count says two"),
    (b'[{"__type__":"HpcJob","Id":1},{"__type__":"HpcJob","Id":50}]', "the last is 50, not 5"),
    (b'[{"__type__":"HpcJob","Id":1},{"__type__":"HpcJob","Id":5,"EnvironmentVariables":{"__type__":"HpcJob","Id":5}}]',
     "a job's text holds what looks like a job"),
])
def test_a_page_that_is_not_what_it_says_is_read_not_passed_on(jobs: bytes, why: str) -> None:
    from hpcpack.backends.client import _counted
    body = bytearray(b'{"ok":true,"result":{"count":2,"last":5,"jobs":' + jobs + b"}}")
    assert _counted(body) is None, why
    assert _counted(bytearray(b'{"ok":true,"result":{"count":0,"last":3,"jobs":[]}}')) is None
    assert _counted(bytearray(b'{"ok":true,"result":{"count":0,"last":null,"jobs":[]}}')) == JobPage(0, None, b"[]")


def test_a_head_node_that_pages_past_the_last_id_a_job_can_have_ends_the_listing() -> None:
    class Endless:  # full pages, each far past the one before, past the largest id a job can have
        def job_page(self, **args: object) -> JobPage:
            limit, after = int(str(args["limit"])), int(str(args["after"] or 0))
            return JobPage(count=limit, last=after + 2**30, jobs=[{}] * limit)

    pages = islice(HeadNodeBackend(Endless()).query_job_pages(JobQuery(state="All")), 10)  # type: ignore[arg-type]
    assert next(pages).last == 2**30
    with pytest.raises(HpcError) as refused:
        next(pages)  # a last of 2**31: past the largest id a job can have
    assert refused.value.error_id == "ProtocolError"


def test_jobs_too_large_for_one_message_come_in_pages_cut_by_their_size(head: HeadNodeProcess) -> None:
    """Pages were counted in jobs alone: 24 jobs with 3 MB environments, listed or asked for by id, made
    replies of 72 MB, past the limit of a message, and Get-HpcJob ended in ProtocolError. A page now ends
    where its text fills protocol.PAGE_BYTES and says that more follow; lookup_jobs answers its first ids
    and its client asks for the rest: ended jobs read from the store and active ones alike."""
    value = "x" * 50_000
    client = head.client()
    ids = [client.call("new_job", spec={"Name": f"big{i}", "JobEnv": [f"V{n}={value}" for n in range(60)]})["Id"]
           for i in range(24)]
    client.call("cancel_jobs", ids=ids[::2])
    client.close()
    head.stop()
    head.process = start_head_node(head.state_dir).process  # the ended ones are now read from the store
    backend = HeadNodeBackend(head.client())
    try:
        page = backend.client.job_page(state="All", after=None, limit=100)
        assert page.more and 1 < page.count < 24 and page.last == ids[page.count - 1]
        assert page.json is not None and protocol.PAGE_BYTES <= len(page.json) < protocol.PAGE_BYTES + 3_200_000
        listed = list(backend.query_jobs(JobQuery(state="All")))
        assert [job["Id"] for job in listed] == ids
        assert [job["State"] for job in listed] == ["Canceled", "Configuring"] * 12
        assert all(job["EnvironmentVariables"]["V59"] == value for job in listed)
        found = backend.lookup_jobs([*ids[:12], 999_999, *ids[12:]])
        assert [item.id for item in found] == [*ids[:12], 999_999, *ids[12:]]
        assert [item.record["Name"] if item.record else item.error and item.error.error_id for item in found] == [
            *(f"big{i}" for i in range(12)), "InvalidJobId", *(f"big{i}" for i in range(12, 24))]
    finally:
        backend.close()
    script = (f"$all = @(Get-HpcJob -State All); $some = @({','.join(map(str, ids))} | ForEach-Object {{ Get-HpcJob -Id $_ }});"
              "'{0}|{1}|{2}' -f $all.Count, $some.Count, $some[-1].EnvironmentVariables['V59'].Length")
    result = run_pwsh(script, env=head.env())
    assert result.returncode == 0 and result.stdout.split() == [f"24|24|{len(value)}"], result.stderr


def test_a_jobs_own_properties_cannot_grow_past_what_a_listing_can_hold(client: Client) -> None:
    """Each Set-HpcJob -JobEnv could add up to a request's worth (4 MB) to a job, without end, until no page
    could hold it. A job's own properties now hold at most MAX_JOB_PROPERTY_BYTES; a change past it is
    refused whole."""
    value = "x" * 50_000
    job_id = client.call("new_job", spec={"Name": "big", "JobEnv": [f"V{n}={value}" for n in range(60)]})["Id"]
    with pytest.raises(HpcError) as refused:
        client.call("set_job", id=job_id, spec={"Name": "bigger", "JobEnv": [f"W{n}={value}" for n in range(40)]})
    assert refused.value.error_id == "ArgumentOutOfRange" and f"{MAX_JOB_PROPERTY_BYTES:,}" in refused.value.message
    [job] = client.call("get_jobs", ids=[job_id])
    assert job["Name"] == "big" and sorted(job["EnvironmentVariables"]) == sorted(f"V{n}" for n in range(60))
    client.call("set_job", id=job_id, spec={"JobEnv": [f"W{n}={value}" for n in range(18)]})  # 3.9 MB: still a job


def test_a_jobs_tasks_too_large_for_one_message_come_in_pages_cut_by_their_size(head: HeadNodeProcess) -> None:
    """A job's tasks came in one reply: 200 tasks whose command lines JSON writes six times as long (control
    characters) made one of 72 MB, and Get-HpcTask ended in ProtocolError. Tasks now come in pages that end
    where their text fills protocol.PAGE_BYTES."""
    command = "echo " + "\x01" * 60_000
    client = head.client()
    try:
        job_id = client.call("new_job", spec={"Name": "wide"})["Id"]
        for n in range(200):
            client.call("add_task", job_id=job_id, spec={"CommandLine": command, "Name": f"t{n}"})
        page = client.call("get_tasks", job_id=job_id, counted=True)
        assert page["more"] and 1 < page["count"] == len(page["tasks"]) < 200
        assert page["last"] == [page["count"], 0]
        rest = client.call("get_tasks", job_id=job_id, counted=True, after=page["last"])
        assert rest["tasks"][0]["TaskId"] == page["count"] + 1
        tasks = HeadNodeBackend(client).get_tasks(TaskQuery(job_id))
        assert [task["Name"] for task in tasks] == [f"t{n}" for n in range(200)]
        assert all(task["CommandLine"] == command for task in tasks)
    finally:
        client.close()
    result = run_pwsh(f"@(Get-HpcTask -JobId {job_id}).Count", env=head.env())
    assert result.returncode == 0 and result.stdout.split() == ["200"], result.stderr


def test_a_task_page_out_of_order_ends_the_listing() -> None:
    """A hostile head node answered every page of tasks with one 200 KB task and a `last` one further on: the
    client paged for ever and grew without end (helper 42). A page's tasks must follow `after`, in order, up
    to `last`; `more` needs a task."""
    from hpcpack.backends.client import _task_page_end

    def tasks(*keys: tuple[int, int]) -> list[dict[str, object]]:
        return [{"TaskId": t, "SubTaskId": s} for t, s in keys]
    assert _task_page_end(tasks((1, 0), (2, 0)), None, [2, 0], True) == [2, 0]
    assert _task_page_end(tasks((3, 1), (3, 2)), [2, 0], [3, 2], False) is None
    for page, after, last, more in [
            (tasks(), [2, 0], [2, 0], True),  # more, and nothing
            (tasks((2, 0)), [2, 0], [2, 0], True),  # not after `after`
            (tasks((4, 0), (3, 0)), None, [4, 0], True),  # out of order
            (tasks((3, 0)), None, [2, 0], True),  # not ending with its `last`
            (tasks((3, 0)), None, [3, "a"], True),  # a `last` that is no task's
            ([{"TaskId": 3}], None, [3, 0], True)]:  # a task without its subtask id
        with pytest.raises(HpcError) as refused:
            _task_page_end(page, after, last, more)
        assert refused.value.error_id == "ProtocolError", (page, after, last)


def test_a_chunk_for_powershell_ends_with_a_page_cut_by_its_size() -> None:
    """`Select-Object -First 1` over jobs of 3.5 MB took the first 100 of them, 22 s and 866 MB in pwsh
    (helper 42): a chunk counted jobs alone. A page cut by its size ends the chunk."""
    from hpcpack.cmdlets import registry
    pages = iter([JobPage(count=4, last=4, jobs=[{}] * 4, more=True), JobPage(count=4, last=8, jobs=[{}] * 4)])
    first = registry.chunk("call", pages)
    assert [type(item).__name__ for item in first] == ["JobPage", "dict"] and first[-1] == {"__type__": "More"}
    registry.CURSORS.pop("call")


def test_a_listing_by_ids_is_not_paged_by_after(client: Client) -> None:
    """`after` pages a listing by its filters; with ids in any order it repeated some and left out others
    (helper 42), so it is refused."""
    ids = [client.call("new_job", spec={})["Id"] for _ in range(3)]
    with pytest.raises(HpcError) as refused:
        client.call("get_jobs", ids=ids[::-1], after=ids[0], counted=True)
    assert (refused.value.error_id, refused.value.target) == ("InvalidArgument", "after")
