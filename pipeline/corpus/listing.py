"""List a SOURCE (directory, file:// URL, s3:// prefix or manifest) into VideoRefs."""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import Any

from pipeline.corpus.video_ref import VideoRef
from pipeline.errors import ConfigError, StorageError
from pipeline.storage import canonical_uri, filesystem, fs_path, is_remote
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors, storage_problem

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".divx", ".mpg", ".mpeg",
     ".m2v", ".vob", ".ts", ".m2ts", ".mts", ".flv", ".f4v", ".wmv", ".asf", ".3gp", ".3g2",
     ".ogv", ".mxf", ".dv", ".y4m"}
)
MANIFEST_EXTENSIONS = (".parquet", ".csv")
LINK_ETAG = "symlink:"  # etag of a dangling link: symlink:broken, symlink:loop


def _has_video_extension(path: str) -> bool:
    dot = path.rfind(".")
    return dot >= 0 and path[dot:].lower() in VIDEO_EXTENSIONS


def _etag_of(info: dict[str, Any]) -> str:
    """ETag for objects, mtime in nanoseconds for local files."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return str(etag).strip('"')
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    if mtime is not None and hasattr(mtime, "timestamp"):
        return f"mtime:{int(mtime.timestamp() * 1e9)}"
    return f"mtime:{int(float(mtime or 0) * 1e9)}"


def _ref(uri: str, info: dict[str, Any]) -> VideoRef:
    return VideoRef(uri=canonical_uri(uri), size_bytes=int(info.get("size") or 0),
                    etag=_etag_of(info))


def _with_scheme(source: str, path: str) -> str:
    return f"s3://{path}" if source.startswith(("s3://", "s3a://")) else path


def _walk_local(folder: str) -> list[VideoRef]:
    """Every video under a local folder: one scandir per folder and one stat per
    video-named entry, without fsspec's dict per entry (a million-file tree
    lists several times faster). The refs equal those `fs.find` gives: the
    same uris, sizes and float-mtime etags, links resolved by `_linked`."""
    refs: list[VideoRef] = []
    todo = [os.path.abspath(folder)]
    while todo:
        with os.scandir(todo.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
                elif not _has_video_extension(entry.name):
                    continue
                elif entry.is_symlink():
                    refs.append(_linked(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found = entry.stat(follow_symlinks=False)
                    refs.append(VideoRef(uri=entry.path, size_bytes=found.st_size,
                                         etag=f"mtime:{int(found.st_mtime * 1e9)}"))
    return refs


def _list_tree(source: str, options: StorageOptions) -> list[VideoRef]:
    if not is_remote(source) and os.path.isdir(fs_path(source)):
        try:
            return _walk_local(fs_path(source))
        except OSError as exc:
            raise storage_problem(exc, f"cannot list SOURCE {source!r}") from None
    fs = filesystem(source, options)
    root = fs_path(source)
    try:
        if fs.isfile(root):
            return [_ref(_with_scheme(source, root), fs.info(root))]
        found = fs.find(root, detail=True)
        if not found and not fs.exists(root):
            raise StorageError(f"SOURCE {source!r} does not exist")
    except storage_errors() as exc:
        raise storage_problem(exc, f"cannot list SOURCE {source!r}") from None
    return [_ref(_with_scheme(source, path), info) if info.get("type", "file") == "file"
            else _linked(path)
            for path, info in sorted(found.items())
            if _has_video_extension(path)
            and (info.get("type", "file") == "file" or info.get("islink"))]


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


def read_manifest(source: str, options: StorageOptions, columns: tuple[str, ...] = ("uri",),
                  ) -> list[dict[str, Any]]:
    """The rows of a Parquet or CSV manifest; ConfigError without `columns`,
    StorageError when it cannot be read."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        with filesystem(source, options).open(fs_path(source), "rb") as handle:
            table = (pq.read_table(handle) if source.lower().endswith(".parquet")
                     else pacsv.read_csv(handle))
    except storage_errors() as exc:
        raise storage_problem(exc, f"cannot read manifest {source!r}") from None
    missing = set(columns) - set(table.column_names)
    if missing:
        raise ConfigError(f"manifest {source!r} lacks column(s) {sorted(missing)} "
                          f"(columns: {table.column_names})")
    return table.to_pylist()


def _read_manifest_uris(source: str, options: StorageOptions) -> list[str]:
    return [manifest_uri(str(row["uri"]), source) for row in read_manifest(source, options)
            if row["uri"]]


def manifest_uri(uri: str, manifest: str) -> str:
    """The canonical URI of a manifest entry: relative entries are relative to
    the manifest's folder (so a manifest travels with its videos)."""
    if "://" in uri or uri.startswith("/"):
        return canonical_uri(uri)
    base = manifest.rsplit("/", 1)[0] if "/" in manifest else "."
    return canonical_uri(f"{base}/{uri}")


def _list_manifest(source: str, options: StorageOptions) -> list[VideoRef]:
    """Every manifest row is accounted for: a missing object still gets a ref (size 0),
    so that the run records it as an error instead of dropping it silently. Any
    other storage error (credentials, endpoint, access) is systemic: StorageError."""
    refs = []
    for uri in _read_manifest_uris(source, options):
        fs = filesystem(uri, options)
        try:
            refs.append(_ref(uri, fs.info(fs_path(uri))))
        except FileNotFoundError:
            refs.append(VideoRef(uri=canonical_uri(uri), size_bytes=0, etag="missing"))
        except storage_errors() as exc:
            raise storage_problem(exc, f"cannot read {uri!r}, listed in manifest "
                                       f"{source!r}") from None
    return refs


def is_manifest(source: str) -> bool:
    return source.lower().endswith(MANIFEST_EXTENSIONS)


def list_corpus(source: str, options: StorageOptions | None = None) -> list[VideoRef]:
    """All videos of `source`, sorted by uri, deduplicated.

    Raises StorageError when the source cannot be reached or does not exist.
    """
    options = options or StorageOptions()
    refs = _list_manifest(source, options) if is_manifest(source) else _list_tree(source, options)
    unique = {ref.uri: ref for ref in refs}
    log.info("listed %d videos in %s%s", len(unique), source,
             " (object storage)" if is_remote(source) else "")
    return sorted(unique.values())
