"""Job and task states with HPC Pack's names and values, and the one table of legal transitions.

Nothing sets a state directly: every change is `transition(current, event)`, and the store
applies it as compare-and-set, so two racing changes (a cancel and a task's completion) have
exactly one winner and the loser gets a clear `InvalidTransition`.
"""

from __future__ import annotations

from enum import IntFlag


class JobState(IntFlag):
    Configuring = 1
    Submitted = 2
    Validating = 4
    ExternalValidation = 8
    Queued = 16
    Running = 32
    Finishing = 64
    Finished = 128
    Failed = 256
    Canceled = 512
    Canceling = 1024
    All = 2047


class TaskState(IntFlag):
    Configuring = 1
    Submitted = 2
    Validating = 4
    Queued = 8
    Dispatching = 16
    Running = 32
    Finishing = 64
    Finished = 128
    Failed = 256
    Canceled = 512
    Canceling = 1024
    All = 2047


class InvalidTransition(Exception):
    def __init__(self, kind: str, state: str, event: str) -> None:
        super().__init__(f"a {kind} in state {state} cannot take the event '{event}'")
        self.state = state
        self.event = event


J = JobState
T = TaskState

# Groups of states, as sets of members rather than combined flags: `state in group` is then a hash lookup in C,
# not Flag.__contains__ in Python (a bulk cancel of 5,000 jobs asks some 40,000 times).
# Stop-HpcJob is accepted in these states (HPC Pack's list; ExternalValidation is deliberately absent).
JOB_CANCELABLE = frozenset({J.Configuring, J.Submitted, J.Validating, J.Queued, J.Running})
JOB_TERMINAL = frozenset({J.Finished, J.Failed, J.Canceled})
TASK_TERMINAL = frozenset({T.Finished, T.Failed, T.Canceled})
TASK_WAITING = frozenset({T.Configuring, T.Submitted, T.Queued})

_JOB_TABLE: dict[str, dict[JobState, JobState]] = {
    "submit": {J.Configuring: J.Submitted},
    "validate": {J.Submitted: J.Validating},
    "accept": {J.Validating: J.Queued},
    "reject": {J.Validating: J.Failed},
    "start": {J.Queued: J.Running},
    "complete": {J.Running: J.Finishing},
    "finished": {J.Finishing: J.Finished},
    "failed": {J.Running: J.Failed, J.Finishing: J.Failed, J.Canceling: J.Failed},  # Canceling: failing its tasks
    # A repeated request while Canceling is accepted: that is how graceful is upgraded to force.
    "cancel": {s: J.Canceling for s in (*JOB_CANCELABLE, J.Canceling)},
    "canceled": {J.Canceling: J.Canceled},
    "finished_by_user": {J.Canceling: J.Finished},
    "requeue": {J.Canceled: J.Submitted, J.Failed: J.Submitted},
    # A job whose run had to be abandoned (head node lost its tasks) goes back to the queue.
    "preempt": {J.Running: J.Queued},
}

_TASK_TABLE: dict[str, dict[TaskState, TaskState]] = {
    "submit": {T.Configuring: T.Queued},
    "start": {T.Queued: T.Running},
    "exited_ok": {T.Running: T.Finished, T.Canceling: T.Finished},
    "exited_failed": {T.Running: T.Failed, T.Canceling: T.Failed},
    "cancel": {T.Configuring: T.Canceled, T.Submitted: T.Canceled, T.Queued: T.Canceled},
    "unstartable": {T.Queued: T.Failed},  # it can never start (FailDependentTasks, no required node)
    "stop": {T.Running: T.Canceling, T.Canceling: T.Canceling},
    "stopped": {T.Canceling: T.Failed},
    "stopped_finished": {T.Canceling: T.Finished, T.Running: T.Finished},
    "requeue": {T.Failed: T.Queued, T.Canceled: T.Queued, T.Running: T.Queued, T.Canceling: T.Queued,
                T.Configuring: T.Queued, T.Queued: T.Queued},
}


def job_transition(current: JobState, event: str) -> JobState:
    try:
        return _JOB_TABLE[event][current]
    except KeyError:
        raise InvalidTransition("job", current.name or str(current), event) from None


def task_transition(current: TaskState, event: str) -> TaskState:
    try:
        return _TASK_TABLE[event][current]
    except KeyError:
        raise InvalidTransition("task", current.name or str(current), event) from None


def job_can(current: JobState, event: str) -> bool:
    return current in _JOB_TABLE[event]



def parse_flags(enum: type[JobState] | type[TaskState], text: str | list[str]) -> int:
    """'Queued,Running', ['Queued', 'Running'] or 'All' -> the flags value, as PowerShell converts [Flags]."""
    parts = text if isinstance(text, list) else [text]
    value = 0
    for part in parts:
        for name in str(part).split(","):
            name = name.strip()
            if not name:
                continue
            if name.isdigit():
                value |= int(name)
                continue
            member = next((m for key, m in enum.__members__.items() if key.lower() == name.lower()), None)
            if member is None:
                names = ", ".join(enum.__members__)
                raise ValueError(f"'{name}' is not a {enum.__name__}; use one of: {names}")
            value |= member.value
    return value


def job_states_taking(*events: str) -> list[JobState]:
    """The job states in which a job takes any of these events ("cancel": those Stop-HpcJob acts on)."""
    return [state for state in JobState if any(state in _JOB_TABLE[event] for event in events)]
