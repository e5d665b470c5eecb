"""Give decoders a local path: decord needs one (on a file-like object it reads
the whole object into memory), so objects are spilled to a temp file first.

Spilled objects stay in a small per-process cache (a few objects, bounded in
bytes): the units of a long video usually reach the same worker one after
another, and each must not download the whole object again.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator

from pipeline.storage import filesystem, fs_path, is_remote
from pipeline.storage_options import StorageOptions
from pipeline.storage_retry import with_retries

_CHUNK_BYTES = 8 << 20  # streaming copy: memory stays at one chunk per worker
_CACHE_OBJECTS = 2  # spilled objects kept per worker process
_CACHE_BYTES = 4 << 30  # ...and at most this much disk


class SpillCache:
    """Local copies of remote objects, keyed by (uri, version), least recently used first."""

    def __init__(self, max_objects: int = _CACHE_OBJECTS, max_bytes: int = _CACHE_BYTES) -> None:
        self.max_objects = max_objects
        self.max_bytes = max_bytes
        self._paths: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._in_use: dict[str, int] = {}
        self.fetched_bytes = 0  # copied from storage by this process, ever (stage metrics)
        self.fetch_s = 0.0

    def _evict(self) -> None:
        def size() -> int:
            return sum(os.path.getsize(p) for p in self._paths.values() if os.path.exists(p))

        while self._paths and (len(self._paths) > self.max_objects or size() > self.max_bytes):
            key = next((k for k, p in self._paths.items() if not self._in_use.get(p)), None)
            if key is None:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._paths.pop(key))

    def _spill(self, uri: str, options: StorageOptions | None) -> str:
        """Copy `uri` to a temp file; transient store errors are retried and then
        raise StorageError (the store is down: systemic, not this video's fault)."""
        start = time.perf_counter()
        path = with_retries(lambda: self._copy(uri, options), f"fetch {uri}")
        self.fetch_s += time.perf_counter() - start
        self.fetched_bytes += os.path.getsize(path)
        return path

    def _copy(self, uri: str, options: StorageOptions | None) -> str:
        suffix = os.path.splitext(uri)[1][:8]
        fd, tmp = tempfile.mkstemp(prefix="vidlake-", suffix=suffix)
        copied = False
        try:
            fs = filesystem(uri, options)
            with os.fdopen(fd, "wb") as out, fs.open(fs_path(uri), "rb") as src:
                shutil.copyfileobj(src, out, _CHUNK_BYTES)
            copied = True
        finally:
            if not copied:  # an interrupted copy leaves no partial file behind
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return tmp

    @contextlib.contextmanager
    def path(self, uri: str, version: str, options: StorageOptions | None) -> Iterator[str]:
        key = (uri, version)
        path = self._paths.pop(key, None)
        if path is None or not os.path.exists(path):
            path = self._spill(uri, options)
        self._paths[key] = path  # most recently used last
        self._in_use[path] = self._in_use.get(path, 0) + 1
        try:
            self._evict()
            yield path
        finally:
            self._in_use[path] -= 1
            self._evict()

    def clear(self) -> None:
        for path in self._paths.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._paths.clear()


_CACHE = SpillCache()
atexit.register(_CACHE.clear)  # a killed worker leaves at most its cached objects behind


def fetched() -> tuple[int, float]:
    """(bytes, seconds) this process has copied from storage so far; a caller
    measures a call by the difference."""
    return _CACHE.fetched_bytes, _CACHE.fetch_s


@contextlib.contextmanager
def local_path(uri: str, options: StorageOptions | None = None,
               version: str = "") -> Iterator[str]:
    """Yield a local path holding `uri`'s bytes (`version`: its etag, so a changed
    object is fetched again). Disk use is bounded per worker process."""
    if not is_remote(uri):
        yield uri
        return
    with _CACHE.path(uri, version, options) as path:
        yield path
