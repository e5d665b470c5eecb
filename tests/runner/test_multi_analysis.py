"""Several analyses in one run on a real local Ray: one decode fans out to
every analysis, and the foundation's invariants hold over a corpus with bad
files: each video accounted for once, reruns idempotent, nothing torn, and a
later run that adds an analysis does only that analysis."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from jobs import label
from pipeline.synthetic.edits import cut_frames
from pipeline.synthetic.video_writer import write_video
from tests.lakes import by_name, expected_frames, rows, table_counts
from tests.media import BAD, GOOD

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

FRAMES = "frame_labels:sample=uniform:4,size=64"
CLIPS = "clip_labels:model=tests.known_models:first_frame_index,clip_len=4,size=32,labels={}"
SHOTS = "shots"
BOXES = "detections:model=tests.known_models:white_box_detector,sample=every:10,size=64x48"
EDIT_CUTS_AT = [30, 55]  # edit.mp4: shots of 30, 25 and 35 frames


def _label(source: Path, lake: Path, *analyses: str) -> int:
    argv = [str(source), "--output", str(lake), "--max-frames-per-unit", "16"]
    for analysis in analyses:
        argv += ["--analysis", analysis]
    return label.main(argv)


def _uris_of(lake: Path, table: str) -> set[str]:
    return {str(r["uri"]).rsplit("/", 1)[-1] for r in rows(str(lake), f"select uri from {table}")}


def test_one_decode_many_analyses_over_bad_files(corpus, tmp_path: Path):
    names = sorted([*GOOD, *BAD])
    source, lake = corpus(*names), tmp_path / "lake"
    frames, cuts = cut_frames([30, 25, 35], height=64, width=64, seed=2)
    assert cuts == EDIT_CUTS_AT
    write_video(source / "edit.mp4", frames, fps=25)
    n_frames = {**{n: s.n_frames for n, s in GOOD.items()}, "edit.mp4": 90}
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(i) for i in range(256)))
    analyses = [FRAMES, CLIPS.format(labels), SHOTS, BOXES]
    assert _label(source, lake, *analyses) == 0

    # every input exactly once; the bad ones with a reason and no rows anywhere
    videos = by_name(rows(str(lake), "select * from videos"))
    assert sorted(videos) == sorted([*names, "edit.mp4"])
    assert len(rows(str(lake), "select uri from videos")) == len(videos)
    for name, video in videos.items():
        assert video["status"] == ("error" if name in BAD else "ok"), (name, video["error"])
        assert [a.split(":")[0] for a in video["analyses"]] == \
            ["frame_labels", "clip_labels", "shots", "detections"]
    good = set(n_frames)
    # files that break mid-stream (corrupt, truncated) keep the rows of their intact
    # units (units commit whole; `videos` says error); shots need the whole video
    partial = {n for n, v in videos.items() if "units failed" in (v["error"] or "")}
    assert partial and partial <= set(BAD)
    for table in ("frame_labels", "clip_labels", "detections"):
        assert _uris_of(lake, table) <= good | partial, table
    assert good <= _uris_of(lake, "frame_labels") and good <= _uris_of(lake, "clip_labels")
    assert _uris_of(lake, "shots") == good

    # each analysis wrote exactly its rows
    got = [(str(r["uri"]).rsplit("/", 1)[-1], r["frame_index"])
           for r in rows(str(lake), "select uri, frame_index from frame_labels")]
    assert len(got) == len(set(got))
    assert {g for g in got if g[0] in GOOD} == expected_frames(sorted(GOOD), "uniform:4")
    clips = by_name(rows(str(lake), "select * from clip_labels"))
    assert len(rows(str(lake), "select uri from clip_labels")) == len(good)
    for name in ("lossless.mp4", "lossless.mkv"):  # pattern pixels say which frame came first
        assert clips[name]["label"] == str(clips[name]["start_frame"] % 256)
    for name, count in n_frames.items():
        shots = rows(str(lake), f"select * from shots where uri like '%/{name}' "
                                "order by shot_index")
        assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == count, name
        assert all(a["end_frame"] == b["start_frame"] for a, b in itertools.pairwise(shots))
    edit = rows(str(lake), "select start_frame from shots where uri like '%edit.mp4' "
                           "order by shot_index")
    assert [s["start_frame"] for s in edit] == [0, *EDIT_CUTS_AT]

    before = table_counts(str(lake))
    assert _label(source, lake, *analyses) == 0  # rerun: nothing to do, nothing added
    assert table_counts(str(lake)) == before

    # a new analysis later: only it runs; labels already there are not redone
    embeddings = FRAMES.replace("frame_labels", "frame_embeddings")
    assert _label(source, lake, *analyses, embeddings) == 0
    after = table_counts(str(lake))
    ok = "(select uri from videos where status = 'ok')"
    pairs = "select uri, frame_index from {} where uri in " + ok + " order by all"
    assert rows(str(lake), pairs.format("frame_embeddings")) == \
        rows(str(lake), pairs.format("frame_labels"))
    unchanged = ("frame_labels", "clip_labels", "shots", "detections")
    assert {t: after[t] for t in unchanged} == {t: before[t] for t in unchanged}
    last = rows(str(lake), "select analyses from videos where run_id = "
                           "(select run_id from runs order by started_at desc limit 1)")
    assert {tuple(a.split(":")[0] for a in r["analyses"]) for r in last} == {("frame_labels",)}


def test_a_full_buffer_never_stalls_a_pool_waiting_for_its_batch(corpus, tmp_path: Path):
    """The clip pool wants 100,000 frames per call; its units' frames fill the
    decode buffer (256 frames here) long before that, and decoding stops: the
    pool must go with what it has instead of waiting forever."""
    source, lake = corpus("lossless.mp4", "h264.mp4"), tmp_path / "lake"
    clips = ("clip_labels:model=tests.known_models:first_frame_index,clip_len=4,size=32,"
             "clip_stride=8,batch=100000")
    argv = [str(source), "--output", str(lake), "--buffer-mb", "1", "--batch-frames", "64",
            "--max-frames-per-unit", "16", "--analysis", "frame_labels:sample=all,size=64",
            "--analysis", clips]
    assert label.main(argv) == 0
    counts = table_counts(str(lake))
    assert counts["frame_labels"] == 350
    assert counts["clip_labels"] == len(range(0, 300 - 3, 8)) + len(range(0, 50 - 3, 8))


def test_in_actor_shape_runs_every_analysis(corpus, tmp_path: Path):
    """--decode in-actor: each actor decodes, runs shots next to the frames and
    every model; the tables match the default shape's."""
    source = corpus("lossless.mp4", "h264.mkv", "empty.mp4")
    clips = "clip_labels:model=tests.known_models:first_frame_index,clip_len=4,size=32"
    analyses = ["--analysis", FRAMES, "--analysis", clips, "--analysis", SHOTS]
    for shape in ("workers", "in-actor"):
        argv = [str(source), "--output", str(tmp_path / shape), "--decode", shape,
                "--max-frames-per-unit", "32", *analyses]
        assert label.main(argv) == 0
    for table, columns in (("frame_labels", "frame_index, label"),
                           ("clip_labels", "start_frame, label"),
                           ("shots", "start_frame, end_frame"),
                           ("videos", "status, n_sampled")):
        sql = f"select uri, {columns} from {table} order by all"
        assert _by_file(tmp_path / "workers", sql) == _by_file(tmp_path / "in-actor", sql), table
    # both shapes count the same work in run_stages, and commit what they count
    stages = ("select stage, analysis, sum(items_in) i, sum(items_out) o, sum(frames_out) f "
              "from run_stages group by all order by all")
    assert rows(str(tmp_path / "workers"), stages) == rows(str(tmp_path / "in-actor"), stages)
    for shape in ("workers", "in-actor"):
        (run,) = rows(str(tmp_path / shape), "select counts, stages from runs")
        totals = {(t["stage"], t["analysis"]): t for t in run["stages"]}
        assert totals[("commit", None)]["frames_out"] == run["counts"]["frames"] > 0
        assert totals[("decode", None)]["items_out"] == run["counts"]["units"]


