"""`vidlake thumbnails` end to end: real videos of flat-colour shots (a
brightness ramp within each, so every frame's colour names it), a real lake
from `vidlake label --analysis shots`, real PNGs read back with Pillow."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jobs import label, thumbnails
from pipeline.report import contact_sheet
from pipeline.report.contact_sheet import HEADER, LINE, PAD, row_height
from pipeline.report.sheet_files import sheet_name
from pipeline.synthetic.video_writer import write_video

# video name -> its shots' (base colour, length in frames); the cuts are at the sums
VIDEOS = {
    "a.mp4": [((230, 40, 40), 20), ((40, 200, 60), 30), ((50, 70, 230), 25)],
    "b.mp4": [((220, 200, 40), 24), ((200, 60, 200), 20)],
}
SIZE = (72, 128)  # height, width: thumbnails are 160 x 90


def _colours(shots: list[tuple[tuple[int, int, int], int]]) -> np.ndarray:
    """float [n_frames, 3]: each frame's colour, its shot's base colour from 45 % to
    100 % brightness across the shot."""
    return np.concatenate([np.outer(np.linspace(0.45, 1.0, n), base) for base, n in shots])


def _frames(colours: np.ndarray) -> Iterator[np.ndarray]:
    for colour in colours:
        yield np.broadcast_to(np.round(colour).astype(np.uint8), (*SIZE, 3))


def _label(folder: Path, lake: Path) -> None:
    assert label.main([str(folder), "--output", str(lake), "--engine", "sequential",
                       "--analysis", "shots"]) == 0


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(corpus folder, its lake of shots)."""
    folder = tmp_path_factory.mktemp("shot_videos")
    for name, shots in VIDEOS.items():
        write_video(folder / name, _frames(_colours(shots)), fps=25.0)
    lake = folder.parent / (folder.name + "_lake")
    _label(folder, lake)
    return folder, lake


def _thumbnail_colours(png: Path, n_rows: int) -> np.ndarray:
    """float [n_rows, 3 (first, middle, last), 3 (RGB)]: the mean colour of the
    middle of each thumbnail of a sheet of 160 x 90 thumbnails."""
    image = np.asarray(Image.open(png).convert("RGB"), np.float64)
    assert image.shape[0] == HEADER + n_rows * row_height(90)  # one row per shot
    out = np.empty((n_rows, 3, 3))
    for row in range(n_rows):
        top = HEADER + row * row_height(90) + LINE
        for column in range(3):
            left = PAD + column * (160 + PAD)
            out[row, column] = image[top + 10:top + 80, left + 10:left + 150].mean(axis=(0, 1))
    return out


