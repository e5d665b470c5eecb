"""What a storage error means, in one line that says how to fix it.

`storage_errors()` is what to catch around a storage call (OSError, and
botocore's errors, which are not OSErrors); `storage_problem(exc, context)`
turns one into a StorageError: missing or refused credentials and an endpoint
that does not answer are named as such, with the fix, and secrets are masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import StorageError
from pipeline.secrets import redact_text


def storage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "storage is unreachable or refuses us": OSError, and
    botocore's own errors (EndpointConnectionError is not an OSError)."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # no s3fs installed: only local storage
        return (OSError,)
    return (OSError, BotoCoreError)


_CREDENTIALS_FIX = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for "
                    "temporary credentials), or AWS_PROFILE, or give the machine an IAM role; "
                    "--storage-option anon=true reads a public bucket (see docs/secrets.md)")
_CHECK_CREDENTIALS = ("check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or "
                      "--storage-option key/secret)")
# S3 error codes that mean "these credentials are refused", and what each says.
_REFUSED = {
    "InvalidAccessKeyId": "the store does not know the access key ID",
    "SignatureDoesNotMatch": "signature mismatch: the secret key does not match the access "
                             "key ID",
    "ExpiredToken": "the session token has expired",
    "ExpiredTokenException": "the session token has expired",
    "TokenRefreshRequired": "the session token has expired",
    "InvalidToken": "the session token is invalid",
}
# Where botocore found partial credentials (PartialCredentialsError's provider).
_CREDENTIAL_SOURCES = {"env": "the environment", "explicit": "--storage-option",
                       "shared-credentials-file": "~/.aws/credentials",
                       "config-file": "~/.aws/config"}
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "403", "Forbidden"})


@dataclass(frozen=True)
class _Problem:
    """What went wrong, how to fix it, and whether it is about the store as a
    whole (credentials, endpoint) rather than the object at hand."""

    text: str
    fix: str = ""
    store_wide: bool = False


def storage_problem(exc: BaseException, context: str) -> StorageError:
    """A one-line, fix-it StorageError for an error that s3fs, botocore or the
    local filesystem raised; `context` says what failed ("cannot list SOURCE
    's3://b/v'", "output 'x' is not writable").

    Credential and endpoint problems lead, being about the store rather than the
    object: "no S3 credentials found, so cannot list SOURCE 's3://b/v'; set ...".
    Others follow the context: "output 'x' is not writable: permission denied
    (...)". Known secrets and URL passwords are masked.
    """
    problem = _botocore_problem(exc) or _response_problem(exc) or _local_problem(exc)
    if problem.store_wide:
        text = f"{problem.text}, so {context}; {problem.fix}"
    else:
        text = f"{context}: {problem.text}" + (f"; {problem.fix}" if problem.fix else "")
    return StorageError(redact_text(" ".join(text.split())))


def _botocore_problem(exc: BaseException) -> _Problem | None:
    """Credentials that cannot be found or loaded, and endpoints that do not answer."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # no s3fs: only local storage
        return None
    if isinstance(exc, bx.NoCredentialsError):
        return _Problem("no S3 credentials found", _CREDENTIALS_FIX, True)
    if isinstance(exc, bx.PartialCredentialsError):
        source = _CREDENTIAL_SOURCES.get(exc.kwargs.get("provider"), exc.kwargs.get("provider"))
        return _Problem(f"incomplete S3 credentials in {source}: {exc.kwargs.get('cred_var')} "
                        "is missing", "give the access key ID and the secret key together, "
                        "or neither (to use AWS_PROFILE or an IAM role)", True)
    if isinstance(exc, bx.ProfileNotFound):
        return _Problem(f"AWS profile {exc.kwargs.get('profile')!r} does not exist",
                        "check AWS_PROFILE or --storage-option profile against "
                        "~/.aws/config and ~/.aws/credentials", True)
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        return _Problem(f"the S3 endpoint {_endpoint(exc.kwargs.get('endpoint_url'))} does "
                        "not answer", "check AWS_ENDPOINT_URL_S3 (or --storage-option "
                        "endpoint_url) and that the store is up", True)
    if isinstance(exc, bx.BotoCoreError):
        return _Problem(f"{type(exc).__name__}: {exc}")
    return None


def _endpoint(url: object) -> str:
    """scheme://host:port of a request URL (no path, no user or password)."""
    parts = urlsplit(str(url or ""))
    if not parts.hostname:
        return "(unknown)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _error_response(exc: BaseException) -> dict[str, Any]:
    """The S3 error response behind `exc` (s3fs raises OSErrors caused by botocore's
    ClientError), or {}."""
    for error in (exc, exc.__cause__):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            return response
    return {}


def _response_problem(exc: BaseException) -> _Problem | None:
    """Credentials refused, access denied, bucket missing: what the store said."""
    response = _error_response(exc)
    error = response.get("Error", {})
    code = str(error.get("Code") or "")
    if code in _REFUSED:
        return _Problem(f"the store refused the credentials ({_REFUSED[code]})",
                        _CHECK_CREDENTIALS, True)
    if code in _DENIED:
        return _Problem("the store refused access with these credentials (access denied)",
                        f"{_CHECK_CREDENTIALS}, and what they may do in this bucket")
    if code == "NoSuchBucket":
        bucket = error.get("BucketName")
        return _Problem(f"bucket {bucket!r} does not exist" if bucket else
                        "the bucket does not exist",
                        "check the bucket name and the endpoint (AWS_ENDPOINT_URL_S3)")
    return None


def _local_problem(exc: BaseException) -> _Problem:
    if isinstance(exc, PermissionError):
        return _Problem(f"permission denied ({exc})", "check its permissions")
    if isinstance(exc, FileNotFoundError):
        return _Problem("it does not exist")
    if isinstance(exc, OSError):
        return _Problem(str(exc) or type(exc).__name__)
    return _Problem(f"{type(exc).__name__}: {exc}")
