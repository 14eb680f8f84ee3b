"""What `job list` and `job view` print of text anyone may set (a job's name, a task's command line): its
control characters escaped, so that another user's job cannot write escape sequences or forged lines to the
terminal of whoever lists it (an administrator's `job list /all`, anyone's `job view`)."""

from __future__ import annotations

import pytest

from hpcpack.cli import show

NASTY = "evil\x1b]0;OWNED\x07\x1b[2J\nFAKE LINE\r\x9b"
JOB = {"__type__": "HpcJob", "Id": 3, "Name": NASTY, "Owner": "mallory", "State": "Failed", "Priority": "Normal",
       "Project": NASTY, "Template": "Default", "UnitType": "Core", "MinCores": 1, "MaxCores": 1,
       "AutoCalculateMax": False, "CurrentAllocation": 0, "AllocatedNodes": [], "PendingReason": "",
       "SubmitTime": None, "StartTime": None, "EndTime": None, "RunUntilCanceled": False, "RequeueCount": 0,
       "ErrorMessage": NASTY, "TaskCount": 1, "FinishedTaskCount": 0}
TASK = {"Id": "3.1", "Name": NASTY, "State": "Failed", "Type": "Basic", "CommandLine": NASTY, "ExitCode": 1,
        "AllocatedNodes": [], "StartTime": None, "EndTime": None, "ErrorMessage": NASTY}


def _shown(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr().out
    assert not any(c in out for c in "\x1b\x07\r\x9b"), out
    assert "\nFAKE LINE" not in out
    return out


@pytest.mark.parametrize("width", [80, 20])  # the plain table, and rich's when too narrow for it
def test_list_and_view_escape_control_characters(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                                 width: int) -> None:
    monkeypatch.setattr(show, "_width", lambda: width)
    for layout in ("table", "list"):
        show.jobs([JOB], layout)
        assert "evil\\" in _shown(capsys)
        show.tasks([TASK], layout)
        _shown(capsys)
    show.job(JOB, [TASK], "unix:/x", detailed=False)
    assert "evil\\x1b]0;OWNED\\x07\\x1b[2J\\nFAKE LINE\\r\\x9b" in _shown(capsys)
    show.job(JOB, [TASK], "unix:/x", detailed=True)
    _shown(capsys)


def test_printable_text_is_shown_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    show.job({**JOB, "Name": "caf\u00e9 \u65e5\u672c", "Project": "p", "ErrorMessage": ""}, [], "unix:/x", False)
    assert "Name             : caf\u00e9 \u65e5\u672c\n" in capsys.readouterr().out
