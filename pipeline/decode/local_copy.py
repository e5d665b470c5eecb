"""Give decoders a local path: decord needs one (on a file-like object it reads
the whole object into memory), so objects are spilled to a temp file first."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from pipeline.storage import StorageOptions, filesystem, fs_path, is_remote

_CHUNK_BYTES = 8 << 20  # streaming copy: memory stays at one chunk per worker


@contextlib.contextmanager
def local_path(uri: str, options: StorageOptions | None = None) -> Iterator[str]:
    """Yield a local path holding `uri`'s bytes; a temp copy is deleted on exit.

    Disk use is one object per concurrently decoding worker.
    """
    if not is_remote(uri):
        yield uri
        return
    suffix = os.path.splitext(uri)[1][:8]
    fd, tmp = tempfile.mkstemp(prefix="vidlake-", suffix=suffix)
    try:
        fs = filesystem(uri, options)
        with os.fdopen(fd, "wb") as out, fs.open(fs_path(uri), "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK_BYTES)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