def _by_file(lake: Path, sql: str) -> list[tuple]:
    """Rows of `sql` with the uri cut to its file name (lakes of different folders)."""
    return [(str(r["uri"]).rsplit("/", 1)[-1], *list(r.values())[1:])
            for r in rows(str(lake), sql)]


def test_clips_of_videos_decoded_at_different_sizes_share_a_batch(corpus, tmp_path: Path):
    """A detector without --size keeps each video's aspect ratio, so one batch
    holds a 64x64 video decoded at 640x640 and a 64x48 one at 640x480; the clip
    model must take both (it used to fail the run stacking them)."""
    source, lake = corpus("h264.mp4", "wide.mp4"), tmp_path / "lake"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(str(i) for i in range(256)))
    boxes = "detections:model=tests.known_models:white_box_detector,sample=every:10"
    argv = [str(source), "--output", str(lake), "--engine", "sequential",
            "--analysis", CLIPS.format(labels), "--analysis", boxes]
    assert label.main(argv) == 0
    videos = by_name(rows(str(lake), "select * from videos"))
    assert {n: v["status"] for n, v in videos.items()} == {"h264.mp4": "ok", "wide.mp4": "ok"}
    assert _uris_of(lake, "clip_labels") == {"h264.mp4", "wide.mp4"}
