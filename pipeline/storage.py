"""Resolve URIs to fsspec filesystems, with credentials from the AWS environment.

`s3://` URIs use s3fs, which reads the standard AWS variables
(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION...);
`--storage-option key=value` pairs override them. Everything else is local.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec

from pipeline.errors import ConfigError

# Keys whose values must never reach logs, Parquet metadata or run records.
_SECRET_KEY = re.compile(r"(secret|token|password|key_id|access_key|credential|^key$)",
                         re.IGNORECASE)


@dataclass(frozen=True)
class StorageOptions:
    """Extra fsspec options for object storage (endpoint, credentials...).

    Stored as a tuple of pairs so the dataclass stays hashable and picklable.
    """

    pairs: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, items: list[str] | None) -> StorageOptions:
        """Parse `key=value` strings from `--storage-option`."""
        pairs = []
        for item in items or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--storage-option expects key=value, got {item!r}")
            pairs.append((key.strip(), value))
        return cls(tuple(pairs))

    def as_dict(self) -> dict[str, str]:
        return dict(self.pairs)

    def redacted(self) -> dict[str, str]:
        """The options with secret values replaced, safe for logs and run records."""
        return {k: ("***" if _SECRET_KEY.search(k) else v) for k, v in self.pairs}


def storage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "storage is unreachable or refuses us": OSError, and
    botocore's own errors (EndpointConnectionError is not an OSError)."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # no s3fs installed: only local storage
        return (OSError,)
    return (OSError, BotoCoreError)


def is_remote(uri: str) -> bool:
    """True for object-storage URIs (anything with a scheme other than file)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    return scheme not in ("", "file")


def strip_file_scheme(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def _s3_kwargs(options: Mapping[str, str]) -> dict[str, Any]:
    """s3fs keyword arguments: environment endpoint first, explicit options win."""
    kwargs: dict[str, Any] = {}
    client_kwargs: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    for key, value in options.items():
        if key in ("endpoint_url", "region_name"):
            client_kwargs[key] = value
        elif key in ("key", "secret", "token", "profile"):
            kwargs[key] = value
        elif key == "anon":
            kwargs["anon"] = value.lower() in ("1", "true", "yes")
        else:
            kwargs[key] = value
    if client_kwargs:
        kwargs["client_kwargs"] = client_kwargs
    # A bounded retry budget: botocore's default keeps retrying an unreachable
    # endpoint for minutes, which defeats failing fast on systemic errors.
    kwargs.setdefault("config_kwargs", {"connect_timeout": 5, "read_timeout": 60,
                                         "retries": {"max_attempts": 3, "mode": "standard"}})
    return kwargs


def filesystem(uri: str, options: StorageOptions | None = None) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem for `uri`. Cheap to call: fsspec caches instances."""
    opts = options.as_dict() if options else {}
    if uri.startswith("s3://") or uri.startswith("s3a://"):
        return fsspec.filesystem("s3", **_s3_kwargs(opts))
    if is_remote(uri):
        return fsspec.filesystem(uri.split("://", 1)[0], **opts)
    return fsspec.filesystem("file")


def fs_path(uri: str) -> str:
    """The path fsspec expects for `uri` (no scheme for s3, absolute for local)."""
    if uri.startswith("s3://"):
        return uri[len("s3://") :]
    if uri.startswith("s3a://"):
        return uri[len("s3a://") :]
    if is_remote(uri):
        return uri
    return os.path.abspath(strip_file_scheme(uri))


def join(base: str, *parts: str) -> str:
    """Join URI parts with '/', keeping the scheme of `base`."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def canonical_uri(uri: str) -> str:
    """The stable form of a URI used as a video's identity: s3://... or an absolute path."""
    if uri.startswith("s3a://"):
        return "s3://" + uri[len("s3a://") :]
    if is_remote(uri):
        return uri
    return os.path.abspath(strip_file_scheme(uri))


def write_local_atomic(path: str, data: bytes) -> None:
    """Write a local file so readers see the old file or the whole new one."""
    import uuid

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_atomic(uri: str, data: bytes, options: StorageOptions | None = None) -> None:
    """Write `data` to `uri` whole or not at all: one PUT on object storage."""
    if is_remote(uri):
        filesystem(uri, options).pipe_file(fs_path(uri), data)
    else:
        write_local_atomic(fs_path(uri), data)
