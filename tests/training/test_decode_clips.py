"""decode_clip_batch, called as Ray Data calls it (a numpy batch) but without
Ray: clips come out at the recipe's size, validation clips are exactly the
decoder's centre-clip frames, and bad videos give a zero clip with ok False,
never an exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import FrameSize, SampleSpec
from pipeline.corpus.listing import list_corpus
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.unit_decoder import DecodeSettings, decode_unit
from pipeline.plan.probe import probe_video
from pipeline.plan.work_unit import WorkUnit
from pipeline.storage_options import StorageOptions
from pipeline.synthetic.corpus_builder import write_bad_files, write_motion_corpus
from pipeline.synthetic.video_writer import index_pattern_frames, write_video
from pipeline.training.clip_dataset import clip_seed, decode_clip_batch
from pipeline.training.clip_sampling import ClipRecipe

N_FRAMES = 12
TRAIN = ClipRecipe(clip_len=4, frame_step=2, width=40, height=24, augment=True)
VAL = ClipRecipe(clip_len=4, frame_step=2, width=40, height=24, augment=False)


def _item(ref: VideoRef, label: int, seed: int = 0) -> dict[str, Any]:
    """An item as the driver builds it: listing, then probing (made-up stream
    facts when the probe fails, as if the probe had been fooled)."""
    info = probe_video(ref)
    return {"uri": ref.uri, "size_bytes": ref.size_bytes, "etag": ref.etag,
            "n_frames": info.n_frames or N_FRAMES, "fps": info.fps or 25.0,
            "width": info.width or 32, "height": info.height or 32, "label": label,
            "seed": clip_seed(seed, 0, ref.uri)}


def _batch(items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Columns as Ray Data's numpy batches hold them (strings as objects)."""
    return {k: np.asarray([i[k] for i in items],
                          dtype=object if isinstance(items[0][k], str) else None)
            for k in items[0]}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """{"good": 4 motion videos of 12 frames at 32 px, "bad": empty, text,
    truncated and corrupt files}, as items."""
    root = tmp_path_factory.mktemp("clips")
    truth = write_motion_corpus(root / "good", per_class=1, frames=N_FRAMES, size=32)
    write_bad_files(root / "bad", Path(sorted(truth)[0]))
    good = [_item(r, label) for label, r in enumerate(list_corpus(str(root / "good")))]
    bad = [_item(r, 0) for r in list_corpus(str(root / "bad"))]
    return {"good": good, "bad": bad}


def test_good_videos_decode_to_clips_at_the_recipes_size(
        videos: dict[str, list[dict[str, Any]]]) -> None:
    good = videos["good"]
    assert [i["n_frames"] for i in good] == [N_FRAMES] * 4  # the probe worked
    for recipe in (TRAIN, VAL):
        out = decode_clip_batch(_batch(good), recipe, StorageOptions())
        assert out["clip"].shape == (4, 4, 24, 40, 3) and out["clip"].dtype == np.uint8
        assert out["ok"].tolist() == [True] * 4
        assert out["label"].dtype == np.int64
        assert out["label"].tolist() == [0, 1, 2, 3]  # no flip pairs: labels kept
        assert all(clip.std() > 0 for clip in out["clip"])  # real pictures, not blank


def test_training_clips_are_reproducible_and_vary_with_the_seed(
        videos: dict[str, list[dict[str, Any]]]) -> None:
    """The same item seeds give the same augmented clips; other seeds others."""
    good = videos["good"]
    first = decode_clip_batch(_batch(good), TRAIN, StorageOptions())["clip"]
    again = decode_clip_batch(_batch(good), TRAIN, StorageOptions())["clip"]
    assert np.array_equal(first, again)
    reseeded = [{**i, "seed": clip_seed(1, 3, i["uri"])} for i in good]
    other = decode_clip_batch(_batch(reseeded), TRAIN, StorageOptions())["clip"]
    assert not np.array_equal(first, other)


