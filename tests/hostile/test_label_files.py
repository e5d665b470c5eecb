"""`--labels URI` files a user may get wrong, or be handed: each is refused on
the driver, before any work, with exit 2 and one line naming the file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torchvision

from jobs import label
from pipeline.errors import ConfigError
from pipeline.models.checkpoint import read_label_names, save_checkpoint
from tests.hostile.builders import error_lines, tiny_video, vidlake

BAD_LABELS = [
    ("binary", bytes(range(256)) * 4, "is not UTF-8 text"),
    ("nul-bytes", b"cat\n\x00\x00\x00\ndog\n", "name 2 is not a label name (control"),
    ("malformed-json", b'["cat", "dog"', "is not valid JSON"),
    ("deep-json", b"[" * 100_000, "is not valid JSON"),
    ("json-object", b'{"0": "cat", "1": "dog"}', "hold a list of names, not a dict"),
    ("json-numbers", b"[1, 2, 3]", "name 1 is 1, not a label name"),
    ("json-nested", b'["cat", ["dog"]]', "name 2 is ['dog'], not a label name"),
    ("json-empty-name", b'["cat", ""]', "name 2 is '', not a label name"),
    ("json-blank-name", b'["cat", "   "]', "name 2 is '   ', not a label name"),
    ("blank-line", b"cat\n\ndog\n", "line 2 is empty"),
    ("duplicates", b"cat\ndog\ncat\n", "'cat' appears twice (names 1 and 3)"),
    ("json-duplicates", b'["cat", "dog", "dog"]', "'dog' appears twice (names 2 and 3)"),
    ("empty", b"", "expected a non-empty list of label names"),
    ("only-blank-lines", b"\n\n  \n", "expected a non-empty list of label names"),
    ("long-name", b"x" * 5000, "over 1000 characters"),
]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_video(tmp_path_factory.mktemp("video"))


def _label(capsys: pytest.CaptureFixture[str], video: Path, lake: Path, *flags: str) -> str:
    """`vidlake label VIDEO -o LAKE FLAGS` in-process; it must exit 2. Returns its error line."""
    assert label.main([str(video), "--output", str(lake), "--engine", "sequential",
                       *flags]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    return line


@pytest.mark.parametrize(("content", "needle"), [c[1:] for c in BAD_LABELS],
                         ids=[c[0] for c in BAD_LABELS])
def test_bad_label_files_are_refused_before_any_work(video: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     content: bytes, needle: str):
    labels, lake = tmp_path / "labels.txt", tmp_path / "lake"
    labels.write_bytes(content)
    line = _label(capsys, video, lake, "--labels", str(labels))
    assert f"labels '{labels}'" in line and needle in line
    assert not lake.exists()  # refused on the driver: the output was never touched
    with pytest.raises(ConfigError, match="labels '"):  # the actor reads them the same way
        read_label_names(str(labels))


def test_dev_zero_is_refused_in_moments(video: Path, tmp_path: Path):
    """Read one byte past the 64 MiB cap and stop, in a child whose memory is
    capped (reading to the end would fill it)."""
    started = time.monotonic()
    done = vidlake("label", str(video), "--output", str(tmp_path / "lake"), "--engine",
                   "sequential", "--labels", "/dev/zero", timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = error_lines(done.stderr)
    assert "labels '/dev/zero' is larger than 64 MiB" in line
    assert time.monotonic() - started < 30


def test_too_few_names_for_the_model(video: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]):
    weights, labels = tmp_path / "model.pt", tmp_path / "labels.txt"
    save_checkpoint(str(weights), arch="mobilenet_v3_small", label_names=["a", "b", "c"],
                    state_dict=torchvision.models.mobilenet_v3_small(num_classes=3).state_dict())
    labels.write_text("cat\ndog\n")
    line = _label(capsys, video, tmp_path / "lake", "--weights", str(weights), "--labels",
                  str(labels))
    assert f"2 label names for a model with 3 classes (labels '{labels}')" in line


def test_good_label_files_still_read(tmp_path: Path):
    """A BOM, trailing blank lines and surrounding spaces are not names; a
    JSON list keeps its strings as they are."""
    text, listed = tmp_path / "labels.txt", tmp_path / "labels.json"
    text.write_bytes("\ufeffcat\n  dog  \nbird\n\n\n".encode())
    listed.write_text('["cat", "hot dog", "bird"]')
    assert read_label_names(str(text)) == ("cat", "dog", "bird")
    assert read_label_names(str(listed)) == ("cat", "hot dog", "bird")
