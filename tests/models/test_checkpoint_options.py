"""The checks a checkpoint header goes through accept everything vidlake itself
writes and builds: the torch-free option declarations match the classes they
mirror, training's exports pass them, every built-in architecture builds on
the meta device with the real build's tensor names and shapes, and the
memory budget that build is held to leaves room for float16 weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from pipeline.analyses.model_loader import _check_shapes, load_model
from pipeline.config import ModelSpec
from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.models.checkpoint import save_checkpoint
from pipeline.models.checkpoint_header import check_options
from pipeline.models.cnn_rnn import RNN_BACKBONES, CnnRnnConfig
from pipeline.storage_options import StorageOptions
from pipeline.training.model_shape import ModelShape
from pipeline.training.trainable import Trainable

DETECTOR_OPTIONS = {"score_threshold": 0.5, "max_boxes": 10, "min_size": 0}


def test_cnn_rnn_options_mirror_the_config_class():
    assert set(registry.CNN_RNN_OPTIONS) == {f.name for f in dataclasses.fields(CnnRnnConfig)}
    assert registry.CNN_RNN_BACKBONES == RNN_BACKBONES
    check_options(CnnRnnConfig().to_dict(), registry.CNN_RNN_OPTIONS, "cnn_rnn", "defaults")


@pytest.mark.parametrize("shape", [
    ModelShape("cnn_lstm", clip_len=4, frame_step=2, size=32, backbone="small_cnn",
               hidden_size=16, pool_grid=2),
    ModelShape("r3d_18", clip_len=4, frame_step=2, size=32),
    ModelShape("resnet18", clip_len=4, size=32),
], ids=lambda s: s.arch)
def test_what_training_exports_passes_the_header_checks(shape: ModelShape):
    trainable = Trainable(shape, num_classes=2)
    _, config = trainable.export(trainable.module)
    registry.check_config(shape.arch, config, "weights 'model.pt'")


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", sorted(registry.BUILT_IN))
def test_meta_build_has_the_real_builds_tensors(arch: str):
    """load_model compares weights with a meta-device build before building for
    real: for every built-in, that build must be the real one's shapes."""
    family = registry.family_of(arch) or ""
    config = DETECTOR_OPTIONS if family == "detection" else {}
    with torch.device("meta"):
        meta = registry.build(family, arch, 3, config)
    assert {t.device.type for t in meta.state_dict().values()} == {"meta"}
    assert _shapes(meta) == _shapes(registry.build(family, arch, 3, config))


def test_half_precision_weights_still_load(tmp_path: Path) -> None:
    """float16 weights fill float32 parameters: twice the file, within the budget."""
    path = tmp_path / "half.pt"
    model = registry.build("frame", "mobilenet_v3_small", 3, {})
    save_checkpoint(str(path), arch="mobilenet_v3_small", label_names=["a", "b", "c"],
                    state_dict={k: v.half() for k, v in model.state_dict().items()})
    info, loaded = load_model(ModelSpec("auto", weights_uri=str(path)), StorageOptions(), "frame")
    assert info.label_names == ("a", "b", "c")
    assert next(loaded.parameters()).dtype == torch.float32


def test_the_meta_build_is_held_to_its_budget() -> None:
    with pytest.raises(ConfigError, match=r"^no --weights: mobilenet_v3_small with 3 classes "
                                          r"needs \d+ MiB, over the 1,000 bytes of a test cap$"):
        _check_shapes("frame", "mobilenet_v3_small", 3, {}, None, (1000, "a test cap"),
                      "no --weights")
