"""Resolve URIs to fsspec filesystems, with credentials from the AWS environment.

`s3://` URIs use s3fs, which reads the standard AWS variables
(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION...);
`--storage-option key=value` pairs override them (pipeline.storage_options).
Everything else is local. What a storage error means, and how to say so, is
pipeline.storage_problems.
"""

from __future__ import annotations

import contextlib
import os

import fsspec

from pipeline.storage_options import StorageOptions, s3_kwargs


def is_remote(uri: str) -> bool:
    """True for object-storage URIs (anything with a scheme other than file)."""
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    return scheme not in ("", "file")


def strip_file_scheme(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


def filesystem(uri: str, options: StorageOptions | None = None) -> fsspec.AbstractFileSystem:
    """The fsspec filesystem for `uri`. Cheap to call: fsspec caches instances."""
    opts = options.as_dict() if options else {}
    if uri.startswith("s3://") or uri.startswith("s3a://"):
        return fsspec.filesystem("s3", **s3_kwargs(opts))
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
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:  # a full disk, a folder gone: no half-written temp file left behind
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(uri: str, data: bytes, options: StorageOptions | None = None) -> None:
    """Write `data` to `uri` whole or not at all: one PUT on object storage."""
    if is_remote(uri):
        filesystem(uri, options).pipe_file(fs_path(uri), data)
    else:
        write_local_atomic(fs_path(uri), data)
