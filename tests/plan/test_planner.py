"""plan_video and analysis_key: bounded units that cover exactly the sampled
frames and clips of every analysis, with ids that depend only on content,
analyses and range."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from pipeline.analyses.clip_classifier import ClipOptions
from pipeline.analyses.detector import DetectionOptions
from pipeline.analyses.shot_detector import ShotOptions
from pipeline.config import (
    AnalysisSpec,
    FrameSize,
    ModelSpec,
    ResourceSpec,
    SampleSpec,
)
from pipeline.corpus.listing import list_corpus
from pipeline.plan.planner import analysis_key, plan_sampled, plan_video
from pipeline.plan.probe import probe_video
from pipeline.plan.sampling import sample_indices
from pipeline.plan.video_info import VideoInfo


@pytest.fixture(scope="module")
def long_video(media: Path) -> VideoInfo:
    """The 300-frame lossless video, probed."""
    (ref,) = list_corpus(str(media / "lossless.mp4"))
    return probe_video(ref)


def test_every_frame_of_a_long_video_in_bounded_units(long_video: VideoInfo):
    units = plan_sampled(long_video, SampleSpec.parse("every:1"), 64, "key")
    assert [u.n_frames for u in units] == [64, 64, 64, 64, 44]
    assert [i for u in units for i in u.frame_indices] == list(range(300))
    assert [u.unit_index for u in units] == [0, 1, 2, 3, 4]
    assert [(u.start_frame, u.end_frame) for u in units] == [
        (0, 64), (64, 128), (128, 192), (192, 256), (256, 300)]
    assert all(u.video == long_video.ref and u.fps == 25.0 for u in units)


@pytest.mark.parametrize(("sample", "max_frames"), [
    ("every:1", 64), ("every:7", 5), ("uniform:10", 4), ("uniform:1", 8), ("fps:3", 2),
    ("all", 300), ("all", 1000),
])
def test_units_cover_exactly_the_sampled_indices(long_video: VideoInfo, sample: str,
                                                 max_frames: int):
    spec = SampleSpec.parse(sample)
    units = plan_sampled(long_video, spec, max_frames, "key")
    flat = [i for u in units for i in u.frame_indices]
    assert flat == sample_indices(spec, 300, 25.0).tolist()
    assert all(0 < u.n_frames <= max_frames for u in units)
    assert all(list(u.frame_indices) == sorted(set(u.frame_indices)) for u in units)
    assert all(a.end_frame <= b.start_frame for a, b in itertools.pairwise(units))
    assert len({u.unit_id for u in units}) == len(units)


def test_unit_ids_are_deterministic(long_video: VideoInfo, media: Path):
    spec = SampleSpec.parse("every:3")
    first = [u.unit_id for u in plan_sampled(long_video, spec, 16, "key")]
    (ref,) = list_corpus(str(media / "lossless.mp4"))
    reprobed = probe_video(ref)
    assert [u.unit_id for u in plan_sampled(reprobed, spec, 16, "key")] == first


def test_unit_ids_change_with_content_and_analysis(long_video: VideoInfo):
    spec = SampleSpec.parse("every:3")
    base = {u.unit_id for u in plan_sampled(long_video, spec, 16, "key")}
    changed = dataclasses.replace(long_video,
                                  ref=dataclasses.replace(long_video.ref, etag="other"))
    assert base.isdisjoint(u.unit_id for u in plan_sampled(changed, spec, 16, "key"))
    assert base.isdisjoint(u.unit_id for u in plan_sampled(long_video, spec, 16, "other-key"))


def test_failed_probe_plans_nothing(long_video: VideoInfo):
    failed = VideoInfo(long_video.ref, error="not a readable video")
    assert plan_sampled(failed, SampleSpec.parse("all"), 64, "key") == []


def _spec(**changes) -> AnalysisSpec:
    base = AnalysisSpec("frame_labels", model=ModelSpec("mobilenet_v3_small"),
                        sample=SampleSpec.parse("uniform:8"), size=FrameSize(224, 224))
    return dataclasses.replace(base, **changes)


def test_analysis_key_ignores_how_it_runs_but_not_what():
    key = analysis_key(_spec(), "v1", "frame_labels")
    busy = _spec(resources=ResourceSpec(actors=3, num_gpus=0.5))
    assert analysis_key(busy, "v1", "frame_labels") == key
    # labels are the same rows whether or not embeddings come with them
    both = _spec(outputs=("frame_labels", "frame_embeddings"))
    assert analysis_key(both, "v1", "frame_labels") == key
    variants = [
        analysis_key(_spec(), "v2", "frame_labels"),
        analysis_key(_spec(sample=SampleSpec.parse("uniform:9")), "v1", "frame_labels"),
        analysis_key(_spec(size=FrameSize(112, 112)), "v1", "frame_labels"),
        analysis_key(_spec(model=ModelSpec("resnet18")), "v1", "frame_labels"),
        analysis_key(_spec(model=ModelSpec("mobilenet_v3_small", top_k=3)), "v1",
                     "frame_labels"),
        analysis_key(both, "v1", "frame_embeddings"),
        analysis_key(_spec(kind="detections", options=None), "v1", "frame_labels"),
    ]
    assert len({key, *variants}) == 1 + len(variants)


def test_analysis_key_hashes_only_the_options_that_change_the_output():
    """A detector's options change its key; they are not part of other kinds'
    specs at all, and its actors and batch never count."""
    detections = AnalysisSpec("detections", model=ModelSpec("ssdlite320_mobilenet_v3_large"))
    key = analysis_key(detections, "v1", "detections")
    fewer = dataclasses.replace(detections, options=DetectionOptions(max_boxes=3))
    assert analysis_key(fewer, "v1", "detections") != key
    batched = dataclasses.replace(detections, resources=ResourceSpec(actors=2, batch=2))
    assert analysis_key(batched, "v1", "detections") == key
    assert not hasattr(_spec().options, "max_boxes")


def _multi(long_video: VideoInfo, max_frames: int = 64) -> tuple[dict[str, AnalysisSpec], list]:
    specs = {
        "frame_labels": _spec(sample=SampleSpec.parse("every:25")),
        "clip_labels": AnalysisSpec("clip_labels", size=FrameSize(112, 112),
                                    options=ClipOptions(clip_len=16, frame_step=2,
                                                        clip_stride=40)),
        "shots": AnalysisSpec("shots", sample=SampleSpec.parse("all"), size=FrameSize(64, 64),
                              options=ShotOptions(method="adaptive", window=2)),
    }
    return specs, list(plan_video(long_video, specs, max_frames, "multi"))


def test_several_analyses_share_units_and_each_item_has_one_owner(long_video: VideoInfo):
    specs, units = _multi(long_video)
    owned_frames = {name: [f for u in units for w in u.work if w.analysis == name
                           for f in w.frames] for name in specs}
    assert owned_frames["frame_labels"] == list(range(0, 300, 25))
    assert owned_frames["shots"] == list(range(300))
    clips = [c for u in units for w in u.work if w.analysis == "clip_labels" for c in w.clips]
    assert [index for index, _ in clips] == list(range(len(clips)))
    assert [frames[0] for _, frames in clips] == list(range(0, 300 - 30, 40))
    for _, frames in clips:
        assert list(frames) == list(range(frames[0], frames[0] + 32, 2))
    for unit in units:
        reads = set().union(*(w.reads for w in unit.work))
        assert list(unit.frame_indices) == sorted(reads)  # every frame decoded once per unit
        assert unit.size == FrameSize(224, 224)  # the largest size any analysis needs
    ranges = [(u.start_frame, u.end_frame) for u in units]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_clips_are_never_split_across_units(long_video: VideoInfo):
    _, units = _multi(long_video, max_frames=20)
    for unit in units:
        for work in unit.work:
            for _, frames in work.clips:
                assert set(frames) <= set(unit.frame_indices)


def test_shot_units_read_neighbours_past_their_edges(long_video: VideoInfo):
    _, units = _multi(long_video)
    for unit in units:
        work = unit.work_for("shots")
        assert work is not None
        first, last = work.frames[0], work.frames[-1]
        expected = set(range(max(0, first - 3), first)) | set(range(last + 1, min(300, last + 3)))
        assert set(work.context) == expected


KEYFRAMES = np.asarray([0, 40, 80, 120, 160, 200, 240, 280], np.int64)


@pytest.mark.parametrize(("clip", "expected"), [
    # 2 clips centred in halves of the 8 keyframes (spanning 5 of them, every
    # other one): positions 0 and 3
    (dict(clip_len=3, frame_step=2, clips_per_video=2), [(0, 0, 80, 160),
                                                         (1, 120, 200, 280)]),
    # a clip every 3 keyframes: starts at keyframes 0 and 3 (a third would pass the end)
    (dict(clip_len=4, frame_step=1, clip_stride=3), [(0, 0, 40, 80, 120),
                                                     (1, 120, 160, 200, 240)]),
])
def test_clips_of_a_sample_are_runs_of_its_frames(long_video: VideoInfo, clip: dict,
                                                  expected: list[tuple[int, ...]]):
    """A clip analysis given a sample (keyframes here) cuts its clips from the
    sampled frames: clip_len of them, frame_step apart among them; the units
    read exactly those frames and each clip has one owner."""
    info = dataclasses.replace(long_video, keyframes=KEYFRAMES)
    spec = AnalysisSpec("clip_labels", ModelSpec("r3d_18"), sample=SampleSpec("keyframes"),
                        size=FrameSize(32, 32), options=ClipOptions(**clip))
    units = list(plan_video(info, {"clips": spec}, 3, "k"))
    clips = [(k, *frames) for u in units for w in u.work for k, frames in w.clips]
    assert clips == expected
    assert all(u.keyframes_only for u in units)
    assert not any(w.frames for u in units for w in u.work)  # clips only, no single frames


def test_units_of_large_frames_hold_at_most_unit_bytes(long_video: VideoInfo):
    """Shots read frames at the video's own size: for a 4K video, 128 frames a
    unit would be 3 GiB; units shrink to the byte budget, and still cover every
    frame once."""
    from pipeline.plan.planner import UNIT_BYTES

    big = dataclasses.replace(long_video, width=3840, height=2160)
    spec = AnalysisSpec("shots", sample=SampleSpec("all"), options=ShotOptions())
    units = list(plan_video(big, {"shots": spec}, 128, "k"))
    assert units[0].size == FrameSize(3840, 2160)
    owned = [f for u in units for f in u.work[0].frames]
    assert owned == list(range(300))
    assert all(len(u.frame_indices) * 3840 * 2160 * 3 <= UNIT_BYTES + 2 * 3840 * 2160 * 3
               for u in units)  # its own frames within budget, plus the frame before it
    assert max(len(u.work[0].frames) for u in units) == UNIT_BYTES // (3840 * 2160 * 3)
