"""`vidlake relabel` on an S3 corpus and lake (SeaweedFS, in-process Ray): only
what is missing runs, each model version gets its own partition, latest views
follow rollouts and rollbacks, failures are retried then quarantined, and
`--dry-run` predicts every run exactly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from jobs import relabel
from pipeline.models.checkpoint import save_checkpoint
from tests.conftest import S3Server
from tests.lakes import rows
from tests.media import GOOD

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

ARGS = ("--sample", "uniform:2", "--size", "64", "--max-frames-per-unit", "4")
FIRST = ("h264.mp4", "lossless.mkv", "wide.mp4", "empty.mp4")
LINE = re.compile(r"^(new|changed|new-version|retry|resume|quarantined)\s+(\S+)")


def _weights(tmp_path: Path, seed: int) -> str:
    """A 3-class mobilenet_v3_small checkpoint; each seed is a model version."""
    torch.manual_seed(seed)
    path = tmp_path / f"model-{seed}.pt"
    save_checkpoint(str(path), arch="mobilenet_v3_small",
                    state_dict=torchvision.models.mobilenet_v3_small(num_classes=3).state_dict(),
                    label_names=["red", "green", "blue"])
    return str(path)


def _dry_run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, str]:
    """uri -> reason, as `--dry-run` prints them."""
    capsys.readouterr()
    assert relabel.main([*argv, *ARGS, "--dry-run"]) == 0
    out = capsys.readouterr().out
    return {m.group(2): m.group(1) for line in out.splitlines() if (m := LINE.match(line))}


def _relabel(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run relabel; returns its run_id."""
    capsys.readouterr()
    assert relabel.main([*argv, *ARGS]) == 0
    (run_id,) = re.findall(r"^run (\S+) completed", capsys.readouterr().out, re.M)
    return run_id


def _processed(lake: str, run_id: str) -> set[str]:
    return {r["uri"] for r in rows(lake, f"select uri from videos where run_id = '{run_id}'")}


def _assert_once(lake: str) -> None:
    """No frame row twice for one (content, analysis version), and every done
    (content, analysis version) of a good video has exactly its sampled frames."""
    dupes = rows(lake, "select uri, content_key, analysis_key, frame_index, count(*) as n "
                       "from frame_labels group by all having n > 1")
    assert dupes == []
    done = rows(lake, "select uri, content_key, analysis_key, count(*) as n from frame_labels "
                      "group by all")
    assert all(r["n"] == 2 for r in done), done  # uniform:2 on every good video


def _upload(fs: Any, media: Path, bucket: str, *names: str, as_name: str | None = None) -> None:
    for name in names:
        fs.put_file(str(media / name), f"{bucket}/videos/{as_name or name}")


def test_incremental_versions_rollback_and_dry_run(s3_server: S3Server, s3_bucket: str,
                                                   media: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]):
    fs = s3_server.filesystem()
    source, lake = f"s3://{s3_bucket}/videos/", f"s3://{s3_bucket}/lake"
    v1, v2 = _weights(tmp_path, 1), _weights(tmp_path, 2)
    _upload(fs, media, s3_bucket, *FIRST)
    uri = {name: f"s3://{s3_bucket}/videos/{name}" for name in [*GOOD, "empty.mp4", "text.mkv"]}

    # 1. the first run processes everything
    plan = _dry_run(capsys, source, "--output", lake, "--weights", v1)
    assert plan == {uri[n]: "new" for n in FIRST}
    first = _relabel(capsys, source, "--output", lake, "--weights", v1)
    assert _processed(lake, first) == set(plan)

    # 2. three new videos and one replaced: exactly those four
    _upload(fs, media, s3_bucket, "h264.mkv", "lossless.mp4", "av1.mp4")
    _upload(fs, media, s3_bucket, "h264.mkv", as_name="wide.mp4")  # new content, same uri
    plan = _dry_run(capsys, source, "--output", lake, "--weights", v1)
    assert plan == {uri["h264.mkv"]: "new", uri["lossless.mp4"]: "new", uri["av1.mp4"]: "new",
                    uri["wide.mp4"]: "changed", uri["empty.mp4"]: "retry"}
    second = _relabel(capsys, source, "--output", lake, "--weights", v1)
    assert _processed(lake, second) == set(plan)
    (wide,) = rows(lake, f"select width, height, n_frames from latest_videos "
                         f"where uri = '{uri['wide.mp4']}'")
    assert (wide["width"], wide["height"], wide["n_frames"]) == (64, 64, GOOD["h264.mkv"].n_frames)
    old, new = rows(lake, f"select content_key from frame_labels where uri = '{uri['wide.mp4']}' "
                          "group by all order by min(run_id)")
    latest = rows(lake, f"select distinct content_key from latest_frame_labels "
                        f"where uri = '{uri['wide.mp4']}'")
    assert latest == [new] and old != new

    # 3. a new model version: every video again, into its own partition
    plan = _dry_run(capsys, source, "--output", lake, "--weights", v2)
    good = {u for n, u in uri.items() if n in GOOD and n != "wide.mp4"} | {uri["wide.mp4"]}
    assert plan == {**dict.fromkeys(good, "new-version"), uri["empty.mp4"]: "new-version"}
    third = _relabel(capsys, source, "--output", lake, "--weights", v2)
    assert _processed(lake, third) == set(plan)
    versions = {r["model_version"]: r["n"] for r in rows(
        lake, "select model_version, count(distinct uri) as n from frame_labels group by 1")}
    assert len(versions) == 2 and sorted(versions.values()) == [len(good), len(good)]
    partitions = {p.rsplit("/", 2)[-2] for p in fs.find(f"{s3_bucket}/lake/frame_labels")}
    assert partitions == {f"model_version={v}" for v in versions}
    (newest,) = [v for v in versions if rows(
        lake, f"select 1 from frame_labels where model_version = '{v}' and run_id = '{third}'")]
    latest = rows(lake, "select model_version, count(*) as n from latest_frame_labels group by 1")
    assert latest == [{"model_version": newest, "n": 2 * len(good)}]

    # 4. rolling back: nothing to compute but the bad file's third and last
    # attempt (--max-attempts 3), and the latest views switch back
    assert _dry_run(capsys, source, "--output", lake, "--weights", v1) == {
        uri["empty.mp4"]: "retry"}
    rollback = _relabel(capsys, source, "--output", lake, "--weights", v1)
    assert _processed(lake, rollback) == {uri["empty.mp4"]}
    assert _dry_run(capsys, source, "--output", lake, "--weights", v1) == {
        uri["empty.mp4"]: "quarantined"}
    (oldest,) = set(versions) - {newest}
    latest = rows(lake, "select model_version, count(*) as n from latest_frame_labels group by 1")
    assert latest == [{"model_version": oldest, "n": 2 * len(good)}]
    # v1 labelled both contents of wide.mp4; v2 only the new one
    assert rows(lake, "select count(*) as n from frame_labels") == [
        {"n": 2 * (len(good) + 1) + 2 * len(good)}]
    _assert_once(lake)


