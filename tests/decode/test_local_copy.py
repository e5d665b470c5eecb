"""The spill cache: S3 objects are fetched once per worker for consecutive units,
refetched when their version changes, and never kept beyond the cache's bounds."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.decode.local_copy import SpillCache
from tests.conftest import S3Server


def _put(server: S3Server, bucket: str, name: str, data: bytes) -> str:
    server.filesystem().pipe_file(f"{bucket}/{name}", data)
    return f"s3://{bucket}/{name}"


def test_same_object_is_spilled_once_and_evicted_beyond_the_bound(s3_server: S3Server,
                                                                    s3_bucket: str):
    first = _put(s3_server, s3_bucket, "a.mp4", b"a" * 1000)
    second = _put(s3_server, s3_bucket, "b.mp4", b"b" * 1000)
    cache = SpillCache(max_objects=1)
    with cache.path(first, "v1", None) as path_a:
        assert Path(path_a).read_bytes() == b"a" * 1000
    with cache.path(first, "v1", None) as again:
        assert again == path_a  # no second download
    with cache.path(second, "v1", None) as path_b:
        assert Path(path_b).read_bytes() == b"b" * 1000
    assert not os.path.exists(path_a)  # evicted: one object at most
    cache.clear()
    assert not os.path.exists(path_b)


def test_a_new_version_is_fetched_again(s3_server: S3Server, s3_bucket: str):
    uri = _put(s3_server, s3_bucket, "c.mp4", b"old")
    cache = SpillCache()
    with cache.path(uri, "etag-1", None) as old:
        assert Path(old).read_bytes() == b"old"
    _put(s3_server, s3_bucket, "c.mp4", b"new content")
    with cache.path(uri, "etag-2", None) as new:
        assert Path(new).read_bytes() == b"new content"
    cache.clear()
