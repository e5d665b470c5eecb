"""small_3d, vidlake's own 3D CNN: its build, shapes and size, its stated
preprocessing (no torchvision weight enum), its place in the registry and
training, a checkpoint round trip, and hostile checkpoint configs refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.analyses.model_loader import load_model
from pipeline.config import ModelSpec
from pipeline.errors import ConfigError
from pipeline.models import registry, video_cnn
from pipeline.models.checkpoint import save_checkpoint
from pipeline.models.small_3d import build_small_3d
from pipeline.models.video_cnn import (
    build_video_cnn,
    clip_batch,
    output_layer_name,
    preprocess_for,
    trained_preprocess,
    video_num_classes_in,
)
from pipeline.storage_options import StorageOptions
from pipeline.training.model_shape import TRAINABLE, ModelShape
from pipeline.training.trainable import Trainable

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# Conv3d weights 27 * (3*16 + 16*32 + 32*64 + 64*128), BatchNorm weight and
# bias 2 * (16 + 32 + 64 + 128), the head 128 * 4 + 4.
PARAMS_4_CLASSES = 27 * (3 * 16 + 16 * 32 + 32 * 64 + 64 * 128) + 2 * 240 + 128 * 4 + 4


def test_forward_shapes_for_any_clip_length_and_size() -> None:
    model = build_video_cnn("small_3d", 4).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 8, 64, 64)).shape == (2, 4)
        assert model(torch.randn(1, 3, 1, 16, 16)).shape == (1, 4)  # the pool is adaptive
        assert model(torch.randn(1, 3, 13, 73, 98)).shape == (1, 4)


def test_parameter_count_is_cpu_sized() -> None:
    model = build_small_3d(4)
    assert sum(p.numel() for p in model.parameters()) == PARAMS_4_CLASSES == 292_596
    assert output_layer_name("small_3d") == "fc"
    assert video_num_classes_in("small_3d", model.state_dict()) == 4


def test_training_mode_backward_reaches_every_parameter() -> None:
    model = build_small_3d(3).train()
    model(torch.randn(2, 3, 8, 32, 32)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_preprocess_is_stated_without_a_torchvision_weight_enum(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_enum(arch: str) -> None:
        raise AssertionError(f"asked torchvision for {arch}'s weights")

    preprocess_for.cache_clear()
    monkeypatch.setattr(video_cnn, "_weights", no_enum)
    pre = preprocess_for("small_3d")
    preprocess_for.cache_clear()
    assert pre.mean == pytest.approx(KINETICS_MEAN) and pre.std == pytest.approx(KINETICS_STD)
    shape = ModelShape("small_3d")  # the plain command's defaults
    width, height = shape.decode_size()
    assert (pre.resize, pre.crop) == ((height, width), (shape.side, shape.side))
    assert (pre.clip_len, pre.min_len, pre.fixed_len) == (shape.clip_len, 1, False)
    assert registry.CLIP_DEFAULTS["small_3d"] == (width, height, shape.clip_len)


def test_clip_batch_gives_the_model_the_whole_frame() -> None:
    """No centre crop: at its own size a frame is only normalised, every pixel kept."""
    frames = np.random.default_rng(1).integers(0, 256, (2, 8, 64, 64, 3), dtype=np.uint8)
    pre = preprocess_for("small_3d")
    batch = clip_batch(frames, pre, "cpu")
    assert batch.shape == (2, 3, 8, 64, 64)
    mean, std = torch.tensor(pre.mean).view(3, 1, 1, 1), torch.tensor(pre.std).view(3, 1, 1, 1)
    pixels = torch.from_numpy(frames[1]).permute(3, 0, 1, 2).float() / 255
    torch.testing.assert_close(batch[1], (pixels - mean) / std, atol=1e-5, rtol=1e-5)
    # another size is resized whole (aspect not kept), as the CNN+RNN's frames are
    wide = np.zeros((2, 2, 90, 160, 3), np.uint8)
    assert clip_batch(wide, pre, "cpu").shape == (2, 3, 2, 64, 64)


def test_a_first_class_clip_model_that_trains() -> None:
    assert registry.family_of("small_3d") == "clip"
    assert registry.kind_for_arch("small_3d") == "clip_labels"
    registry.check_arch("clip", "small_3d")
    assert "small_3d" in registry.BUILT_IN and "small_3d" in TRAINABLE
    shape = ModelShape("small_3d")
    assert (shape.family, shape.side, shape.clip_len, shape.frame_step) == ("video", 64, 8, 2)
    assert shape.decode_size() == (64, 64)
    # the other architectures keep their defaults
    assert (ModelShape("r3d_18").side, ModelShape("s3d").side, ModelShape("cnn_gru").side) \
        == (112, 224, 64)


def test_trained_checkpoint_round_trip_labels_with_weights_alone(tmp_path: Path) -> None:
    trainable = Trainable(ModelShape("small_3d"), num_classes=4)
    trainable.check_input()
    state, config = trainable.export(trainable.module)
    assert config == {"clip": {"clip_len": 8, "frame_step": 2, "resize": [64, 64],
                               "crop": [64, 64]}}
    path = tmp_path / "model.pt"
    save_checkpoint(str(path), arch="small_3d", state_dict=state,
                    label_names=["down", "left", "right", "up"], config=config)
    info, model = load_model(ModelSpec("auto", weights_uri=str(path)), StorageOptions(), "clip")
    assert (info.arch, info.label_names, info.config) == (
        "small_3d", ("down", "left", "right", "up"), config)
    pre = trained_preprocess("small_3d", info.config)
    assert (pre.resize, pre.crop, pre.clip_len) == ((64, 64), (64, 64), 8)
    clips = np.random.default_rng(0).integers(0, 256, (2, 8, 64, 64, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = trainable.module.eval()(trainable.inputs(clips, "cpu"))
        torch.testing.assert_close(model(clip_batch(clips, pre, "cpu")), expected)


_CLIP = {"clip_len": 8, "frame_step": 2, "resize": [64, 64], "crop": [64, 64]}


@pytest.mark.parametrize(("config", "needle"), [
    ({"clip": {**_CLIP, "clip_len": 10**9}}, "config.clip.clip_len must be"),
    ({"clip": {**_CLIP, "crop": [128, 128]}}, "config.clip.crop [128, 128] is larger"),
    ({"clip": {**_CLIP, "frame_step": torch.tensor(2)}}, "config.clip.frame_step holds a"),
    ({"clip": _CLIP, "builder": "os:system"}, "config.builder is not an option"),
    ({"clip": {"clip_len": 8, "resize": [64, 64]}}, "config.clip.crop is missing"),
    ({"cnn_rnn": {"backbone": "small_cnn"}}, "config.cnn_rnn is not an option"),
], ids=["huge-clip-len", "crop-over-resize", "tensor", "builder", "no-crop", "rnn-section"])
def test_hostile_configs_are_refused(tmp_path: Path, config: dict[str, object],
                                     needle: str) -> None:
    """What a checkpoint's config may say is checked, plain data in range, before
    anything is built from it."""
    path = tmp_path / "model.pt"
    save_checkpoint(str(path), arch="small_3d", state_dict=build_small_3d(2).state_dict(),
                    label_names=["a", "b"], config=config)
    with pytest.raises(ConfigError) as refused:
        load_model(ModelSpec("auto", weights_uri=str(path)), StorageOptions(), "clip")
    assert str(refused.value).startswith(f"weights {str(path)!r}: {needle}")
