"""`vidlake train --init-weights` end to end on a real local Ray: a model
trained here is fine-tuned on 2 DDP workers with its backbone frozen, then
unfrozen; flags that cannot take effect and files that do not fit are refused
with one line before any work."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from pipeline.synthetic.corpus_builder import write_motion_corpus
from tests.lakes import rows
from tests.procs import run_cli

# A small, fast model (as tests/jobs/test_train.py): 32 px, 4-frame clips.
MODEL = ["--model", "cnn_gru", "--pool-grid", "2", "--size", "32", "--clip-len", "4",
         "--batch-size", "4", "--val-fraction", "0.5"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("motion")
    write_motion_corpus(root, per_class=6, frames=16, size=32, seed=5)
    return root


@pytest.fixture(scope="module")
def pretrained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.pt of one epoch of MODEL on `corpus`."""
    out = tmp_path_factory.mktemp("pretrained")
    done = run_cli("train", str(corpus), "--output", str(out), *MODEL, "--epochs", "1",
                   env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "model.pt"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["model"] if "model" in state else state["state_dict"]


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(600)
def test_a_frozen_backbone_trains_after_unfreezing_on_two_workers(
        corpus: Path, pretrained: Path, tmp_path: Path):
    out = tmp_path / "finetuned"
    done = run_cli("train", str(corpus), "--output", str(out), "--model", "cnn_gru",
                   "--batch-size", "4", "--val-fraction", "0.5", "--epochs", "2",
                   "--num-workers", "2", "--init-weights", str(pretrained),
                   "--freeze", "backbone", "--unfreeze-after", "1",
                   "--backbone-lr-scale", "0.25", env=_env(), timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]
    # the same labels: every tensor loads, the head too
    assert "loaded" in done.stdout and "classifier head kept (same labels)" in done.stdout
    metrics = rows(str(out), "SELECT epoch, lr, backbone_lr, backbone_frozen, workers "
                             "FROM training_metrics ORDER BY epoch")
    assert [m["backbone_frozen"] for m in metrics] == [True, False]
    assert all(m["workers"] == 2 for m in metrics)
    assert metrics[0]["backbone_lr"] == pytest.approx(metrics[0]["lr"] * 0.25)
    start, first, second = (_weights(p) for p in (
        pretrained, out / "checkpoints" / "epoch_0001.pt", out / "checkpoints" / "epoch_0002.pt"))
    conv = "backbone.features.0.weight"
    assert torch.equal(first[conv], start[conv])  # frozen in epoch 1
    assert not torch.equal(second[conv], first[conv])  # trained in epoch 2
    assert not torch.equal(first["rnn.weight_hh_l0"], start["rnn.weight_hh_l0"])
    exported = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
    assert exported["config"]["cnn_rnn"]["input_size"] == 32  # inherited, not the default 64
    assert exported["trained"]["finetune"]["freeze"] == "backbone"

    # a resumed run must keep its fine-tuning settings
    changed = run_cli("train", str(corpus), "--output", str(out), "--model", "cnn_gru",
                      "--epochs", "3", "--resume", "--init-weights", str(pretrained),
                      "--freeze", "backbone", "--unfreeze-after", "1", env=_env())
    assert "backbone_lr_scale=0.25" in _refused(changed)
    same = ["--init-weights", str(pretrained), "--freeze", "backbone", "--unfreeze-after", "1",
            "--backbone-lr-scale", "0.25"]
    reselected = run_cli("train", str(corpus), "--output", str(out), "--model", "cnn_gru",
                         "--epochs", "3", "--resume", *same, "--select-by", "macro_f1",
                         env=_env())
    assert "resume it with --select-by top1" in _refused(reselected)

    lake = tmp_path / "lake"
    labelled = run_cli("label", str(corpus / "up"), "--output", str(lake), "--engine",
                       "sequential", "--weights", str(out / "model.pt"), env=_env())
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    assert len(rows(str(lake), "SELECT * FROM clip_labels")) == 6


def _refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a run refused with exit 2 (after any log lines)."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("vidlake train: error:"), done.stderr
    return last


# (tests/training/test_init_weights.py checks every combination without a process)
@pytest.mark.parametrize(("flags", "message"), [
    (["--freeze", "backbone"], "--freeze backbone needs --init-weights"),
    (["--init-weights", "W", "--backbone-lr-scale", "0"], "--backbone-lr-scale"),
])
def test_fine_tuning_flags_that_cannot_take_effect_are_refused(
        corpus: Path, tmp_path: Path, flags: list[str], message: str):
    flags = [str(tmp_path / "w.pt") if f == "W" else f for f in flags]
    done = run_cli("train", str(corpus), "--output", str(tmp_path / "out"), *MODEL,
                   "--epochs", "3", *flags, env=_env())
    assert message in _refused(done) and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_weights_of_another_architecture_are_refused_before_training(
        corpus: Path, tmp_path: Path):
    import torchvision

    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    done = run_cli("train", str(corpus), "--output", str(tmp_path / "out"), "--model",
                   "r3d_18", "--init-weights", str(weights), env=_env())
    # 2D kernels where the 3D CNN has 3D ones (most names differ, and are ignored)
    assert "does not fit this model" in _refused(done) and "(model: (" in done.stderr
    missing = run_cli("train", str(corpus), "--output", str(tmp_path / "out2"), *MODEL,
                      "--init-weights", str(tmp_path / "nowhere.pt"), env=_env())
    assert "not found" in _refused(missing)



@pytest.mark.slow
@pytest.mark.ray
def test_balancing_a_class_without_training_videos_is_refused(corpus: Path, tmp_path: Path):
    """A class with validation videos only cannot be balanced (its weight
    would be infinite): refused with one line once the split is known."""
    lines = ["uri,label,split"]
    for path in sorted(corpus.glob("*/*.mp4")):
        split = "val" if path.parent.name == "up" or path.stem.endswith("0") else "train"
        lines.append(f"{path},{path.parent.name},{split}")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    done = run_cli("train", str(manifest), "--output", str(tmp_path / "out"), *MODEL,
                   "--class-balance", "sampler", env=_env())
    assert "['up'] have no training videos" in _refused(done)
