"""Manifests: a Parquet or CSV file whose `uri` column names the videos.

A run streams a manifest (`manifest_refs`): a batch of rows at a time, each
uri looked up (a stat locally; on S3 a batch's HEADs go out at once), so a
million-row manifest never sits in memory. Relative uris are relative to the
manifest's folder, so a manifest travels with its videos.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from pipeline.corpus.object_pages import can_page, infos
from pipeline.corpus.video_ref import VideoRef, ref_of_info
from pipeline.errors import ConfigError
from pipeline.storage import canonical_uri, filesystem, fs_path
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors, storage_problem

MANIFEST_EXTENSIONS = (".parquet", ".csv")
BATCH_ROWS = 1000


def is_manifest(source: str) -> bool:
    return source.lower().endswith(MANIFEST_EXTENSIONS)


def manifest_uri(uri: str, manifest: str) -> str:
    """The canonical URI of a manifest entry: relative entries are relative to
    the manifest's folder."""
    if "://" in uri or uri.startswith("/"):
        return canonical_uri(uri)
    base = manifest.rsplit("/", 1)[0] if "/" in manifest else "."
    return canonical_uri(f"{base}/{uri}")


def read_manifest(source: str, options: StorageOptions, columns: tuple[str, ...] = ("uri",),
                  ) -> list[dict[str, Any]]:
    """Every row of a manifest (small ones: labelled training sets); ConfigError
    without `columns`, StorageError when it cannot be read."""
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


def _uri_batches(handle: BinaryIO, source: str) -> Iterator[list[object]]:
    """The `uri` column, `BATCH_ROWS` rows at a time; ConfigError without it."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if source.lower().endswith(".parquet"):
        parquet = pq.ParquetFile(handle)
        if "uri" not in parquet.schema_arrow.names:
            raise ConfigError(f"manifest {source!r} lacks column(s) ['uri'] "
                              f"(columns: {parquet.schema_arrow.names})")
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=["uri"])
    else:
        try:
            batches = pacsv.open_csv(handle, convert_options=pacsv.ConvertOptions(
                include_columns=["uri"], column_types={"uri": pa.string()}))
        except KeyError:  # pyarrow's ArrowKeyError: no such column
            raise ConfigError(f"manifest {source!r} lacks column(s) ['uri']") from None
    for batch in batches:
        yield batch.column(0).to_pylist()


def _manifest_uris(source: str, options: StorageOptions) -> Iterator[list[str]]:
    """The manifest's uris a batch at a time, canonical, empty rows and repeats
    dropped (a 64-bit hash per row remembers what was seen)."""
    import pyarrow as pa

    seen: set[int] = set()
    try:
        with filesystem(source, options).open(fs_path(source), "rb") as handle:
            for batch in _uri_batches(handle, source):
                uris = []
                for written in batch:
                    if not written:
                        continue
                    uri = manifest_uri(str(written), source)
                    digest = int.from_bytes(hashlib.blake2b(uri.encode(), digest_size=8)
                                            .digest(), "little")
                    if digest not in seen:
                        seen.add(digest)
                        uris.append(uri)
                yield uris
    except storage_errors() as exc:
        raise storage_problem(exc, f"cannot read manifest {source!r}") from None
    except pa.ArrowInvalid as exc:
        raise ConfigError(f"manifest {source!r} cannot be read: {exc}") from None


def manifest_refs(source: str, options: StorageOptions) -> Iterator[VideoRef]:
    """A ref per manifest row, in row order. Every row is accounted for: a
    missing object still gets a ref (size 0, etag `missing`), so the run
    records it as an error instead of dropping it silently. Any other storage
    error (credentials, endpoint, access) is systemic: StorageError."""
    errors = storage_errors()
    for uris in _manifest_uris(source, options):
        if not uris:
            continue
        for uri, info in zip(uris, _infos(uris, options, errors), strict=True):
            if isinstance(info, FileNotFoundError):
                yield VideoRef(uri=uri, size_bytes=0, etag="missing")
            elif isinstance(info, errors):
                raise storage_problem(info, f"cannot read {uri!r}, listed in manifest "
                                            f"{source!r}") from None
            elif isinstance(info, BaseException):
                raise info
            else:
                yield ref_of_info(uri, info)


def _infos(uris: list[str], options: StorageOptions, errors: tuple[type[BaseException], ...],
           ) -> list[dict[str, Any] | BaseException]:
    """Each uri's info dict, or the storage error (one of `errors`) looking it
    up raised: a batch of S3 uris in one go, anything else (local files, a
    manifest mixing stores) one by one, one filesystem per scheme."""
    fs = filesystem(uris[0], options)
    if can_page(fs) and all(uri.startswith("s3://") for uri in uris):
        return infos(fs, [fs_path(uri) for uri in uris])
    stores: dict[str, Any] = {}
    found: list[dict[str, Any] | BaseException] = []
    for uri in uris:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in stores:
            stores[scheme] = filesystem(uri, options)
        try:
            found.append(stores[scheme].info(fs_path(uri)))
        except errors as exc:
            found.append(exc)
    return found
