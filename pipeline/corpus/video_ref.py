"""A video's identity: where it is and which version of its content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pipeline.storage import canonical_uri


@dataclass(frozen=True, order=True)
class VideoRef:
    """One video of the corpus.

    `etag` is the object's ETag on S3, or `mtime:<ns>` for local files; with
    `size_bytes` it tells a changed video from an unchanged one across runs.
    """

    uri: str
    size_bytes: int
    etag: str

    @property
    def content_key(self) -> str:
        """Short stable hash of (uri, size, etag): changes when the content does."""
        raw = f"{self.uri}\0{self.size_bytes}\0{self.etag}".encode()
        return hashlib.sha1(raw).hexdigest()[:16]


def _etag_of(info: dict[str, Any]) -> str:
    """ETag for objects, mtime in nanoseconds for local files."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    if mtime is not None and hasattr(mtime, "timestamp"):
        return f"mtime:{int(mtime.timestamp() * 1e9)}"
    return f"mtime:{int(float(mtime or 0) * 1e9)}"


def ref_of_info(uri: str, info: dict[str, Any]) -> VideoRef:
    """The ref of `uri` from its fsspec info dict (size, ETag or mtime)."""
    return VideoRef(uri=canonical_uri(uri), size_bytes=int(info.get("size") or 0),
                    etag=_etag_of(info))
