"""list_corpus: every video of a folder, file or manifest, with a stable identity."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.corpus.listing import list_corpus
from pipeline.corpus.video_ref import ref_of_info
from pipeline.errors import ConfigError, StorageError
from pipeline.storage_options import StorageOptions
from tests.media import BAD, GOOD


def test_folder_lists_every_video_sorted_with_size_and_mtime(corpus):
    folder = corpus(*GOOD, *BAD)
    (folder / "notes.txt").write_text("not a video extension: ignored")
    (folder / "sub").mkdir()
    (folder / "sub" / "nested.MP4").write_bytes((folder / "h264.mp4").read_bytes())
    refs = list_corpus(str(folder))
    assert [r.uri for r in refs] == sorted(
        [str(folder / n) for n in [*GOOD, *BAD]] + [str(folder / "sub" / "nested.MP4")])
    for ref in refs:
        stat = os.stat(ref.uri)
        assert ref.size_bytes == stat.st_size
        assert ref.etag == f"mtime:{int(stat.st_mtime * 1e9)}"


def test_the_local_walk_gives_what_fsspec_find_gives(tmp_path: Path):
    """The fast local walk and the fsspec listing other stores use agree on every
    ref (so content keys do not change): nested folders, links to files, broken
    links, loops, a linked folder (not descended) and files that are not videos."""
    from pipeline.corpus import listing

    root = tmp_path / "videos"
    (root / "a" / "b").mkdir(parents=True)
    for rel in ("x.mp4", "a/y.MKV", "a/b/z.webm", "a/notes.txt", "a/b/clip.mp4.part"):
        (root / rel).write_bytes(rel.encode() * 7)
    (root / "link.mp4").symlink_to(root / "a" / "y.MKV")
    (root / "broken.mp4").symlink_to(root / "gone.mp4")
    (root / "loop.mov").symlink_to(root / "loop.mov")
    (root / "folder.mp4").mkdir()
    (root / "linked").symlink_to(root / "a", target_is_directory=True)
    walked = list(listing._walk_local(str(root)))
    fs = listing.filesystem(str(root), StorageOptions())
    found = fs.find(str(root), detail=True)
    expected = [ref_of_info(path, info) if info.get("type", "file") == "file"
                else listing._linked(path) for path, info in found.items()
                if listing._has_video_extension(path)
                and (info.get("type", "file") == "file" or info.get("islink"))]
    assert sorted(walked) == sorted(expected)
    assert {Path(r.uri).name for r in walked} == {"x.mp4", "y.MKV", "z.webm", "link.mp4",
                                                  "broken.mp4", "loop.mov"}
    assert list_corpus(str(root)) == sorted(walked)


def test_identity_is_stable_and_changes_with_content(corpus):
    folder = corpus("h264.mp4")
    (first,) = list_corpus(str(folder))
    (again,) = list_corpus(f"file://{folder}")
    assert again == first and again.content_key == first.content_key
    path = folder / "h264.mp4"
    path.write_bytes(path.read_bytes() + b"\0")
    (changed,) = list_corpus(str(folder))
    assert changed.content_key != first.content_key


def test_single_file_source(media: Path):
    (ref,) = list_corpus(str(media / "av1.mp4"))
    assert ref.uri == str(media / "av1.mp4")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_manifest_keeps_missing_objects(media: Path, tmp_path: Path, kind: str):
    uris = [str(media / "h264.mp4"), str(tmp_path / "gone.mp4"), str(media / "h264.mp4")]
    manifest = tmp_path / f"manifest.{kind}"
    table = pa.table({"uri": uris})
    if kind == "csv":
        manifest.write_text("uri\n" + "\n".join(uris) + "\n")
    else:
        pq.write_table(table, manifest)
    refs = {Path(r.uri).name: r for r in list_corpus(str(manifest))}
    assert sorted(refs) == ["gone.mp4", "h264.mp4"]  # deduplicated, nothing dropped
    assert refs["gone.mp4"].etag == "missing" and refs["gone.mp4"].size_bytes == 0
    assert refs["h264.mp4"].size_bytes == (media / "h264.mp4").stat().st_size


def test_manifest_without_uri_column_is_a_config_error(tmp_path: Path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path\n/x.mp4\n")
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['uri'\]"):
        list_corpus(str(manifest))


def test_missing_source_is_a_storage_error(tmp_path: Path):
    with pytest.raises(StorageError, match="does not exist"):
        list_corpus(str(tmp_path / "nowhere"))


def test_manifest_uris_are_relative_to_the_manifest(media: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "videos").mkdir()
    shutil.copy(media / "h264.mp4", tmp_path / "videos" / "h264.mp4")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("uri\nvideos/h264.mp4\n")
    monkeypatch.chdir("/")  # relative to the manifest, not to the working directory
    (ref,) = list_corpus(str(manifest))
    assert ref.uri == str(tmp_path / "videos" / "h264.mp4") and ref.etag != "missing"
