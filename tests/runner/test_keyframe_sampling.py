"""`--sample keyframes` and the approximate samplers (`uniform:4~`, `fps:1~`)
through `vidlake label` and `vidlake relabel`: rows carry the index and time
of the frame the model saw (a known model labels each frame with the index its
pixels encode), and that frame is a keyframe, decoded alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from jobs import label, relabel
from pipeline.decode.unit_decoder import KEYFRAME_DECODER
from pipeline.synthetic.video_writer import index_pattern_frames, write_video
from tests.lakes import rows
from tests.media import BAD, GOOD

N_FRAMES, GOP, FPS = 300, 40, 25
KEYFRAMES = list(range(0, N_FRAMES, GOP))  # 0, 40, ... 280
MODEL = "model=tests.known_models:frame_index,size=32"


@pytest.fixture()
def videos(tmp_path: Path) -> tuple[Path, str]:
    """Lossless index-pattern videos with a keyframe every GOP frames (mkv and
    MPEG-TS: indexed and not), and the label names that turn the known model's
    class back into a frame index."""
    source = tmp_path / "videos"
    source.mkdir()
    for name in ("a.mkv", "b.ts"):
        write_video(source / name, index_pattern_frames(N_FRAMES), fps=FPS, codec="lossless",
                    gop=GOP)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(i) for i in range(256)))
    return source, str(labels)


def _frames(lake: Path) -> dict[str, list[tuple[int, str, float]]]:
    """file name -> [(frame_index, label, timestamp_s)] of frame_labels."""
    out: dict[str, list[tuple[int, str, float]]] = {}
    for row in rows(str(lake), "select * from frame_labels order by uri, frame_index"):
        out.setdefault(Path(row["uri"]).name, []).append(
            (row["frame_index"], row["label"], row["timestamp_s"]))
    return out


def _assert_true_rows(lake: Path, expected: list[int]) -> None:
    """Each row names the frame the model saw, at its time, and only `expected`."""
    for name, found in _frames(lake).items():
        assert [f[0] for f in found] == expected, name
        for index, seen, stamp in found:
            assert seen == str(index % 256), (name, index)
            assert stamp == pytest.approx(index / FPS, abs=1e-6), (name, index)
    decoders = {r["decoder"] for r in rows(str(lake), "select decoder from videos")}
    assert decoders == {KEYFRAME_DECODER}


@pytest.mark.parametrize(("sample", "expected"), [
    ("keyframes", KEYFRAMES),
    # targets 37, 112, 187, 262 (centres of 4 segments) snap to their GOPs' keyframes
    ("uniform:4~", [0, 80, 160, 240]),
    # a target every 25 frames: each GOP of 40 holds one or two, but the last
    # (280-299) none
    ("fps:1~", KEYFRAMES[:-1]),
])
def test_label_records_the_keyframe_each_target_snapped_to(videos: tuple[Path, str],
                                                           tmp_path: Path, sample: str,
                                                           expected: list[int]):
    source, labels = videos
    lake = tmp_path / "lake"
    assert label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--max-frames-per-unit", "3", "--analysis",
                       f"frame_labels:{MODEL},labels={labels},sample={sample}"]) == 0
    _assert_true_rows(lake, expected)


def test_clip_rows_name_the_keyframes_their_clips_were_cut_from(videos: tuple[Path, str],
                                                                tmp_path: Path):
    """clip_labels with sample=keyframes: each clip is clip_len consecutive
    keyframes; the known model labels a clip with its first frame's index, and
    the row's range runs from that keyframe to the clip's last one."""
    source, labels = videos
    lake = tmp_path / "lake"
    options = (f"model=tests.known_models:first_frame_index,labels={labels},size=32,"
               "sample=keyframes,clip_len=3,clip_stride=3")
    assert label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--analysis", f"clip_labels:{options}"]) == 0
    clips = rows(str(lake), "select * from clip_labels where uri like '%a.mkv' "
                            "order by clip_index")
    starts = [0, 3 * GOP]  # keyframes 0 and 3 start clips (a third would pass the end)
    assert [(c["start_frame"], c["end_frame"], c["label"]) for c in clips] == [
        (s, s + 2 * GOP + 1, str(s % 256)) for s in starts]
    assert [c["start_s"] for c in clips] == pytest.approx([s / FPS for s in starts])


PLAN = re.compile(r"^plan: (\d+) to process", re.M)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_relabel_keeps_approximate_and_exact_samples_apart(videos: tuple[Path, str],
                                                           tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]):
    """On Ray: a second relabel with the same approximate sample has nothing to
    do; the exact sample is another analysis, which decodes every target."""
    source, labels = videos
    lake = tmp_path / "lake"

    def run(sample: str) -> int:
        capsys.readouterr()
        assert relabel.main([str(source), "--output", str(lake), "--max-frames-per-unit", "3",
                             "--model", "tests.known_models:frame_index", "--labels", labels,
                             "--size", "32", "--sample", sample]) == 0
        return int(PLAN.findall(capsys.readouterr().out)[-1])

    assert run("fps:0.5~") == 2  # targets 0, 50, 100...: keyframes 0, 40, 80, 120, 200, 240
    _assert_true_rows(lake, [0, 40, 80, 120, 200, 240])
    assert run("fps:0.5~") == 0
    assert run("fps:0.5") == 2
    keys = rows(str(lake), "select analysis_key, list(frame_index order by frame_index) frames "
                           "from frame_labels where uri like '%a.mkv' group by 1")
    assert sorted(r["frames"] for r in keys) == [[0, 40, 80, 120, 200, 240],
                                                 list(range(0, N_FRAMES, 50))]


def test_every_input_is_accounted_for_with_keyframes(corpus, tmp_path: Path):
    """The test corpus, good and bad files, with `--sample keyframes`: each video
    once in `videos`; the bad ones an error with a reason, the truncated ones
    too (their keyframes before the cut would decode); the good ones exactly
    the keyframes a forward decode flags. corrupt.mp4's damage lies between its
    keyframes: every frame sampled decodes, and it is ok."""
    import av

    names = sorted([*GOOD, *BAD])
    source, lake = corpus(*names), tmp_path / "lake"
    assert label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--sample", "keyframes", "--size", "32"]) == 0
    videos = {Path(v["uri"]).name: v for v in rows(str(lake), "select * from videos")}
    assert sorted(videos) == names
    assert all(videos[n]["status"] == "error" and videos[n]["error"] for n in BAD
               if n != "corrupt.mp4")
    assert "truncated: the stream holds 48 of the 100 frames" in videos[
        "truncated_faststart.mp4"]["error"]
    got = rows(str(lake), "select uri, frame_index from frame_labels")
    for name in GOOD:
        with av.open(str(source / name)) as container:
            frames: Any = container.decode(container.streams.best("video"))
            keys = [i for i, frame in enumerate(frames) if frame.key_frame]
        assert videos[name]["status"] == "ok", videos[name]["error"]
        assert sorted(r["frame_index"] for r in got if r["uri"].endswith(name)) == keys, name
