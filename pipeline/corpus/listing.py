"""List a SOURCE (directory, file:// URL, s3:// prefix or manifest) into VideoRefs."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator
from typing import Any

from pipeline.corpus.manifest import is_manifest, manifest_refs
from pipeline.corpus.object_pages import can_page, object_pages
from pipeline.corpus.video_ref import VideoRef, ref_of_info
from pipeline.errors import StorageError
from pipeline.storage import canonical_uri, filesystem, fs_path, is_remote
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors, storage_problem

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".divx", ".mpg", ".mpeg",
     ".m2v", ".vob", ".ts", ".m2ts", ".mts", ".flv", ".f4v", ".wmv", ".asf", ".3gp", ".3g2",
     ".ogv", ".mxf", ".dv", ".y4m"}
)
PAGE_SIZE = 1000  # videos handed on at a time (an S3 LIST page holds 1000 keys)
LINK_ETAG = "symlink:"  # etag of a dangling link: symlink:broken, symlink:loop


def _has_video_extension(path: str) -> bool:
    dot = path.rfind(".")
    return dot >= 0 and path[dot:].lower() in VIDEO_EXTENSIONS


def _with_scheme(source: str, path: str) -> str:
    return f"s3://{path}" if source.startswith(("s3://", "s3a://")) else path


def _walk_local(folder: str) -> Iterator[VideoRef]:
    """Every video under a local folder, depth first with each folder's entries
    in name order: one scandir per folder and one stat per video-named entry,
    without fsspec's dict per entry (a million-file tree lists several times
    faster). The refs equal those `fs.find` gives: the same uris, sizes and
    float-mtime etags, links resolved by `_linked`. Memory: the folders on the
    path being walked, not the tree."""
    todo: list[Iterator[os.DirEntry[str]]] = [_entries(os.path.abspath(folder))]
    while todo:
        entry = next(todo[-1], None)
        if entry is None:
            todo.pop()
        elif entry.is_dir(follow_symlinks=False):
            todo.append(_entries(entry.path))
        elif not _has_video_extension(entry.name):
            continue
        elif entry.is_symlink():
            yield _linked(entry.path)
        elif entry.is_file(follow_symlinks=False):
            found = entry.stat(follow_symlinks=False)
            yield VideoRef(uri=entry.path, size_bytes=found.st_size,
                           etag=f"mtime:{int(found.st_mtime * 1e9)}")


def _entries(folder: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as found:
        entries = sorted(found, key=lambda entry: entry.name)
    return iter(entries)


def _tree_refs(source: str, options: StorageOptions) -> Iterator[VideoRef]:
    """The videos under a folder or prefix (or SOURCE itself, one video), as
    listing goes; StorageError when it cannot be listed or does not exist."""
    try:
        if not is_remote(source) and os.path.isdir(fs_path(source)):
            yield from _walk_local(fs_path(source))
            return
        fs = filesystem(source, options)
        root = fs_path(source)
        if fs.isfile(root):
            yield ref_of_info(_with_scheme(source, root), fs.info(root))
            return
        listed = 0
        for info in _objects(fs, root):
            listed += 1
            if _has_video_extension(info["name"]) and (
                    info.get("type", "file") == "file" or info.get("islink")):
                yield (ref_of_info(_with_scheme(source, info["name"]), info)
                       if info.get("type", "file") == "file" else _linked(info["name"]))
        if not listed and not fs.exists(root):
            raise StorageError(f"SOURCE {source!r} does not exist")
    except storage_errors() as exc:
        raise storage_problem(exc, f"cannot list SOURCE {source!r}") from None


def _objects(fs: Any, root: str) -> Iterator[dict[str, Any]]:
    """Every object under `root`: page by page where the store pages (S3),
    else what `fs.find` gathers."""
    if can_page(fs):
        for page in object_pages(fs, root):
            yield from page
        return
    for path, info in sorted(fs.find(root, detail=True).items()):
        yield {**info, "name": path}


def _linked(path: str) -> VideoRef:
    """A local symbolic link with a video's name: its target's size and mtime, or,
    when it leads nowhere (broken, a loop, not a file), a ref whose etag says
    why, so that the run records an error row instead of dropping it
    (`probe_video` turns the etag into the reason)."""
    try:
        target = os.stat(path)
    except FileNotFoundError:
        problem = "broken"
    except OSError as exc:
        problem = "loop" if exc.errno == errno.ELOOP else "unreadable"
    else:
        if stat.S_ISREG(target.st_mode):
            return VideoRef(uri=canonical_uri(path), size_bytes=target.st_size,
                            etag=f"mtime:{target.st_mtime_ns}")
        problem = "not-a-file"
    return VideoRef(uri=canonical_uri(path), size_bytes=0, etag=f"{LINK_ETAG}{problem}")


def iter_corpus(source: str, options: StorageOptions | None = None,
                page_size: int = PAGE_SIZE) -> Iterator[list[VideoRef]]:
    """The videos of `source`, `page_size` at a time, as listing goes: a local
    tree depth first in name order, an S3 prefix in key order (a LIST per
    page), a manifest in row order, each uri once. Only a page is in memory
    (and, for a manifest, a hash per row to drop repeats).

    Raises StorageError when the source cannot be reached or does not exist,
    ConfigError for a manifest without a uri column.
    """
    options = options or StorageOptions()
    refs = manifest_refs(source, options) if is_manifest(source) else _tree_refs(source, options)
    page: list[VideoRef] = []
    for ref in refs:
        page.append(ref)
        if len(page) >= page_size:
            yield page
            page = []
    if page:
        yield page


def list_corpus(source: str, options: StorageOptions | None = None) -> list[VideoRef]:
    """All videos of `source`, sorted by uri, deduplicated (in memory: for small
    corpora and labelled training sets; a run streams `iter_corpus`).

    Raises StorageError when the source cannot be reached or does not exist.
    """
    unique = {ref.uri: ref for page in iter_corpus(source, options) for ref in page}
    log.info("listed %d videos in %s%s", len(unique), source,
             " (object storage)" if is_remote(source) else "")
    return sorted(unique.values())
