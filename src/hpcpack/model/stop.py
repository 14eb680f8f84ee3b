"""How to stop jobs or tasks, built and checked in one place for every side (cmdlets, `job` command,
head node)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import HpcError, invalid_argument
from .params import MAX_MESSAGE


@dataclass(frozen=True)
class StopOptions:
    """Stop-HpcJob's and Stop-HpcTask's -Force, -Graceful, -State and -Message; `job cancel`'s /force,
    /graceful and /message; `job finish` is finish=True."""

    force: bool = False      # kill at once: no grace period, no node-release task
    graceful: bool = False   # start nothing new; running tasks end by themselves
    finish: bool = False     # end Finished instead of Canceled (-State Finished)
    message: str | None = None

    @classmethod
    def from_parameters(cls, force: bool = False, graceful: bool = False, state: str | None = None,
                        message: str | None = None) -> StopOptions:
        """Raises HpcError: InvalidArgument for a State other than Finished (HPC Pack's only value),
        ForcedGracefulConflict for -Force with -Graceful, CancelMessageIsTooLong beyond 128 characters
        (HPC Pack's error ids and limit)."""
        if state and state.strip().lower() != "finished":
            raise invalid_argument(f"State '{state}' is not valid; the only valid value is Finished.", "State")
        if force and graceful:
            raise HpcError("ForcedGracefulConflict", "Force and Graceful cannot be used together: Force stops "
                           "running tasks at once, Graceful lets them finish.")
        if message is not None and len(message) > MAX_MESSAGE:
            raise HpcError("CancelMessageIsTooLong", f"The cancel message is {len(message)} characters long; "
                           f"the limit is {MAX_MESSAGE}.", "Message")
        return cls(force=force, graceful=graceful, finish=bool(state), message=message)

    @property
    def final_state(self) -> str:
        return "Finished" if self.finish else "Canceled"

    def to_wire(self) -> dict[str, Any]:
        return {"force": self.force, "graceful": self.graceful, "message": self.message,
                "state": "Finished" if self.finish else None}
