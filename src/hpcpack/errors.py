"""Scheduler errors with HPC Pack's codes, and the PowerShell error id and category each maps to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Only the fields PowerShell needs: a stable id, an ErrorCategory name, HPC Pack's HRESULT.
_KINDS: dict[str, tuple[str, int]] = {
    "InvalidJobId": ("ObjectNotFound", 0x80040206),
    "InvalidTaskId": ("ObjectNotFound", 0x80040207),
    "InvalidCancelJobState": ("InvalidOperation", 0x80040208),
    "InvalidCancelTaskState": ("InvalidOperation", 0x80040209),
    "OnlyConfigJobsCanBeSubmitted": ("InvalidOperation", 0x80040202),
    "OnlyFailedCancelledJobsCanBeRequeued": ("InvalidOperation", 0x8004020A),
    "PermissionDenied": ("PermissionDenied", 0x8004020B),
    "InvalidOperation": ("InvalidOperation", 0x8004020F),
    "JobModifyFailed": ("InvalidOperation", 0x80040220),
    "CancelMessageIsTooLong": ("InvalidArgument", 0x800402D3),
    "CannotConnectWithScheduler": ("ConnectionError", 0x800402CF),
    "ForcedGracefulConflict": ("InvalidArgument", 0x8004020F),
    "ForcedFinishNotSupported": ("InvalidArgument", 0x8004020F),
    "ArgumentOutOfRange": ("InvalidArgument", 0x80040205),
    "InvalidArgument": ("InvalidArgument", 0x80040205),
    "CancelIncomplete": ("OperationTimeout", 0x8004020F),
    "CancelFailed": ("InvalidResult", 0x8004020F),
    "InvalidJobFile": ("InvalidData", 0x80040205),
    "IllegalTaskType": ("InvalidOperation", 0x80040253),
    "ProtocolError": ("ProtocolError", 0x8004020F),
    "OperationStopped": ("OperationStopped", 0x8004020F),
    "StorageFailure": ("WriteError", 0x8004020F),
    "InternalError": ("NotSpecified", 0x8004020F),
    "TooManyConnections": ("LimitsExceeded", 0x800402CF),
    "TooMuchUnread": ("LimitsExceeded", 0x800402CF),
    "TooMuchUnsent": ("LimitsExceeded", 0x800402CF),
    "VersionMismatch": ("InvalidOperation", 0x800402CF),
    "AuthenticationFailed": ("SecurityError", 0x8004020B),
    "JobHasNoTasks": ("InvalidOperation", 0x8004020F),
    "InvalidJobTemplate": ("ObjectNotFound", 0x80040205),
    "JobTemplateViolation": ("InvalidArgument", 0x80040205),
    "TaskModifyFailed": ("InvalidOperation", 0x80040220),
    "NoPathMapping": ("InvalidArgument", 0x80040205),
}


MAX_SENT = 4096  # characters of an error's message (and of its target) that a reply carries


class HpcError(Exception):
    """A failure the user can act on. `error_id` is stable; PowerShell shows it in FullyQualifiedErrorId."""

    def __init__(self, error_id: str, message: str, target: Any = None) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
        self.target = target
        self.category, self.code = _KINDS.get(error_id, ("NotSpecified", 0x8004020F))

    def to_wire(self) -> dict[str, Any]:
        """As a reply carries it: its message and target cut to MAX_SENT characters, since they may repeat
        what a request sent (a 4 MB JobEnv item without "=", a name of bad bytes), and an error of each
        of 10,000 ids would repeat it 10,000 times."""
        target = self.target[:MAX_SENT] if isinstance(self.target, str) else self.target
        return {"error_id": self.error_id, "message": self.message[:MAX_SENT], "target": target}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> HpcError:
        return cls(data["error_id"], data["message"], data.get("target"))


@dataclass(frozen=True)
class ErrorRecord:
    """A per-item failure returned (not raised) so that the other items still get processed."""

    error: HpcError

    def to_record(self) -> dict[str, Any]:
        e = self.error
        return {"__error__": {"error_id": e.error_id, "category": e.category, "message": e.message,
                              "target": e.target}}


def invalid_argument(message: str, target: Any = None) -> HpcError:
    return HpcError("InvalidArgument", message, target)


def storage_failure(cause: Exception, target: Any = None) -> HpcError:
    """The store could not commit a change (disk full, I/O error): it was rolled back, in memory too."""
    return HpcError("StorageFailure", f"The head node could not save the change ({cause}); nothing was changed. "
                    "Reading still works.", target)
