"""A video's identity: where it is and which version of its content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


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
