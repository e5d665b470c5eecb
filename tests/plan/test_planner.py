"""plan_video and analysis_key: bounded units that cover exactly the sampled
frames, with ids that depend only on content, analysis and range."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from pipeline.config import FrameSize, LabelConfig, ModelSpec, SampleSpec
from pipeline.corpus.listing import list_corpus
from pipeline.plan.planner import analysis_key, plan_video
from pipeline.plan.probe import probe_video
from pipeline.plan.sampling import sample_indices
from pipeline.plan.video_info import VideoInfo


@pytest.fixture(scope="module")
def long_video(media: Path) -> VideoInfo:
    """The 300-frame lossless video, probed."""
    (ref,) = list_corpus(str(media / "lossless.mp4"))
    return probe_video(ref)


def test_every_frame_of_a_long_video_in_bounded_units(long_video: VideoInfo):
    units = plan_video(long_video, SampleSpec.parse("every:1"), 64, "key")
    assert [u.n_frames for u in units] == [64, 64, 64, 64, 44]
    assert [i for u in units for i in u.frame_indices] == list(range(300))
    assert [u.unit_index for u in units] == [0, 1, 2, 3, 4]
    assert {u.n_units for u in units} == {5}
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
    units = plan_video(long_video, spec, max_frames, "key")
    flat = [i for u in units for i in u.frame_indices]
    assert flat == sample_indices(spec, 300, 25.0).tolist()
    assert all(0 < u.n_frames <= max_frames for u in units)
    assert all(list(u.frame_indices) == sorted(set(u.frame_indices)) for u in units)
    assert all(a.end_frame <= b.start_frame for a, b in itertools.pairwise(units))
    assert len({u.unit_id for u in units}) == len(units)


def test_unit_ids_are_deterministic(long_video: VideoInfo, media: Path):
    spec = SampleSpec.parse("every:3")
    first = [u.unit_id for u in plan_video(long_video, spec, 16, "key")]
    (ref,) = list_corpus(str(media / "lossless.mp4"))
    reprobed = probe_video(ref)
    assert [u.unit_id for u in plan_video(reprobed, spec, 16, "key")] == first


def test_unit_ids_change_with_content_and_analysis(long_video: VideoInfo):
    spec = SampleSpec.parse("every:3")
    base = {u.unit_id for u in plan_video(long_video, spec, 16, "key")}
    changed = dataclasses.replace(long_video,
                                  ref=dataclasses.replace(long_video.ref, etag="other"))
    assert base.isdisjoint(u.unit_id for u in plan_video(changed, spec, 16, "key"))
    assert base.isdisjoint(u.unit_id for u in plan_video(long_video, spec, 16, "other-key"))


def test_failed_probe_plans_nothing(long_video: VideoInfo):
    failed = VideoInfo(long_video.ref, error="not a readable video")
    assert plan_video(failed, SampleSpec.parse("all"), 64, "key") == []


def _config(**changes) -> LabelConfig:
    base = LabelConfig(source="in", output="out", model=ModelSpec("mobilenet_v3_small"))
    return dataclasses.replace(base, **changes)


def test_analysis_key_ignores_where_and_how_but_not_what():
    key = analysis_key(_config(), "v1")
    assert analysis_key(_config(source="elsewhere", output="other-lake"), "v1") == key
    variants = [
        analysis_key(_config(), "v2"),
        analysis_key(_config(sample=SampleSpec.parse("uniform:9")), "v1"),
        analysis_key(_config(size=FrameSize(112, 112)), "v1"),
        analysis_key(_config(model=ModelSpec("resnet18")), "v1"),
        analysis_key(_config(model=ModelSpec("mobilenet_v3_small", top_k=3)), "v1"),
        analysis_key(_config(model=ModelSpec("mobilenet_v3_small", embeddings=True)), "v1"),
    ]
    assert len({key, *variants}) == 1 + len(variants)
