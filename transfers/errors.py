"""The few typed failures the portal turns Globus trouble into.

Backends and the client module raise these; the job state machine and the
pages turn them into something a person can act on.
"""


class TransferError(Exception):
    """Base of the portal's transfer failures; ``str()`` is for people."""

    code = "error"

    def __init__(self, message, *, code=None):
        super().__init__(message)
        if code:
            self.code = code


class TransientError(TransferError):
    """The service is unreachable or overloaded (5xx, time-out, dropped
    connection): try again later; the job does not fail."""

    code = "transient"


class PermanentError(TransferError):
    """The service refused the request for good; the job fails with this code."""

    code = "permanent"


class LoginRequired(TransferError):
    """The user's Globus tokens are missing, expired or revoked: the user must
    log in again before their parked jobs can go on."""

    code = "LoginRequired"

    def __init__(self, message, *, scopes=()):
        super().__init__(message)
        self.scopes = tuple(scopes)


class ConsentRequired(LoginRequired):
    """A collection needs a ``data_access`` consent the user has not given."""

    code = "ConsentRequired"