def _check_sheet(png: Path, shots: list[tuple[tuple[int, int, int], int]]) -> None:
    """Each thumbnail is its shot's first, middle or last frame (within one frame)."""
    colours = _colours(shots)
    starts = np.cumsum([0] + [n for _, n in shots])
    got = _thumbnail_colours(png, len(shots))
    for k in range(len(shots)):
        first, last = int(starts[k]), int(starts[k + 1]) - 1
        for column, expected in enumerate((first, (first + last) // 2, last)):
            nearest = int(np.abs(colours - got[k, column]).sum(axis=1).argmin())
            assert abs(nearest - expected) <= 1, (png.name, k, column, nearest, expected)


def test_a_sheet_per_video_a_row_per_shot_the_right_frames(labelled, tmp_path: Path, capsys):
    folder, lake = labelled
    out = tmp_path / "sheets"
    assert thumbnails.main([str(lake), "--output", str(out)]) == 0
    stdout = capsys.readouterr().out.splitlines()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{sheet_name(str(folder / name))}.png" for name in VIDEOS)
    for name, shots in VIDEOS.items():
        _check_sheet(out / f"{sheet_name(str(folder / name))}.png", shots)
    assert stdout[0].startswith(f"wrote {out}/") and "shots 0-2 of 3" in stdout[0]
    assert stdout[-1] == f"thumbnails: 2 sheets written to {out} for 2 videos, 0 failed"


def test_videos_limits_to_the_first_by_uri(labelled, tmp_path: Path, capsys):
    folder, lake = labelled
    assert thumbnails.main([str(lake), "--output", str(tmp_path), "--videos", "1"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [f"{sheet_name(str(folder / 'a.mp4'))}.png"]
    assert thumbnails.main([str(lake), "--output", str(tmp_path / "b"), "--uri", "*/b.mp4"]) == 0
    assert [p.name for p in (tmp_path / "b").iterdir()] == [
        f"{sheet_name(str(folder / 'b.mp4'))}.png"]


def test_long_shot_lists_are_drawn_in_pages(labelled, tmp_path: Path, monkeypatch, capsys):
    folder, lake = labelled
    monkeypatch.setattr(contact_sheet, "MAX_SHOTS_PER_PAGE", 2)
    assert thumbnails.main([str(lake), "--output", str(tmp_path), "--uri", "*/a.mp4"]) == 0
    name = sheet_name(str(folder / "a.mp4"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.png", f"{name}_p2.png"]
    _check_sheet(tmp_path / f"{name}.png", VIDEOS["a.mp4"][:2])
    _check_sheet(tmp_path / f"{name}_p2.png", VIDEOS["a.mp4"][2:])
    stdout = capsys.readouterr().out
    assert "shots 0-1 of 3" in stdout and "shots 2-2 of 3" in stdout


def test_a_deleted_video_fails_alone(labelled, tmp_path: Path, capsys):
    folder = tmp_path / "videos"
    shutil.copytree(labelled[0], folder)
    _label(folder, tmp_path / "lake")
    capsys.readouterr()
    (folder / "a.mp4").unlink()
    out = tmp_path / "sheets"
    assert thumbnails.main([str(tmp_path / "lake"), "--output", str(out)]) == 1
    stdout = capsys.readouterr().out.splitlines()
    assert [p.name for p in out.iterdir()] == [f"{sheet_name(str(folder / 'b.mp4'))}.png"]
    assert stdout[0].startswith(f"failed {folder / 'a.mp4'} (content): ")
    assert stdout[-1] == f"thumbnails: 1 sheets written to {out} for 1 videos, 1 failed"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("flags", [["--videos", "0"], ["--videos", "-1"], ["--videos", "x"],
                                   ["--width", "79"], ["--nope"]])
def test_bad_flags_exit_2_in_one_line(labelled, tmp_path: Path, capsys, flags: list[str]):
    with pytest.raises(SystemExit) as exited:
        thumbnails.main([str(labelled[1]), "--output", str(tmp_path / "o"), *flags])
    assert exited.value.code == 2
    assert "vidlake thumbnails: error:" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("argv", "says"), [
    (["NOLAKE", "--output", "OUT"], "no lake at"),
    (["LAKE", "--output", "s3://bucket/sheets"], "local folder"),
    (["LAKE", "--output", "OUT", "--detector", "transnet"], "no latest shots match --detector"),
    (["LAKE", "--output", "OUT", "--storage-option", "colour=red"], "colour")])
def test_systemic_problems_exit_2_in_one_line(labelled, tmp_path: Path, capsys, argv, says):
    paths = {"NOLAKE": str(tmp_path / "nolake"), "LAKE": str(labelled[1]),
             "OUT": str(tmp_path / "out")}
    assert thumbnails.main([paths.get(a, a) for a in argv]) == 2
    assert says in _one_error_line(capsys)


def test_a_lake_without_shots_says_what_to_run():
    import duckdb

    from pipeline.errors import ConfigError
    from pipeline.report.thumbnails import require_shots

    with pytest.raises(ConfigError, match="run `vidlake label --analysis shots` first"):
        require_shots(duckdb.connect(), "/lake")


def test_an_s3_lake_and_corpus(labelled, s3_server, s3_bucket: str, tmp_path: Path, capsys):
    fs = s3_server.filesystem()
    for name in VIDEOS:
        fs.put_file(str(labelled[0] / name), f"{s3_bucket}/videos/{name}")
    lake = f"s3://{s3_bucket}/lake"
    assert label.main([f"s3://{s3_bucket}/videos/", "--output", lake, "--engine", "sequential",
                       "--analysis", "shots"]) == 0
    out = tmp_path / "sheets"
    assert thumbnails.main([lake, "--output", str(out), "--storage-option",
                            f"endpoint_url={s3_server.endpoint}"]) == 0
    for name, shots in VIDEOS.items():
        _check_sheet(out / f"{sheet_name(f's3://{s3_bucket}/videos/{name}')}.png", shots)
