"""Labelled videos: a manifest (Parquet or CSV: uri, label[, split]) or a
folder-per-class tree (root/<label>/*.mp4), local or on S3.

Videos without a split are assigned one deterministically from a hash of
their URI, so the same corpus always gives the same train/val sets,
whatever order it is listed in and whichever machine lists it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipeline.corpus.listing import VIDEO_EXTENSIONS, list_corpus
from pipeline.corpus.manifest import is_manifest, manifest_uri, read_manifest
from pipeline.corpus.video_ref import VideoRef
from pipeline.errors import ConfigError
from pipeline.storage import canonical_uri
from pipeline.storage_options import StorageOptions

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "val", "eval": "val"}


@dataclass(frozen=True)
class LabelledVideo:
    """One labelled video; `uri` is canonical (s3://... or an absolute path)."""

    uri: str
    label: str
    split: str  # "train" or "val"


def hashed_split(key: str, val_fraction: float) -> str:
    """'val' for about `val_fraction` of keys, decided by the key's sha1 alone.

    The key is the video's path relative to SOURCE (folders) or its URI as the
    manifest writes it: the same corpus gets the same split wherever it is
    (another checkout, a copy on S3)."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if bucket < val_fraction else "train"


def _split_of(value: object, uri: str, val_fraction: float) -> str:
    """The manifest's split, else the hashed split of `uri` (as written)."""
    if value is None or str(value).strip() == "":
        return hashed_split(uri, val_fraction)
    split = SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        raise ConfigError(f"unknown split {value!r} for {uri}; use train or val")
    return split


def _from_manifest(source: str, storage: StorageOptions,
                   val_fraction: float) -> list[LabelledVideo]:
    videos = []
    for row in read_manifest(source, storage, columns=("uri", "label")):
        if not row.get("uri") or row.get("label") is None:
            continue
        written = str(row["uri"])
        videos.append(LabelledVideo(manifest_uri(written, source), str(row["label"]),
                                    _split_of(row.get("split"), written, val_fraction)))
    return videos


def _relative(ref: VideoRef, root: str) -> str:
    """The video's path under `root` ("" when it is not under it)."""
    prefix = canonical_uri(root).rstrip("/") + "/"
    return ref.uri[len(prefix):] if ref.uri.startswith(prefix) else ""


def _from_folders(source: str, storage: StorageOptions,
                  val_fraction: float) -> list[LabelledVideo]:
    """Label = the first folder under SOURCE; videos directly in it have none."""
    videos = []
    for ref in list_corpus(source, storage):
        relative = _relative(ref, source)
        if "/" in relative:
            videos.append(LabelledVideo(ref.uri, relative.split("/", 1)[0],
                                        hashed_split(relative, val_fraction)))
    return videos


def load_labelled(source: str, storage: StorageOptions | None = None,
                  val_fraction: float = 0.2) -> list[LabelledVideo]:
    """Every labelled video of `source`, sorted by URI; ConfigError when there
    is nothing to learn from (no videos, or a single class)."""
    storage = storage or StorageOptions()
    videos = (_from_manifest(source, storage, val_fraction) if is_manifest(source)
              else _from_folders(source, storage, val_fraction))
    if not videos:
        raise ConfigError(f"no labelled videos in {source!r}: expected a manifest (uri, label"
                          f"[, split]) or folders per class holding "
                          f"{'/'.join(sorted(VIDEO_EXTENSIONS)[:4])}... files")
    return sorted({v.uri: v for v in videos}.values(), key=lambda v: v.uri)


def label_names(videos: list[LabelledVideo]) -> list[str]:
    """The classes, sorted: class index i is label_names[i]."""
    return sorted({v.label for v in videos})


def truth_by_uri(videos: list[LabelledVideo]) -> dict[str, str]:
    return {v.uri: v.label for v in videos}
