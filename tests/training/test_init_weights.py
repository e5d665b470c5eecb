"""--init-weights without Ray: torchvision-format and vidlake weights files are
matched to the model tensor by tensor, the head is replaced for new labels,
files of another architecture are refused, and the fine-tuning flags are
honoured or refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from pipeline.errors import ConfigError
from pipeline.models.checkpoint import load_weights, save_checkpoint
from pipeline.training.finetune import FineTune, FineTuneFlags, param_groups, set_frozen
from pipeline.training.init_weights import inherited_shape, pretrained_start
from pipeline.training.model_shape import ModelShape
from pipeline.training.trainable import Trainable

LABELS = ("a", "b", "c")
RNN = ModelShape("cnn_gru", clip_len=2, size=32, backbone="resnet18", hidden_size=16,
                 pool_grid=1)


def _saved(path: Path, state: dict[str, torch.Tensor]) -> str:
    torch.save(state, path)
    return str(path)


def _start(shape: ModelShape, uri: str, flags: FineTuneFlags | None = None,
           labels: tuple[str, ...] = LABELS):
    flags = flags or FineTuneFlags(uri)
    return pretrained_start(Trainable(shape, len(labels)), labels, load_weights(uri), flags, uri)


def test_kinetics_weights_load_into_a_3d_cnn_with_a_new_head(tmp_path: Path):
    kinetics = torchvision.models.video.r3d_18(weights=None, num_classes=400).state_dict()
    uri = _saved(tmp_path / "r3d_18-b3b3357e.pth", kinetics)
    start = _start(ModelShape("r3d_18"), uri)
    assert set(start.report.new) == {"fc.weight", "fc.bias"}
    assert set(start.report.ignored) == {"fc.weight", "fc.bias"}  # the Kinetics head
    assert len(start.report.loaded) == len(kinetics) - 2 and not start.report.head_kept
    assert torch.equal(start.state["stem.0.weight"], kinetics["stem.0.weight"])
    assert start.state["fc.weight"].shape == (3, 512)
    # everything but the head is the backbone, and pretrained
    assert set(start.finetune.backbone) == set(start.finetune.pretrained)
    assert "fc.weight" not in start.finetune.pretrained
    assert f"loaded {len(kinetics) - 2} tensors, new 2 (fc.weight, fc.bias)" in start.report.line()


def test_imagenet_weights_become_the_cnn_rnn_backbone(tmp_path: Path):
    imagenet = torchvision.models.resnet18(weights=None).state_dict()
    imagenet["conv1.weight"] = torch.full_like(imagenet["conv1.weight"], 0.5)
    uri = _saved(tmp_path / "resnet18-f37072fd.pth", imagenet)
    start = _start(RNN, uri)
    assert torch.equal(start.state["backbone.conv1.weight"], imagenet["conv1.weight"])
    assert set(start.report.ignored) == {"fc.weight", "fc.bias"}  # ImageNet's classifier
    assert {n.split(".")[0] for n in start.report.new} == {"rnn", "classifier"}
    assert all(n.startswith("backbone.") for n in start.finetune.backbone)
    assert set(start.finetune.pretrained) == set(start.finetune.backbone)


def test_a_data_parallel_save_loads_into_a_frame_cnn(tmp_path: Path):
    imagenet = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    uri = _saved(tmp_path / "ddp.pt", {f"module.{k}": v for k, v in imagenet.items()})
    start = _start(ModelShape("mobilenet_v3_small", size=32), uri)
    assert {n.rsplit(".", 1)[0] for n in start.report.new} == {"frame_model.classifier.3"}
    assert torch.equal(start.state["frame_model.features.0.0.weight"],
                       imagenet["features.0.0.weight"])


def test_another_architecture_is_refused_not_half_loaded(tmp_path: Path):
    resnet = _saved(tmp_path / "resnet18.pth", torchvision.models.resnet18().state_dict())
    with pytest.raises(ConfigError, match="differ in shape"):  # 2D kernels for a 3D CNN
        _start(ModelShape("r3d_18"), resnet)
    mobilenet = _saved(tmp_path / "mnv3.pth",
                       torchvision.models.mobilenet_v3_small().state_dict())
    with pytest.raises(ConfigError, match=r"lacks .* backbone"):
        _start(RNN, mobilenet)


def test_non_finite_weights_are_refused(tmp_path: Path):
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["layer1.0.bn1.running_var"][3] = float("nan")
    with pytest.raises(ConfigError, match=r"layer1\.0\.bn1\.running_var.*NaN"):
        _start(RNN, _saved(tmp_path / "nan.pth", state))


def _model_pt(tmp_path: Path, shape: ModelShape, labels: tuple[str, ...]) -> str:
    trainable = Trainable(shape, len(labels))
    state, config = trainable.export(trainable.module)
    path = tmp_path / "model.pt"
    save_checkpoint(str(path), arch=shape.arch, state_dict=state, label_names=list(labels),
                    config=config)
    return str(path)


def test_a_vidlake_model_keeps_its_head_for_the_same_labels_and_gives_its_shape(
        tmp_path: Path):
    pretrained = ModelShape("cnn_gru", clip_len=3, frame_step=4, size=48, pool_grid=2,
                            hidden_size=24)
    uri = _model_pt(tmp_path, pretrained, LABELS)
    weights = load_weights(uri)
    # what the user left to default comes from the file; what they chose stays
    shape = inherited_shape(ModelShape("cnn_gru", clip_len=5), ("frame_step", "size",
                            "backbone", "hidden_size", "pool_grid"), weights)
    assert (shape.clip_len, shape.frame_step, shape.side, shape.pool_grid,
            shape.hidden_size) == (5, 4, 48, 2, 24)
    same = _start(shape, uri)
    assert same.report.head_kept and not same.report.new and not same.report.ignored
    other = _start(shape, uri, labels=("x", "y"))
    assert not other.report.head_kept
    assert set(other.report.new) == {"classifier.weight", "classifier.bias"}


def test_a_layer_of_another_size_outside_the_backbone_is_refused(tmp_path: Path):
    uri = _model_pt(tmp_path, ModelShape("cnn_gru", size=32, hidden_size=24), LABELS)
    with pytest.raises(ConfigError, match=r"rnn\.weight_ih_l0"):
        _start(ModelShape("cnn_gru", size=32, hidden_size=16), uri)


@pytest.mark.parametrize(("flags", "message"), [
    (FineTuneFlags(freeze="backbone"), "--freeze backbone needs --init-weights"),
    (FineTuneFlags(backbone_lr_scale=0.5), "--backbone-lr-scale needs --init-weights"),
    (FineTuneFlags("w.pt", unfreeze_after=2), "--unfreeze-after needs --freeze backbone"),
    (FineTuneFlags("w.pt", "backbone", unfreeze_after=5), "never train"),
])
def test_fine_tuning_flags_without_effect_are_refused(flags: FineTuneFlags, message: str):
    with pytest.raises(ConfigError, match=message):
        flags.check(epochs=5)
    FineTuneFlags("w.pt", "backbone", unfreeze_after=4, backbone_lr_scale=0.5).check(epochs=5)


def test_pretrained_layers_train_slower_and_freeze_until_unfrozen(tmp_path: Path):
    uri = _saved(tmp_path / "resnet18.pth", torchvision.models.resnet18().state_dict())
    flags = FineTuneFlags(uri, "backbone", unfreeze_after=2, backbone_lr_scale=0.25)
    start = _start(RNN, uri, flags)
    finetune: FineTune = start.finetune
    module = Trainable(RNN, 3).module
    new, pretrained = param_groups(module, 0.01, finetune)
    assert pretrained["lr"] == pytest.approx(0.0025) and new["lr"] == 0.01
    assert len(new["params"]) + len(pretrained["params"]) == len(list(module.parameters()))
    assert [finetune.frozen_in(e) for e in range(4)] == [True, True, False, False]
    assert set_frozen(module, finetune.backbone, True)
    assert not set_frozen(module, finetune.backbone, True)  # already frozen: no change
    module(torch.zeros(1, 2, 3, 32, 32)).sum().backward()
    grads = {n: p.grad is not None for n, p in module.named_parameters()}
    assert not any(grads[n] for n in finetune.backbone)
    assert grads["rnn.weight_ih_l0"] and grads["classifier.weight"]
    assert param_groups(module, 0.01, None)[0]["lr"] == 0.01


def test_mvit_trains_on_its_own_clip_length_from_kinetics_weights(tmp_path: Path):
    """mvit_v2_s is trainable at the 16 x 224 px it is built for (the plain
    --model gets clip length 16), and its Kinetics state_dict loads with a
    new head; another clip length is refused before any work."""
    from pipeline.training.model_shape import arch_defaults

    shape = ModelShape("mvit_v2_s", clip_len=arch_defaults("mvit_v2_s")["clip_len"])
    assert (shape.clip_len, shape.side, shape.decode_size()) == (16, 224, (256, 256))
    kinetics = torchvision.models.video.mvit_v2_s(weights=None, num_classes=400).state_dict()
    start = _start(shape, _saved(tmp_path / "mvit_v2_s-ae3be167.pth", kinetics))
    assert set(start.report.new) == {"head.1.weight", "head.1.bias"}
    assert len(start.report.loaded) == len(kinetics) - 2
    with pytest.raises(ConfigError, match="--clip-len"):
        Trainable(ModelShape("mvit_v2_s", clip_len=8), 3).check_input()


def test_a_model_pt_cannot_size_the_run_beyond_the_flags(tmp_path: Path):
    """The input size a model.pt records is a hint: one the --size flag would
    refuse (a hostile 8192 px, checked as a valid option by the header) stops
    the run instead of decoding every clip at 8192 x 8192."""
    uri = _model_pt(tmp_path, ModelShape("cnn_gru", size=32), LABELS)
    weights = load_weights(uri)
    weights.extra["config"]["cnn_rnn"]["input_size"] = 8192
    with pytest.raises(ConfigError, match="size 8192"):
        inherited_shape(ModelShape("cnn_gru"), ("size",), weights)
    assert inherited_shape(ModelShape("cnn_gru", size=64), (), weights).side == 64
