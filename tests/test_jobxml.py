"""Job XML: HPC Pack's real files, round trips, and hostile or malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcpack.backends.client import Client
from hpcpack.errors import HpcError
from hpcpack.model.jobxml import read_job_file, write_job_file

from .conftest import ROOT

FIXTURES = ROOT.parent / "shared" / "fixtures" / "job-xml"
SWEEP = FIXTURES / "aws-cfn-windows-hpc-template__Parametric-Job-Prod.xml"
LICENSES = FIXTURES / "hpcpack-samples__sixfslicenses.xml"


def test_reads_an_exported_job_with_a_sweep_and_a_dependency_chain() -> None:
    spec, tasks = read_job_file(str(SWEEP))
    assert spec["Name"] == "Parametric-Job-Prod" and spec["Priority"] == "Normal"
    assert [t["Name"] for t in tasks] == ["Task - Set ASG from 1 to 2 worker nodes", "Wait for Scaling",
                                         "My Sweep Task - Run Simulations",
                                         "Task - Remove worker nodes by setting ASG desired nodes to 1"]
    assert [t.get("Depend") for t in tasks] == [None, [tasks[0]["Name"]], [tasks[1]["Name"]], [tasks[2]["Name"]]]
    sweep = tasks[2]
    assert (sweep["Type"], sweep["Start"], sweep["End"], sweep["Increment"], sweep["NumCores"]) == \
        ("ParametricSweep", 1, 4, 1, "1-2")
    assert sweep["CommandLine"].endswith("-case *")


def test_reads_a_node_job_with_licenses() -> None:
    spec, tasks = read_job_file(str(LICENSES))
    assert spec["NumNodes"] == "2-32"
    assert spec["License"] == "fs_multicore:6"  # SoftwareLicense is the job file's name for -License
    assert tasks == [{"CommandLine": "mpiexec fs.exe", "Type": "Basic", "NumNodes": "2-32", "AutoRequeueCount": "0"}]


def _same(a: dict[str, object], b: dict[str, object]) -> dict[str, object]:
    ignore = {"Id", "CreateTime", "SubmitTime", "StartTime", "EndTime", "ChangeTime", "Scheduler", "JobId"}
    return {k: v for k, v in a.items() if k not in ignore}, {k: v for k, v in b.items() if k not in ignore}  # type: ignore[return-value]


def test_create_export_create_gives_equal_jobs(client: Client, tmp_path: Path) -> None:
    for source in (SWEEP, LICENSES):
        first = _create(client, str(source))
        exported = tmp_path / f"{first}.xml"
        exported.write_bytes(write_job_file(client.call("get_jobs", ids=[first])[0],
                                            client.call("get_tasks", job_id=first, expand=False)))
        second = _create(client, str(exported))
        jobs = [client.call("get_jobs", ids=[i])[0] for i in (first, second)]
        left, right = _same(jobs[0], jobs[1])
        assert left == right
        tasks = [client.call("get_tasks", job_id=i) for i in (first, second)]
        assert len(tasks[0]) == len(tasks[1])
        for a, b in zip(*tasks, strict=True):
            left, right = _same(a, b)
            assert {k: v for k, v in left.items() if k != "Id"} == {k: v for k, v in right.items() if k != "Id"}


def _create(client: Client, path: str) -> int:
    spec, tasks = read_job_file(path)
    job = client.call("new_job", spec=spec)
    for task in tasks:
        client.call("add_task", job_id=job["Id"], spec=task)
    return int(job["Id"])


HOSTILE = {
    "billion laughs": '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
                      '<Job Name="&lol2;"/>',
    "external entity": '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                       '<Job Name="&xxe;"/>',
    "doctype": '<?xml version="1.0"?><!DOCTYPE Job SYSTEM "http://example.invalid/job.dtd"><Job/>',
    "not xml": "this is not a job",
    "truncated": '<?xml version="1.0"?><Job Name="x"><Tasks>',
    "wrong root": '<?xml version="1.0"?><Template/>',
    "task without command": '<?xml version="1.0"?><Job><Tasks><Task NiceId="1"/></Tasks></Job>',
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_and_malformed_files_are_refused_clearly(case: str, tmp_path: Path) -> None:
    path = tmp_path / "job.xml"
    path.write_text(HOSTILE[case])
    with pytest.raises(HpcError) as e:
        read_job_file(str(path))
    assert e.value.error_id == "InvalidJobFile"
    assert str(path) in e.value.message
    assert "root:" not in e.value.message  # /etc/passwd never leaks into a message


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HpcError) as e:
        read_job_file(str(tmp_path / "missing.xml"))
    assert "Cannot read the job file" in e.value.message
