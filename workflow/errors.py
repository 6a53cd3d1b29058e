"""Errors raised by the control plane; the HTTP layer maps each to one status code.

=====================  ======  ==========================================================
error                  status  meaning
=====================  ======  ==========================================================
:class:`NotFound`        404   no such record *in the caller's tenant* (existence of other
                               tenants' records never leaks)
:class:`Forbidden`       403   the caller's roles or approval limit do not allow the action
:class:`IllegalTransition` 409 the recommendation's current state does not allow the action
:class:`VersionConflict` 409   someone else changed the record since the caller read it
:class:`InvalidInput`    422   a field is invalid for a reason the schema cannot express
=====================  ======  ==========================================================
"""

from __future__ import annotations

__all__ = ["Forbidden", "IllegalTransition", "InvalidInput", "NotFound", "VersionConflict", "WorkflowError"]


class WorkflowError(Exception):
    """Base of every control-plane error."""

    status_code = 400

    def detail(self) -> dict:
        """A JSON-able description of the error (the HTTP response body's ``detail``)."""
        return {"error": type(self).__name__, "message": str(self)}


class NotFound(WorkflowError):
    """The record does not exist in the caller's tenant."""

    status_code = 404

    def __init__(self, entity: str, ident: object):
        super().__init__(f"{entity} {ident!s} not found")
        self.entity, self.ident = entity, ident


class Forbidden(WorkflowError):
    """The caller may not perform this action (role or approval limit)."""

    status_code = 403


class IllegalTransition(WorkflowError):
    """The action is not allowed from the recommendation's current state (which the message names)."""

    status_code = 409

    def __init__(self, rec_id: str, action: str, current: str, allowed_from: tuple[str, ...]):
        super().__init__(
            f"recommendation {rec_id}: cannot {action} from state {current!r} "
            f"(allowed from: {', '.join(allowed_from) or 'none'})"
        )
        self.rec_id, self.action, self.current, self.allowed_from = rec_id, action, current, allowed_from

    def detail(self) -> dict:
        """Include the current state so that a client can refresh without a second call."""
        return {**super().detail(), "current_state": self.current, "allowed_from": list(self.allowed_from)}


class VersionConflict(WorkflowError):
    """Optimistic-concurrency failure: the record's version is no longer the one the caller read."""

    status_code = 409

    def __init__(self, rec_id: str, expected: int, current: int, state: str):
        super().__init__(
            f"recommendation {rec_id}: version conflict (you sent version {expected}, it is now version "
            f"{current} in state {state!r}); reload and retry"
        )
        self.rec_id, self.expected, self.current, self.state = rec_id, expected, current, state

    def detail(self) -> dict:
        """Include the current version and state."""
        return {**super().detail(), "current_version": self.current, "current_state": self.state}


class InvalidInput(WorkflowError):
    """A field is invalid (cross-field or state-dependent rules); names the field and the expected form."""

    status_code = 422

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message

    def detail(self) -> dict:
        """FastAPI-like field error list."""
        return {
            "error": "InvalidInput",
            "message": str(self),
            "errors": self.errors(),
        }

    def errors(self) -> list[dict]:
        """The error in FastAPI's 422 form (``loc``, ``msg``, ``type``), what the HTTP layer answers."""
        return [{"loc": ["body", *self.field.split(".")], "msg": self.message, "type": "value_error"}]
