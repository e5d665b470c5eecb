"""Systemic problems fail fast: exit code 2 and a message saying what to fix,
before any work (no Ray, no rows)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs import label, query
from pipeline.lake.parquet_lake import ParquetLake
from tests.procs import free_ports


def _fail_fast(capsys: pytest.CaptureFixture[str], argv: list[str], limit_s: float = 30,
               ) -> str:
    """Run `vidlake label ARGV` in-process; it must exit 2 in time. Returns stderr."""
    started = time.monotonic()
    try:
        code = label.main(argv)
    except SystemExit as exc:  # argparse refuses a value before any work
        code = int(exc.code or 0)
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 2, err
    # the last line: an in-process Ray from earlier tests may still forward worker logs
    assert err.strip().splitlines()[-1].startswith("vidlake label: error: ")
    assert elapsed < limit_s
    return err


@pytest.fixture
def good_source(corpus) -> Path:
    return corpus("h264.mp4")


@pytest.mark.parametrize(("flags", "message"), [
    (["--sample", "uniform:0"], "bad --sample 'uniform:0'"),
    (["--sample", "random:3"], "use uniform:N, fps:F, every:K, all or keyframes"),
    (["--sample", "every:x"], "must be a whole number, got 'x'"),
    (["--size", "abc"], "bad --size 'abc'"),
    (["--size", "4"], "sides must be between 8 and 8192 pixels"),
    (["--size", "64x"], "bad --size '64x'"),
    (["--model", "vgg11"], "unknown frame model 'vgg11'"),
    (["--analysis", "faces"], "bad --analysis 'faces'"),
    (["--analysis", "clip_labels:clip_len=0"], "bad clip_len='0'"),
    (["--analysis", "shots:colour=red"], "shots has no option 'colour'"),
    (["--analysis", "shots:threshold"], "options are key=value"),
    (["--analysis", "detections:model=r3d_18"], "r3d_18 is a clip model"),
    (["--analysis", "frame_labels", "--analysis", "clip_labels", "--model", "resnet18"],
     "apply to exactly one model analysis"),
    (["--analysis", "shots", "--pipeline", "p.yaml"], "either --analysis or --pipeline"),
    (["--pipeline", "missing.yaml"], "pipeline file 'missing.yaml' not found"),
    (["--storage-option", "novalue"], "--storage-option expects key=value"),
    (["--batch-frames", "0"], "argument --batch-frames: must be a whole number between 1 and"),
    (["--unit-timeout", "-1"], "argument --unit-timeout: must be more than 0, got '-1'"),
])
def test_bad_flags_exit_2_before_touching_the_output(good_source: Path, tmp_path: Path,
                                                     capsys, flags: list[str], message: str):
    out = tmp_path / "lake"
    err = _fail_fast(capsys, [str(good_source), "--output", str(out), "--size", "64", *flags])
    assert message in err
    assert not out.exists()


def test_unknown_choice_is_an_argparse_error(good_source: Path, tmp_path: Path):
    with pytest.raises(SystemExit) as exit_info:
        label.main([str(good_source), "--output", str(tmp_path / "lake"), "--decode", "gpu"])
    assert exit_info.value.code == 2


def test_missing_source(tmp_path: Path, capsys):
    out = tmp_path / "lake"
    err = _fail_fast(capsys, [str(tmp_path / "no-such-videos"), "--output", str(out)])
    assert "does not exist" in err and "no-such-videos" in err
    assert ParquetLake(str(out)).tables() == []


def test_output_that_is_a_file(good_source: Path, tmp_path: Path, capsys):
    out = tmp_path / "lake.txt"
    out.write_text("a file, not a folder")
    err = _fail_fast(capsys, [str(good_source), "--output", str(out)])
    assert "is not writable" in err and str(out) in err
    assert out.read_text() == "a file, not a folder"


def test_output_below_a_file(good_source: Path, tmp_path: Path, capsys):
    (tmp_path / "file").write_text("x")
    err = _fail_fast(capsys, [str(good_source), "--output", str(tmp_path / "file" / "lake")])
    assert "is not writable" in err


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write into. Root ignores mode bits, so as root the
    folder is also made immutable (chattr +i); skipped where neither works."""
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    immutable = os.geteuid() == 0 and subprocess.run(
        ["chattr", "+i", str(path)], capture_output=True, check=False).returncode == 0
    try:
        try:
            (path / "probe").write_bytes(b"")
        except PermissionError:
            yield path
        else:
            pytest.skip("cannot make a read-only folder on this machine")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def test_output_in_a_read_only_folder(good_source: Path, read_only_dir: Path, capsys):
    err = _fail_fast(capsys, [str(good_source), "--output", str(read_only_dir / "lake")])
    assert "is not writable: permission denied" in err


def test_garbage_weights(good_source: Path, tmp_path: Path, capsys):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(os.urandom(4096))
    err = _fail_fast(capsys, [str(good_source), "--output", str(tmp_path / "lake"),
                              "--weights", str(weights)])
    assert "is not a torch.save file" in err  # found on the driver, before Ray starts


def test_missing_weights(good_source: Path, tmp_path: Path, capsys):
    err = _fail_fast(capsys, [str(good_source), "--output", str(tmp_path / "lake"),
                              "--weights", str(tmp_path / "nope.pt")])
    assert "weights" in err and "not found" in err


@pytest.mark.ray
@pytest.mark.slow  # the class count is the model's: known where it loads, in an actor
def test_label_count_must_match_the_model(good_source: Path, tmp_path: Path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    err = _fail_fast(capsys, [str(good_source), "--output", str(tmp_path / "lake"),
                              "--labels", str(labels)])
    assert "2 label names for a model with 1000 classes" in err


@pytest.fixture
def closed_endpoint(monkeypatch: pytest.MonkeyPatch) -> str:
    """AWS_ENDPOINT_URL_S3 pointing at a loopback port nothing listens on."""
    (port,) = free_ports(1)
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return endpoint


def test_unreachable_s3_output(good_source: Path, closed_endpoint: str, capsys):
    err = _fail_fast(capsys, [str(good_source), "--output", "s3://lake-bucket/lake"], 60)
    assert "lake-bucket" in err


def test_unreachable_s3_source(tmp_path: Path, closed_endpoint: str, capsys):
    err = _fail_fast(capsys, ["s3://video-bucket/videos", "--output", str(tmp_path / "lake")],
                     60)
    assert "video-bucket" in err


def test_unreachable_s3_query(closed_endpoint: str, capsys):
    started = time.monotonic()
    code = query.main(["s3://lake-bucket/lake", "select 1"])
    assert code == 2 and "vidlake query: error" in capsys.readouterr().err
    assert time.monotonic() - started < 60
