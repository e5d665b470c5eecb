"""Retry known-transient storage errors with exponential backoff and jitter.

Transient means the store may well answer the same request a moment later:
it cannot be reached or dropped the connection (restarting, a network blip),
it timed out, or it said so (HTTP 500, 502, 503, 504, SlowDown). Anything
else (not found, access denied, a bad request) is final and raised at once.
When the budget runs out, the error becomes a StorageError: the store is
down, which is systemic (the run stops cleanly; a rerun continues), not a
fault of the video at hand.
"""

from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pipeline.errors import StorageError
from pipeline.secrets import redact_text

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_BUDGET_S = 120.0  # a restarting S3 gateway or a failover is back well within this
_FIRST_DELAY_S = 0.5
_MAX_DELAY_S = 8.0
# s3fs turns HTTP 500/InternalError into EREMOTEIO and 503/SlowDown/
# ServiceUnavailable/409 into EBUSY; sockets say the rest.
_TRANSIENT_ERRNOS = frozenset({getattr(errno, "EREMOTEIO", errno.EIO), errno.EBUSY,
                               errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED,
                               errno.ECONNABORTED, errno.EPIPE, errno.EAGAIN})
_TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
_TRANSIENT_WORDS = ("slowdown", "slow down", "service unavailable", "internal error",
                    "internal server error",
                    "internalerror", "serviceunavailable", "bad gateway", "gateway timeout",
                    " 500", " 502", " 503", " 504", "reduce your request rate",
                    "connection reset", "connection refused", "broken pipe",
                    "server disconnected", "timed out", "could not connect")


def is_transient(exc: BaseException) -> bool:
    """True for errors that a retry a moment later may cure (see the module doc)."""
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # no s3fs: only local storage, nothing is transient
        return False
    if isinstance(exc, BotoConnectionError | HTTPClientError | ConnectionError | TimeoutError):
        return True
    if not isinstance(exc, OSError) or isinstance(
            exc, FileNotFoundError | FileExistsError | PermissionError | IsADirectoryError):
        return False
    response = getattr(exc.__cause__, "response", None) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if exc.errno in _TRANSIENT_ERRNOS or status in _TRANSIENT_STATUS:
        return True
    text = str(exc).lower()
    return any(word in text for word in _TRANSIENT_WORDS)


def with_retries(call: Callable[[], T], what: str, budget_s: float = RETRY_BUDGET_S) -> T:
    """`call()`, retried on transient errors for up to `budget_s` seconds; then
    StorageError naming `what`. Other errors propagate unchanged."""
    deadline = time.monotonic() + budget_s
    delay = _FIRST_DELAY_S
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:  # filtered by is_transient: anything else re-raises as is
            if not is_transient(exc):
                raise
            attempt += 1
            left = deadline - time.monotonic()
            # The error's text can hold an endpoint URL with its password, or a secret.
            reason = f"{type(exc).__name__}: {redact_text(str(exc))}"
            if left <= 0:
                raise StorageError(f"storage unavailable while trying to {what}: "
                                   f"{reason} (retried {attempt} times "
                                   f"over {budget_s:.0f}s); check that the store is up, "
                                   "then rerun: the run continues from its last commit"
                                   ) from exc
            pause = min(left, delay * (0.5 + random.random()))
            log.warning("transient storage error while trying to %s (%s); retrying in "
                        "%.1fs", what, reason, pause)
            time.sleep(pause)
            delay = min(_MAX_DELAY_S, delay * 2)
