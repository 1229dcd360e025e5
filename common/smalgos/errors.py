"""The error kinds of the project, and the one place that says what each means.

Training: a `ClientError` (the user's hyperparameters, data or channels are wrong), an
`AlgorithmError` (our code failed) or a `PlatformError` (the machine failed) ends the job; the
runner writes ``"<Kind>: <message>"`` as the first line of ``/opt/ml/output/failure``.

Serving: every `ClientError` subclass carries the HTTP status it maps to; the serving app
registers one handler for the whole hierarchy, so no stage needs its own try/except.
"""

from __future__ import annotations


class SMAlgoError(Exception):
    """Base of every error this project raises on purpose."""

    kind = "AlgorithmError"
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ClientError(SMAlgoError):
    """The caller's input is wrong: hyperparameters, channels, data, or a request body."""

    kind = "ClientError"
    status = 400


class InputError(ClientError, ValueError):
    """Bad data or parameters given to an estimator: a ClientError in a job or a request (failure
    file, HTTP 400), and a ValueError for a notebook user."""


class NotFittedError(InputError):
    """An estimator asked to predict, score or save before `fit()` or `load()`."""


class UnsupportedContentType(ClientError):
    """A request or channel in a content type the algorithm does not read (HTTP 415)."""

    status = 415


class UnsupportedAccept(ClientError):
    """An Accept header none of whose entries the algorithm can write (HTTP 406)."""

    status = 406


class PayloadTooLarge(ClientError):
    """A request body over the configured cap (HTTP 413)."""

    status = 413


class AlgorithmError(SMAlgoError):
    """Our algorithm failed on input it accepted."""

    kind = "AlgorithmError"
    status = 500


class PlatformError(SMAlgoError):
    """The environment failed us: a missing directory, a full disk, a lost peer host."""

    kind = "PlatformError"
    status = 500


class TrainingStopped(SMAlgoError):
    """SageMaker asked the job to stop (SIGTERM) while it waited for or read data."""

    kind = "Stopped"
