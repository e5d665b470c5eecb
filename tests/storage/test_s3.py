"""Object storage: corpus, probe and decode straight from a SeaweedFS bucket,
and `vidlake label` / `vidlake query` end to end on s3:// URIs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from jobs import label
from pipeline.config import FrameSize
from pipeline.corpus.listing import list_corpus
from pipeline.decode.unit_decoder import DecodeSettings, decode_unit
from pipeline.plan.probe import probe_videos
from pipeline.plan.work_unit import WorkUnit
from tests.conftest import S3Server
from tests.lakes import assert_corpus_accounted, rows, table_counts
from tests.media import GOOD, expected_frame
from tests.procs import run_cli

NAMES = ("lossless.mkv", "av1.mp4", "empty.mp4", "text.mkv")


def upload(server: S3Server, media: Path, bucket: str, names: tuple[str, ...]) -> str:
    """Put media files under s3://BUCKET/videos/; returns that prefix."""
    fs = server.filesystem()
    for name in names:
        fs.put_file(str(media / name), f"{bucket}/videos/{name}")
    return f"s3://{bucket}/videos"


def test_listing_probe_and_exact_decode_from_s3(s3_server: S3Server, s3_bucket: str,
                                                media: Path):
    prefix = upload(s3_server, media, s3_bucket, NAMES)
    refs = list_corpus(prefix)
    assert [r.uri for r in refs] == sorted(f"{prefix}/{n}" for n in NAMES)
    for ref in refs:
        name = ref.uri.rsplit("/", 1)[-1]
        assert ref.size_bytes == (media / name).stat().st_size
        assert ref.etag and not ref.etag.startswith("mtime:")
    infos = {i.ref.uri.rsplit("/", 1)[-1]: i for i in probe_videos(refs)}
    assert infos["lossless.mkv"].n_frames == GOOD["lossless.mkv"].n_frames
    assert infos["av1.mp4"].codec == "av1"
    assert infos["empty.mp4"].error == "empty file (0 bytes)"
    assert infos["text.mkv"].error and not infos["text.mkv"].ok

    indices = (0, 17, 39)
    unit = WorkUnit("u", infos["lossless.mkv"].ref, 0, indices, 30.0)
    decoded = decode_unit(DecodeSettings(size=FrameSize(64, 64)), unit)
    assert decoded.ok and decoded.decoder == "decord", decoded.error
    for frame, index in zip(decoded.frames, indices, strict=True):
        np.testing.assert_array_equal(frame, expected_frame(index))


@pytest.mark.slow
def test_label_and_query_on_s3_end_to_end(s3_server: S3Server, s3_bucket: str, media: Path):
    source = upload(s3_server, media, s3_bucket, NAMES)
    lake = f"s3://{s3_bucket}/lake"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = run_cli("label", source, "--output", lake, "--sample", "uniform:3", "--size", "64",
                   env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 videos (2 ok, 2 failed)" in done.stdout

    shown = run_cli("query", lake, "select status || '=' || count(*) as c from videos "
                    "group by status order by 1", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "error=2" in shown.stdout and "ok=2" in shown.stdout

    assert_corpus_accounted(lake, NAMES, "uniform:3")
    before = table_counts(lake)
    assert before["runs"] == 1
    assert label.main([source, "--output", lake, "--sample", "uniform:3", "--size", "64"]) == 0
    assert table_counts(lake) == before  # the rerun found everything done on S3


def test_object_keys_with_spaces_unicode_and_symbols(s3_server: S3Server, s3_bucket: str,
                                                     media: Path, tmp_path: Path):
    """Keys as people name files: spaces, non-ASCII, '#', '+', upper-case
    extensions, nested folders; each is listed, decoded and recorded verbatim."""
    fs = s3_server.filesystem()
    keys = ["my video (1).mp4", "ünïcödé café.mkv", "take#2+final.mp4", "CAMERA/CLIP0001.MP4"]
    for key, name in zip(keys, ("h264.mp4", "lossless.mkv", "h264.mp4", "h264.mkv"),
                         strict=True):
        fs.put_file(str(media / name), f"{s3_bucket}/odd/{key}")
    prefix = f"s3://{s3_bucket}/odd"
    assert sorted(r.uri for r in list_corpus(prefix)) == sorted(f"{prefix}/{k}" for k in keys)
    lake = tmp_path / "lake"
    argv = [prefix, "--output", str(lake), "--engine", "sequential", "--sample", "uniform:2",
            "--size", "64"]
    assert label.main(argv) == 0
    got = rows(str(lake), "select uri, status, n_sampled from videos")
    assert sorted(r["uri"] for r in got) == sorted(f"{prefix}/{k}" for k in keys)
    assert {(r["status"], r["n_sampled"]) for r in got} == {("ok", 2)}


def test_a_prefix_is_listed_page_by_page_as_find_lists_it(s3_server: S3Server,
                                                          s3_bucket: str, tmp_path: Path):
    """The S3 listing pages through ListObjectsV2 (a page when asked for) and
    gives exactly the refs `fs.find` would: same uris, sizes and ETags, in key
    order, nothing from a sibling prefix (`videos2/`), no directory marker. A
    manifest of those objects, looked up a batch of HEADs at a time, gives
    the same refs, and a ref marked missing for an object that is not there."""
    from pipeline.corpus.listing import iter_corpus
    from pipeline.corpus.object_pages import object_pages
    from pipeline.corpus.video_ref import ref_of_info

    fs = s3_server.filesystem()
    keys = [f"videos/{folder}/clip{index:02d}.mp4" for folder in "ab" for index in range(6)]
    for index, key in enumerate(keys):
        fs.pipe_file(f"{s3_bucket}/{key}", b"v" * (index + 1))
    fs.pipe_file(f"{s3_bucket}/videos/notes.txt", b"not a video")
    fs.pipe_file(f"{s3_bucket}/videos2/elsewhere.mp4", b"sibling prefix")
    fs.pipe_file(f"{s3_bucket}/videos/empty-folder/", b"")
    prefix = f"s3://{s3_bucket}/videos"

    pages = list(object_pages(fs, f"{s3_bucket}/videos", page_size=5))
    assert len(pages) == 3 and all(len(p) <= 5 for p in pages)  # 5 keys a page, marker out
    names = [info["name"] for page in pages for info in page]
    assert names == sorted(f"{s3_bucket}/{k}" for k in [*keys, "videos/notes.txt"])

    streamed = [ref for page in iter_corpus(prefix, page_size=4) for ref in page]
    found = fs.find(f"{s3_bucket}/videos", detail=True)
    expected = [ref_of_info(f"s3://{path}", info) for path, info in sorted(found.items())
                if path.endswith(".mp4")]
    assert streamed == expected and len(streamed) == 12
    assert all(ref.etag and not ref.etag.startswith("mtime") for ref in streamed)

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("uri\n" + "".join(f"{r.uri}\n" for r in reversed(streamed))
                        + f"{prefix}/gone.mp4\n")
    listed = [ref for page in iter_corpus(str(manifest)) for ref in page]
    assert listed[:-1] == list(reversed(streamed))
    assert (listed[-1].etag, listed[-1].size_bytes) == ("missing", 0)
