"""Listing streams: SOURCE comes a page at a time, read lazily, and the run's
listing thread stays a bounded number of pages ahead of what is used."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.corpus.listing import iter_corpus, list_corpus
from pipeline.corpus.video_ref import VideoRef
from pipeline.errors import StorageError
from pipeline.runner.listing_feed import ListingFeed


def _tree(root: Path, folders: str, per_folder: int) -> None:
    for folder in folders:
        (root / folder / "deeper").mkdir(parents=True)
        for index in range(per_folder):
            (root / folder / f"v{index:02d}.mp4").write_bytes(b"x" * (index + 1))
        (root / folder / "deeper" / "clip.mkv").write_bytes(b"y")
        (root / folder / "notes.txt").write_bytes(b"not a video")


def test_a_tree_comes_in_pages_in_name_order_and_equals_the_whole_listing(tmp_path: Path):
    _tree(tmp_path, "abc", 6)
    pages = list(iter_corpus(str(tmp_path), page_size=4))
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 1]  # 3 x (6 + 1) videos
    flat = [ref for page in pages for ref in page]
    assert flat == sorted(flat) == list_corpus(str(tmp_path))


def test_a_tree_is_walked_lazily(tmp_path: Path):
    """A folder is read only when the walk gets to it: a video added to a later
    folder after the first page was taken is listed."""
    _tree(tmp_path, "abc", 6)
    pages = iter_corpus(str(tmp_path), page_size=3)
    first = next(pages)
    assert all("/a/" in ref.uri for ref in first)
    (tmp_path / "c" / "late.mp4").write_bytes(b"z")
    rest = [Path(ref.uri).relative_to(tmp_path) for page in pages for ref in page]
    assert Path("c/late.mp4") in rest and len(first) + len(rest) == 22


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_manifest_streams_in_row_order_once_per_uri(tmp_path: Path, kind: str):
    videos = tmp_path / "videos"
    videos.mkdir()
    names = [f"v{index:04d}.mp4" for index in range(2500)]
    for name in names[::250]:  # some exist, the rest are missing: every row is a ref
        (videos / name).write_bytes(b"v")
    rows = [f"videos/{name}" for name in reversed(names)] + ["videos/v0001.mp4", None]
    manifest = tmp_path / f"manifest.{kind}"
    if kind == "csv":
        manifest.write_text("uri,label\n" + "".join(f"{r or ''},x\n" for r in rows))
    else:
        pq.write_table(pa.table({"uri": rows, "label": ["x"] * len(rows)}), manifest)
    pages = list(iter_corpus(str(manifest), page_size=1000))
    assert [len(p) for p in pages] == [1000, 1000, 500]
    flat = [ref for page in pages for ref in page]
    assert [Path(r.uri).name for r in flat] == list(reversed(names))  # row order, no repeat
    present = {Path(r.uri).name for r in flat if r.etag != "missing"}
    assert present == set(names[::250])


def _refs(count: int) -> list[VideoRef]:
    return [VideoRef(f"/v/{index}.mp4", index, "e") for index in range(count)]


def test_the_listing_thread_stays_a_bounded_number_of_pages_ahead():
    """Whenever the thread lists a page, at most `depth` pages are queued and
    not yet taken (plus the one it is listing): memory is bounded by the
    queue, not by SOURCE."""
    depth, size = 3, 10
    taken = 0
    ahead: list[int] = []
    lock = threading.Lock()

    def pages() -> Iterator[list[VideoRef]]:
        refs = _refs(40 * size)
        for start in range(0, len(refs), size):
            with lock:
                ahead.append(start // size - taken)  # pages listed before this, not taken
            yield refs[start:start + size]

    with ListingFeed(pages, "src", depth=depth) as feed:
        for index, _ in enumerate(feed):
            if index % size == size - 1:
                with lock:
                    taken += 1
    assert feed.listed == 400 and feed.finished
    assert max(ahead) <= depth + 1, ahead


def test_a_listing_error_comes_out_where_the_listing_is_used():
    def pages() -> Iterator[list[VideoRef]]:
        yield _refs(5)
        raise StorageError("SOURCE 's3://b/x' does not exist")

    with ListingFeed(pages, "src") as feed:
        seen = []
        with pytest.raises(StorageError, match="does not exist"):
            for ref in feed:
                seen.append(ref)
    assert len(seen) == 5 and feed.finished


def test_a_closed_feed_stops_listing():
    """Closing the feed (the run stopped) stops the thread once its current
    put gives up: it never lists the whole SOURCE for nobody."""
    listed = []

    def pages() -> Iterator[list[VideoRef]]:
        for index in range(10_000):
            listed.append(index)
            yield _refs(1)

    feed = ListingFeed(pages, "src", depth=2)
    next(iter(feed))
    feed.close()
    feed._thread.join(timeout=30)
    assert not feed._thread.is_alive() and len(listed) < 10
