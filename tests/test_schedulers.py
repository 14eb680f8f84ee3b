"""Objects remember the head node they came from: piped to a cmdlet, or through their methods, they
act there, never on the default head node (two real head nodes, real pwsh)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import DEFAULT_CONFIG, HeadNodeProcess, run_pwsh, start_head_node
from .jobs import job, make_job, wait_state


@pytest.fixture
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeadNodeProcess]:
    node = start_head_node(tmp_path_factory.mktemp("second"), DEFAULT_CONFIG)
    yield node
    node.stop()


def test_piped_jobs_and_their_methods_act_on_their_own_head_node(head: HeadNodeProcess, second: HeadNodeProcess
                                                                 ) -> None:
    default, other = head.client(), second.client()
    mine = make_job(default, "sleep 300")
    theirs = make_job(other, "sleep 300")
    there = make_job(other, "sleep 300")
    assert (mine, theirs, there) == (1, 1, 2)
    wait_state(other, theirs, "Running")
    result = run_pwsh(f"$j = Get-HpcJob -Id 1 -Scheduler 'unix:{second.socket}'\n"
                      "$j | Stop-HpcJob -Force\n"
                      f"$k = Get-HpcJob -Id 2 -Scheduler 'unix:{second.socket}'\n"
                      "$k.Cancel($true, $false)\n"
                      "$j.Refresh(); 'refreshed|' + $j.State", env=head.env())
    assert result.returncode == 0, result.stderr
    assert "refreshed|Canceled" in result.stdout.splitlines()
    assert wait_state(other, theirs, "Canceled")["State"] == "Canceled"
    assert wait_state(other, there, "Canceled")["State"] == "Canceled"
    assert job(default, mine)["State"] in ("Queued", "Running")  # the default head node's job 1: untouched
    for client in (default, other):
        client.call("cancel_jobs", ids=[1, 2], force=True)
        client.close()
