"""An S3 prefix's objects a page at a time, and many objects' HEADs at once.

`fs.find` gathers a whole prefix before it returns: a million objects are a
million info dicts in memory before the first video is planned. Here each
ListObjectsV2 page (at most 1000 keys) is fetched when the one before it has
been used, through s3fs's own paginator (`_iterdir`), so the dicts are
s3fs's and the refs (sizes, ETags, content keys) equal those `find` gives.
A manifest names objects one by one: their HEADs go out a page at a time,
concurrently on s3fs's event loop, instead of one round trip each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fsspec.asyn import sync

INFO = dict[str, Any]


def can_page(fs: Any) -> bool:
    """True when `fs` is an s3fs filesystem with the paginator this module uses."""
    return hasattr(fs, "_iterdir") and hasattr(fs, "loop")


async def _take(items: AsyncIterator[INFO], count: int) -> list[INFO]:
    """Up to `count` items of `items` (fewer at its end); the iterator stays open."""
    taken: list[INFO] = []
    while len(taken) < count:
        try:
            taken.append(await items.__anext__())
        except StopAsyncIteration:
            break
    return taken


def object_pages(fs: Any, root: str, page_size: int = 1000) -> Iterator[list[INFO]]:
    """The info dicts of every object under `root` (`bucket/prefix`), in key
    order, `page_size` at a time; only a page is in memory. Directory markers
    (keys ending in '/') are left out. Storage errors propagate."""
    bucket, _, key = root.partition("/")
    prefix = f"{key.rstrip('/')}/" if key else ""
    items = fs._iterdir(bucket, delimiter="", prefix=prefix)
    try:
        while page := sync(fs.loop, _take, items, page_size):
            yield [info for info in page if not info["name"].endswith("/")]
    finally:
        sync(fs.loop, items.aclose)


def infos(fs: Any, paths: list[str]) -> list[INFO | BaseException]:
    """`fs.info` of each path, all at once on the filesystem's loop: an info
    dict, or the exception that path raised (FileNotFoundError for a missing
    object)."""

    async def gather() -> list[INFO | BaseException]:
        return await asyncio.gather(*(fs._info(path) for path in paths),
                                    return_exceptions=True)

    return sync(fs.loop, gather)