def test_failures_are_retried_then_quarantined(corpus, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]):
    source, lake = str(corpus("h264.mp4", "text.mkv")), str(tmp_path / "lake")
    bad = str(Path(source) / "text.mkv")
    argv = (source, "--output", lake, "--max-attempts", "2")
    for attempt in (1, 2):
        assert _dry_run(capsys, *argv) == ({str(Path(source) / "h264.mp4"): "new", bad: "new"}
                                           if attempt == 1 else {bad: "retry"})
        run_id = _relabel(capsys, *argv)
        (status,) = rows(lake, f"select status, attempts, error, run_id from video_status "
                               f"where uri = '{bad}'")
        assert status["run_id"] == run_id and status["attempts"] == attempt
        assert status["status"] == ("failed" if attempt == 1 else "quarantined")
        assert "not a readable video" in status["error"]
    assert _dry_run(capsys, *argv) == {bad: "quarantined"}
    idle = _relabel(capsys, *argv)
    assert _processed(lake, idle) == set()  # nothing processed: no videos rows
    assert rows(lake, f"select counts.videos from runs where run_id = '{idle}'") == [
        {"videos": 0}]  # ...but the run is recorded
    assert _dry_run(capsys, *argv, "--retry-failed") == {bad: "retry"}
    forced = _relabel(capsys, *argv, "--retry-failed")
    assert _processed(lake, forced) == {bad}
    (status,) = rows(lake, f"select status, attempts from video_status where uri = '{bad}'")
    assert status == {"status": "quarantined", "attempts": 3}
    (good,) = rows(lake, "select status from video_status where uri like '%h264.mp4'")
    assert good["status"] == "done"


def test_relabel_compacts_partitions_that_gathered_small_files(corpus, media: Path,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]):
    source, lake = corpus("h264.mp4"), str(tmp_path / "lake")
    argv = (str(source), "--output", lake, "--engine", "sequential", "--compact-files", "3")
    folder = Path(lake) / "frame_labels"
    _relabel(capsys, *argv)
    (source / "lossless.mkv").write_bytes((media / "lossless.mkv").read_bytes())
    _relabel(capsys, *argv)
    small = sorted(folder.rglob("*.parquet"))
    earlier = rows(lake, "select * from frame_labels order by all")
    assert len(small) == 2 and len(earlier) == 4  # two runs, one small file each
    (source / "wide.mp4").write_bytes((media / "wide.mp4").read_bytes())
    capsys.readouterr()
    assert relabel.main([*argv, *ARGS]) == 0
    assert "compacted:" in capsys.readouterr().out
    (merged,) = sorted(folder.rglob("*.parquet"))  # the third file made three: merged
    assert merged not in small
    now = rows(lake, "select * from frame_labels order by all")
    assert len(now) == 6 and all(row in now for row in earlier)  # earlier rows unchanged
    _assert_once(lake)
