"""Clip models: torchvision video CNNs (documented preprocessing, shapes) and the
CNN+RNN family (shapes, config, checkpoints, temporal sensitivity, BN fusion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.checkpoint import load_weights, save_checkpoint
from pipeline.models.cnn_rnn import (
    RNN_ARCHS,
    CnnRnnConfig,
    build_cnn_rnn,
    frames_batch,
    headless_backbone,
    rnn_num_classes_in,
)
from pipeline.models.frame_cnn import IMAGENET_MEAN, IMAGENET_STD, fuse_for_inference
from pipeline.models.video_cnn import (
    build_video_cnn,
    check_video_arch,
    clip_batch,
    kinetics400_label_names,
    preprocess_for,
    resized_hw,
    video_num_classes_in,
)

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# Smallest inputs each model accepts: s3d pools 2x7x7 at the end (>= 14x224x224
# documented), mvit_v2_s is built for exactly 16x224x224.
SMALL_INPUT = {"r3d_18": (4, 32, 32), "mc3_18": (4, 32, 32), "r2plus1d_18": (4, 32, 32),
               "s3d": (14, 224, 224), "mvit_v2_s": (16, 224, 224)}
SMALL_RNN = {"backbone": "mobilenet_v3_small", "hidden_size": 16, "input_size": 32}


def rand_clip(n: int, t: int, h: int, w: int, channels_first: bool = True) -> Any:
    gen = torch.Generator().manual_seed(n * 1000 + t)
    shape = (n, 3, t, h, w) if channels_first else (n, t, 3, h, w)
    return torch.randn(shape, generator=gen)


def randomize_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics, so that folding BN into conv is really tested
    (fresh BN layers are the identity up to eps)."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                shape = m.running_mean.shape  # type: ignore[union-attr]
                m.running_mean.copy_(torch.randn(shape, generator=gen) * 0.1)  # type: ignore[union-attr]
                m.running_var.copy_(torch.rand(shape, generator=gen) + 0.5)  # type: ignore[union-attr]
                m.weight.copy_(torch.rand(shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(shape, generator=gen) * 0.1)


# -- torchvision video CNNs ------------------------------------------------------
def test_r3d_preprocess_is_torchvisions_kinetics_preset() -> None:
    pre = preprocess_for("r3d_18")
    assert pre.resize == (128, 171)
    assert pre.crop == (112, 112)
    assert pre.mean == pytest.approx(KINETICS_MEAN)
    assert pre.std == pytest.approx(KINETICS_STD)
    assert (pre.clip_len, pre.fixed_len) == (16, False)
    assert preprocess_for("mc3_18") == preprocess_for("r2plus1d_18") == pre


def test_s3d_and_mvit_preprocess_differ_as_documented() -> None:
    s3d = preprocess_for("s3d")
    assert (s3d.resize, s3d.crop) == ((256, 256), (224, 224))
    assert s3d.mean == pytest.approx(KINETICS_MEAN)  # the preset's defaults
    assert (s3d.clip_len, s3d.min_len, s3d.fixed_len) == (128, 14, False)
    mvit = preprocess_for("mvit_v2_s")
    assert mvit.resize == (256,)  # shorter side, aspect kept
    assert mvit.crop == (224, 224)
    assert mvit.mean == pytest.approx((0.45, 0.45, 0.45))
    assert mvit.std == pytest.approx((0.225, 0.225, 0.225))
    assert (mvit.clip_len, mvit.min_len, mvit.fixed_len) == (16, 16, True)


def test_unknown_video_arch_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="r2plus1d_18"):
        check_video_arch("x3d_s")
    with pytest.raises(ConfigError):
        preprocess_for("resnet18")


def test_kinetics_label_names_offline() -> None:
    names = kinetics400_label_names()
    assert len(names) == 400 and len(set(names)) == 400
    assert names[0] == "abseiling"


@pytest.mark.parametrize("arch", ["r3d_18", "mc3_18", "r2plus1d_18", "s3d"])
def test_video_cnn_forward_shape_and_batchnorm_fusion(arch: str) -> None:
    model = build_video_cnn(arch, 5)
    randomize_batchnorm(model)
    model.eval()
    batch = 1 if arch == "s3d" else 2  # s3d's smallest clip is already 14x224x224
    x = rand_clip(batch, *SMALL_INPUT[arch])
    with torch.inference_mode():
        expected = model(x)
        fused = fuse_for_inference(model)
        assert fused is not model  # torch.fx traced it
        torch.testing.assert_close(fused(x), expected, atol=1e-4, rtol=1e-4)
    assert expected.shape == (batch, 5)
    assert video_num_classes_in(arch, model.state_dict()) == 5


def test_mvit_forward_needs_exactly_16x224() -> None:
    model = build_video_cnn("mvit_v2_s", 3).eval()
    with torch.inference_mode():
        assert model(rand_clip(1, 16, 224, 224)).shape == (1, 3)
        with pytest.raises(RuntimeError):
            model(rand_clip(1, 8, 224, 224))


def test_video_num_classes_reads_the_output_layer() -> None:
    # S3D scores classes with a 1x1x1 Conv3d, not a Linear.
    assert video_num_classes_in("s3d", {"classifier.1.weight": torch.zeros(7, 1024, 1, 1, 1)}) == 7
    with pytest.raises(ConfigError, match=r"fc\.weight"):
        video_num_classes_in("r3d_18", {"stem.0.weight": torch.zeros(1)})


def test_clip_batch_normalizes_a_constant_colour() -> None:
    frames = np.empty((2, 3, 90, 160, 3), dtype=np.uint8)
    frames[...] = (255, 128, 0)
    pre = preprocess_for("r3d_18")
    out = clip_batch(frames, pre, "cpu")
    assert out.shape == (2, 3, 3, 112, 112) and out.dtype == torch.float32
    for c, value in enumerate((255, 128, 0)):
        expected = (value / 255 - pre.mean[c]) / pre.std[c]
        assert out[:, c].min().item() == pytest.approx(expected, abs=1e-5)
        assert out[:, c].max().item() == pytest.approx(expected, abs=1e-5)


def test_clip_batch_crops_the_centre_without_resizing_at_target_size() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (1, 2, 128, 171, 3), dtype=np.uint8)
    pre = preprocess_for("r3d_18")
    out = clip_batch(frames, pre, "cpu")
    # torchvision's center_crop offsets: round((128-112)/2)=8, round((171-112)/2)=30
    window = torch.from_numpy(frames[0, :, 8:120, 30:142]).permute(3, 0, 1, 2).float() / 255
    mean, std = torch.tensor(pre.mean).view(3, 1, 1, 1), torch.tensor(pre.std).view(3, 1, 1, 1)
    torch.testing.assert_close(out[0], (window - mean) / std, atol=1e-5, rtol=1e-5)


def test_shorter_side_resize_keeps_aspect() -> None:
    assert resized_hw((256,), 1080, 1920) == (256, 455)
    assert resized_hw((256,), 640, 360) == (455, 256)
    assert resized_hw((128, 171), 1080, 1920) == (128, 171)
    frames = np.zeros((1, 2, 90, 160, 3), dtype=np.uint8)
    assert clip_batch(frames, preprocess_for("mvit_v2_s"), "cpu").shape == (1, 3, 2, 224, 224)


@pytest.mark.slow
def test_fuse_traces_mvit() -> None:
    # MViT has no BatchNorm; the point is that torch.fx can trace it unchanged.
    model = build_video_cnn("mvit_v2_s", 3).eval()
    x = rand_clip(1, 16, 224, 224)
    with torch.inference_mode():
        expected = model(x)
        fused = fuse_for_inference(model)
        assert fused is not model
        torch.testing.assert_close(fused(x), expected, atol=1e-4, rtol=1e-4)


# -- CNN + RNN ------------------------------------------------------------------
@pytest.mark.parametrize(("arch", "bidirectional", "num_layers", "t"), [
    ("cnn_gru", False, 1, 1), ("cnn_gru", True, 2, 5),
    ("cnn_lstm", False, 1, 5), ("cnn_lstm", True, 2, 1),
])
def test_cnn_rnn_forward_shape(arch: str, bidirectional: bool, num_layers: int, t: int) -> None:
    config = {**SMALL_RNN, "bidirectional": bidirectional, "num_layers": num_layers,
              "dropout": 0.1}
    model = build_cnn_rnn(arch, 3, config).eval()
    with torch.inference_mode():
        assert model(rand_clip(2, t, 32, 32, channels_first=False)).shape == (2, 3)
    assert rnn_num_classes_in(model.state_dict()) == 3


@pytest.mark.parametrize(("backbone", "width"), [
    ("resnet18", 512), ("mobilenet_v3_small", 576), ("efficientnet_b0", 1280)])
def test_backbones_give_pooled_features(backbone: str, width: int) -> None:
    net, found = headless_backbone(backbone)
    assert found == width
    with torch.inference_mode():
        assert net.eval()(torch.randn(3, 3, 32, 32)).shape == (3, width)


def test_config_round_trip_and_validation() -> None:
    config = CnnRnnConfig(backbone="resnet18", hidden_size=32, bidirectional=True)
    assert CnnRnnConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown CNN\\+RNN option 'added_later'"):
        CnnRnnConfig.from_dict({**config.to_dict(), "added_later": 1})  # refused, not ignored
    assert all(isinstance(v, (str, int, float, bool)) for v in config.to_dict().values())
    with pytest.raises(ConfigError, match="efficientnet_b0"):
        CnnRnnConfig.from_dict({"backbone": "vgg16"})
    for bad in ({"hidden_size": 0}, {"num_layers": "2"}, {"dropout": 1.0},
                {"input_size": 8}, {"bidirectional": "yes"}):
        with pytest.raises(ConfigError):
            CnnRnnConfig.from_dict(bad)
    with pytest.raises(ConfigError, match="cnn_lstm"):
        build_cnn_rnn("cnn_tcn", 2)
    with pytest.raises(ConfigError):
        rnn_num_classes_in({})


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    config = CnnRnnConfig(hidden_size=16, input_size=32, num_layers=2, bidirectional=True)
    model = build_cnn_rnn("cnn_gru", 2, config).eval()
    path = str(tmp_path / "gru.pt")
    save_checkpoint(path, arch="cnn_gru", state_dict=model.state_dict(),
                    label_names=["walk", "run"], config=config.to_dict())
    loaded = load_weights(path)  # weights_only=True
    assert loaded.arch == "cnn_gru" and loaded.label_names == ("walk", "run")
    rebuilt = build_cnn_rnn("cnn_gru", rnn_num_classes_in(loaded.state_dict),
                            loaded.extra["config"]).eval()
    rebuilt.load_state_dict(loaded.state_dict, strict=True)
    x = rand_clip(2, 3, 32, 32, channels_first=False)
    with torch.inference_mode():
        assert torch.equal(rebuilt(x), model(x))


@pytest.mark.parametrize("arch", RNN_ARCHS)
def test_cnn_rnn_depends_on_frame_order_not_on_batch(arch: str) -> None:
    # resnet18: an untrained mobilenet/efficientnet in eval mode (fresh BN statistics)
    # emits ~1e-9 features for every input, so its logits are input-independent.
    model = build_cnn_rnn(arch, 4, {**SMALL_RNN, "backbone": "resnet18"}).eval()
    x = rand_clip(2, 6, 32, 32, channels_first=False)
    with torch.inference_mode():
        logits = model(x)
        reversed_logits = model(x.flip(1))
        alone = model(x[:1])
    assert (logits - reversed_logits).abs().max().item() > 1e-4
    torch.testing.assert_close(alone[0], logits[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", RNN_ARCHS)
def test_fuse_folds_batchnorm_in_cnn_rnn(arch: str) -> None:
    model = build_cnn_rnn(arch, 3, {**SMALL_RNN, "backbone": "resnet18", "bidirectional": True})
    randomize_batchnorm(model)
    model.eval()
    x = rand_clip(2, 3, 32, 32, channels_first=False)
    with torch.inference_mode():
        expected = model(x)
        fused = fuse_for_inference(model)
        assert fused is not model
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        torch.testing.assert_close(fused(x), expected, atol=1e-4, rtol=1e-4)


def test_frames_batch_imagenet_normalization() -> None:
    frames = np.empty((2, 5, 48, 64, 3), dtype=np.uint8)
    frames[...] = (0, 64, 255)
    out = frames_batch(frames, CnnRnnConfig(input_size=40), "cpu")
    assert out.shape == (2, 5, 3, 40, 40) and out.dtype == torch.float32
    for c, value in enumerate((0, 64, 255)):
        expected = (value / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert out[:, :, c].sub(expected).abs().max().item() < 1e-5
