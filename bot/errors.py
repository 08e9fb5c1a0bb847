"""Every error opsloop raises on purpose, written down once.

The hierarchy::

    OpsloopError                    base of everything below
    ├── ConfigError                 a bad setting or policy file; start-up stops
    ├── UserFacingError             safe to show a chat user as it is
    │   ├── BadInputError           an empty, oversized or undecodable message
    │   ├── NotFoundError           an unknown thread, request or agent
    │   ├── AuthenticationError     a credential that is unknown, revoked or expired
    │   └── DecisionRefusedError    a human decision that is not accepted
    ├── StoreError                  the database said no
    │   └── ConcurrentStepError     another step of the same thread committed first
    ├── ModelError                  the model layer could not produce a decision
    │   ├── ModelUnavailableError   provider down, timed out, rate limited or circuit open
    │   └── NoDecisionError         the model answered with neither a reply nor a tool call
    └── ToolError                   a tool failed while running; its message goes to the model

Only :class:`UserFacingError` (and its subclasses) may be shown to a chat user as is;
everything else is logged and summarised.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BadInputError",
    "ConcurrentStepError",
    "ConfigError",
    "DecisionRefusedError",
    "ModelError",
    "ModelUnavailableError",
    "NoDecisionError",
    "NotFoundError",
    "OpsloopError",
    "StoreError",
    "ToolError",
    "UserFacingError",
]


class OpsloopError(Exception):
    """Base of every error opsloop raises on purpose."""


class ConfigError(OpsloopError):
    """A setting or the policy file is invalid; the message lists every problem."""


class UserFacingError(OpsloopError):
    """An error whose message is safe and useful to show the person who caused it."""


class BadInputError(UserFacingError):
    """Input that cannot be accepted: empty, too large, badly encoded or malformed."""


class NotFoundError(UserFacingError):
    """An unknown thread, human request, agent or tool."""


class AuthenticationError(UserFacingError):
    """A credential that is not usable: unknown, malformed, revoked or expired."""


class DecisionRefusedError(UserFacingError):
    """A human decision that was not accepted (already decided, expired, not allowed)."""


class StoreError(OpsloopError):
    """The database refused an operation."""


class ConcurrentStepError(StoreError):
    """Another step of the same thread committed first; this one must be retried."""


class ModelError(OpsloopError):
    """The model layer could not produce a decision."""


class ModelUnavailableError(ModelError):
    """Every provider failed: timeouts, server errors, rate limits or an open circuit."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        """Create the error.

        Args:
            message: what went wrong, without secrets.
            retry_after: seconds the provider asked us to wait, when it said so.
        """
        super().__init__(message)
        self.retry_after = retry_after


class NoDecisionError(ModelError):
    """The model answered with neither a reply nor a tool call."""


class ToolError(OpsloopError):
    """A tool failed; the message is shown to the model as the tool's error."""
