"""Ferry's one error hierarchy. Codes are SPEC section 5's; edges translate them."""

from __future__ import annotations

from typing import Any


class FerryError(Exception):
    """Base of every error Ferry raises on purpose."""

    code = "internal"
    retryable = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def as_dict(self) -> dict[str, Any]:
        """The `error` object stored on a job: code, message, retryable."""
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class ConfigError(FerryError):
    """Raised when the environment holds a setting Ferry cannot use."""

    code = "internal"


class BadRequest(FerryError):
    """Raised when a request or job parameter is malformed (names the field)."""

    code = "bad_request"


class ValidationFailed(FerryError):
    """Raised when input parses but breaks a rule (names the field)."""

    code = "validation_failed"


class BadArchive(FerryError):
    """Raised when an archive is unreadable, unsafe or inconsistent (names the file)."""

    code = "bad_archive"


class BadFile(FerryError):
    """Raised when a table file cannot be read as a table at all (names the problem, and
    the row where there is one)."""

    code = "bad_file"


class UnsupportedVersion(FerryError):
    """Raised when an archive's schemaVersion has a major version Ferry cannot read."""

    code = "unsupported_version"


class StorageError(FerryError):
    """Raised when the storage folder cannot be read or written; retried."""

    code = "storage_error"
    retryable = True


class DatabaseError(FerryError):
    """Raised when PostgreSQL or Redis cannot be reached; retried."""

    code = "database_error"
    retryable = True


class Interrupted(FerryError):
    """Raised (recorded) when an attempt stopped heartbeating too many times."""

    code = "interrupted"


class NotFound(FerryError):
    """Raised when a job or account does not exist for the caller."""

    code = "not_found"


class Conflict(FerryError):
    """Raised when the job's state does not allow the request (HTTP 409)."""

    code = "conflict"


class RollbackExpired(FerryError):
    """Raised when an import's rollback_until has passed (its undo data is gone; HTTP 409)."""

    code = "rollback_expired"


class Gone(FerryError):
    """Raised when a download has passed its retention (HTTP 410)."""

    code = "gone"


class JobCancelled(Exception):
    """Raised inside a pipeline when the job's cancel was requested."""


class LeaseLost(Exception):
    """Raised when a fenced write finds that this attempt no longer owns the job."""