def test_validation_clip_is_the_decoders_centre_clip(
        videos: dict[str, list[dict[str, Any]]]) -> None:
    """augment=False gives exactly the frames `vidlake label`'s decoder returns
    for the centre clip: 12 frames, span 7 -> frames 2, 4, 6, 8, at 40x24."""
    good = videos["good"]
    out = decode_clip_batch(_batch(good), VAL, StorageOptions())
    for item, clip in zip(good, out["clip"], strict=True):
        ref = VideoRef(item["uri"], item["size_bytes"], item["etag"])
        unit = WorkUnit(unit_id="all", video=ref, unit_index=0,
                        frame_indices=tuple(range(N_FRAMES)), fps=25.0,
                        end_frame=N_FRAMES, size=FrameSize(40, 24))
        decoded = decode_unit(DecodeSettings(size=FrameSize(40, 24)), unit)
        assert decoded.ok, decoded.error
        assert np.array_equal(clip, decoded.frames[[2, 4, 6, 8]])


def test_clip_longer_than_the_video_repeats_the_last_frame(
        videos: dict[str, list[dict[str, Any]]]) -> None:
    """8 frames 2 apart need 15 frames; a 12-frame video gives 0..10, 11, 11."""
    long = ClipRecipe(clip_len=8, frame_step=2, width=32, height=32, augment=False)
    out = decode_clip_batch(_batch(videos["good"][:1]), long, StorageOptions())
    assert out["ok"].tolist() == [True]
    clip = out["clip"][0]
    assert clip.shape == (8, 32, 32, 3)
    assert np.array_equal(clip[6], clip[7])
    assert not np.array_equal(clip[5], clip[6])  # the shape moves between frames


def test_bad_videos_give_zero_clips_and_ok_false(
        videos: dict[str, list[dict[str, Any]]]) -> None:
    """Empty, text, truncated and corrupt files and a video deleted after
    probing, mixed with a good video in one batch: no exception, the good clip
    is kept, the bad ones are zeros."""
    gone = {**videos["good"][0], "uri": videos["good"][0]["uri"] + ".deleted.mp4"}
    items = [*videos["bad"], gone, videos["good"][0]]
    assert len(videos["bad"]) == 4
    for recipe in (TRAIN, VAL):
        out = decode_clip_batch(_batch(items), recipe, StorageOptions())
        assert out["clip"].shape == (6, 4, 24, 40, 3)
        assert out["ok"].tolist() == [False] * 5 + [True]
        assert not out["clip"][:5].any()
        assert out["clip"][5].any()
        assert out["label"].tolist() == [0, 0, 0, 0, 0, 0]


def test_a_video_that_probes_but_is_corrupt_in_the_middle(tmp_path: Path) -> None:
    """A corrupt file whose header survives passes the probe; its centre clip
    (across the damage) fails to decode and comes back as zeros, ok False."""
    truth = write_motion_corpus(tmp_path / "good", per_class=1, frames=60, size=64)
    write_bad_files(tmp_path / "bad", Path(sorted(truth)[0]))
    (ref,) = list_corpus(str(tmp_path / "bad" / "corrupt.mp4"))
    item = _item(ref, 2)
    assert item["n_frames"] == 60 and (item["width"], item["height"]) == (64, 64)
    out = decode_clip_batch(_batch([item]), VAL, StorageOptions())
    assert out["ok"].tolist() == [False]
    assert not out["clip"].any()
    assert out["label"].tolist() == [2]


def test_keyframe_clips_decode_the_keyframes_they_name(tmp_path: Path) -> None:
    """--sample keyframes: the probe's keyframes ride in the item (as Ray Data
    carries them), and the validation clip is the centre run of keyframes,
    decoded alone: frames 10, 20, 30 of a video with a keyframe every 10."""
    write_video(tmp_path / "v.mkv", index_pattern_frames(60), codec="lossless", gop=10)
    (ref,) = list_corpus(str(tmp_path / "v.mkv"))
    info = probe_video(ref, keyframes=True)
    assert info.keyframes is not None and info.keyframes.tolist() == [0, 10, 20, 30, 40, 50]
    item = {**_item(ref, 0), "keyframes": info.keyframes.tolist()}
    recipe = ClipRecipe(clip_len=3, frame_step=1, width=32, height=32, augment=False,
                        sample=SampleSpec.parse("keyframes"))
    out = decode_clip_batch(_batch([item, item]), recipe, StorageOptions())
    assert out["ok"].tolist() == [True, True]
    assert out["clip"][0, :, :, :, 0].mean(axis=(1, 2)).round().tolist() == [10, 20, 30]
