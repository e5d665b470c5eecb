"""`vidlake train` end to end on a real local Ray: Ray Train workers, Ray Data
clips, checkpoints, resume after SIGKILL, S3, and `vidlake label --weights`
with the exported model."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.storage_options import StorageOptions
from pipeline.synthetic.corpus_builder import write_bad_files, write_motion_corpus
from pipeline.synthetic.motion import draw_scene, motion_frames
from pipeline.synthetic.video_writer import write_video
from pipeline.training.checkpoints import latest_checkpoint
from tests.conftest import S3Server
from tests.lakes import rows
from tests.procs import REPO_ROOT, VENV_BIN, run_cli, stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # Ray Train

# A small, fast model: 4-frame clips of 32 px through small_cnn + GRU.
MODEL = ["--model", "cnn_gru", "--backbone", "small_cnn", "--pool-grid", "2", "--size", "32",
         "--clip-len", "4", "--batch-size", "4", "--val-fraction", "0.5"]


# Training videos per class for the plain-command test: enough for 10 epochs
# of the defaults to generalise (40 a class, in memory: best validation 0.85;
# 60: 0.93 from epoch 6), few enough to train in about 1.5 minutes on 2 cores.
# small_3d needs as many (40 a class labelled 0.72 of the held-out videos in
# one of two runs).
PLAIN_PER_CLASS = 60
# Epochs of the 20:1 side-by-side test (docs/design.md#training has the run).
IMBALANCED_EPOCHS = 4


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


@pytest.fixture(scope="module")
def motion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 motion videos in a folder per class, plus four bad files in one class."""
    root = tmp_path_factory.mktemp("motion")
    truth = write_motion_corpus(root, per_class=6, frames=16, size=32, seed=3)
    write_bad_files(root / "left", Path(next(iter(truth))))
    return root


def test_killed_training_resumes_and_finishes_every_epoch_once(motion: Path, tmp_path: Path):
    out = tmp_path / "run"
    args = [str(VENV_BIN / "vidlake"), "train", str(motion), "--output", str(out), *MODEL,
            "--epochs", "4", "--num-workers", "1"]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while latest_checkpoint(str(out), StorageOptions()) is None:
            assert proc.poll() is None, "training exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.2)  # polling for the first checkpoint file, not waiting out a race
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        stop_process_group(proc, grace_s=1)
    killed_at = latest_checkpoint(str(out), StorageOptions())
    assert killed_at is not None and not killed_at.endswith("epoch_0004.pt")

    resumed = run_cli("train", str(motion), "--output", str(out), *MODEL, "--epochs", "4",
                      "--num-workers", "1", "--resume", env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    assert str(latest_checkpoint(str(out), StorageOptions())).endswith("epoch_0004.pt")
    epochs = [r["epoch"] for r in rows(str(out), "SELECT epoch FROM training_metrics "
                                                 "ORDER BY epoch")]
    assert epochs == [1, 2, 3, 4]


def _plain_command_held_out_top1(tmp_path: Path, model: str, per_class: int,
                                 ) -> tuple[float, str]:
    """(held-out top-1, train's stdout) of `vidlake train SOURCE --output DIR
    --model MODEL` and nothing else on `per_class` motion videos a class, its
    model.pt labelling 8 videos a class of another seed with --weights alone."""
    train = tmp_path / "train"
    write_motion_corpus(train, per_class=per_class, frames=24, size=64, seed=11)
    truth = write_motion_corpus(tmp_path / "held_out", per_class=8, frames=24, size=64,
                                seed=12)
    out = tmp_path / "run"
    done = run_cli("train", str(train), "--output", str(out), "--model", model,
                   env=_env(), timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]
    lake = tmp_path / "lake"
    labelled = run_cli("label", str(tmp_path / "held_out"), "--output", str(lake), "--engine",
                       "sequential", "--weights", str(out / "model.pt"), env=_env())
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    clips = rows(str(lake), "SELECT uri, label FROM clip_labels")
    assert len(clips) == len(truth)  # one centre clip per video
    return sum(truth[c["uri"]] == c["label"] for c in clips) / len(truth), done.stdout


@pytest.mark.timeout(900)  # about 5 minutes on 2 busy cores
def test_the_plain_command_learns_motion_and_fine_tunes_to_a_related_task(tmp_path: Path):
    """With only the required flags, `vidlake train` learns the four motion
    directions (chance 0.25): its model.pt labels videos it never saw (another
    seed) at >= 0.9 top-1. The defaults are what makes this work: flips off,
    a 4x4 grid of small_cnn features per frame, precise BatchNorm.

    That model.pt then starts a related task with new labels (left against
    right in 48 px videos, 16 a class): with --init-weights it reaches 0.9
    validation top-1 in fewer epochs than the same command from scratch
    (docs/design.md#training has the benchmark's run)."""
    from jobs.finetune_benchmark import side_by_side

    top1, stdout = _plain_command_held_out_top1(tmp_path, "cnn_gru", PLAIN_PER_CLASS)
    assert top1 >= 0.9, (top1, stdout)
    result = side_by_side(tmp_path / "related", tmp_path / "run" / "model.pt", 16,
                          model=["--model", "cnn_gru"], epochs=4, same_lr_run=False)
    tuned, scratch = (result[k]["epochs_to_target"] for k in ("finetune", "scratch"))
    assert tuned is not None and (scratch is None or tuned < scratch), result


@pytest.mark.timeout(600)  # about 1.5 minutes on 2 busy cores
def test_the_plain_command_learns_motion_with_small_3d(tmp_path: Path):
    """The same with vidlake's small 3D CNN: `--model small_3d` alone (64 px
    whole frames, 8 frames 2 apart) learns the directions from scratch."""
    top1, stdout = _plain_command_held_out_top1(tmp_path, "small_3d", PLAIN_PER_CLASS)
    assert top1 >= 0.9, (top1, stdout)


def test_keyframe_clips_train_end_to_end(motion: Path, tmp_path: Path):
    """`--sample keyframes` through Ray Data and Ray Train: probes index the
    keyframes, clips of them decode alone, and every usable video gives a clip.
    A bad --sample is refused before any work."""
    out = tmp_path / "run"
    done = run_cli("train", str(motion), "--output", str(out), *MODEL, "--epochs", "1",
                   "--sample", "keyframes", env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = rows(str(out), "SELECT * FROM training_metrics")
    assert row["train_clips"] > 0 and row["val_clips"] > 0 and row["skipped"] <= 1
    # the export records the sample: `label --weights` cuts its clips of keyframes too
    lake = tmp_path / "lake"
    labelled = run_cli("label", str(motion / "left"), "--output", str(lake), "--engine",
                       "sequential", "--weights", str(out / "model.pt"), env=_env())
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    (run,) = rows(str(lake), "SELECT config FROM runs")
    assert [a["sample"] for a in json.loads(run["config"])["analyses"]] == ["keyframes"]
    decoders = {r["decoder"] for r in rows(str(lake), "SELECT decoder FROM videos "
                                                      "WHERE status = 'ok'")}
    assert decoders == {"pyav-keyframes"}
    bad = run_cli("train", str(motion), "--output", str(tmp_path / "bad"), *MODEL,
                  "--sample", "keyframes~", env=_env())
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--sample" in bad.stderr


def test_s3_manifest_with_bad_files_two_workers_exports_a_model_that_labels(
        motion: Path, s3_server: S3Server, s3_bucket: str):
    """One epoch on 2 workers from an S3 manifest that lists bad files too; the
    export then labels the S3 corpus with --weights alone."""
    fs = s3_server.filesystem()
    lines = ["uri,label,split"]
    for index, path in enumerate(sorted(motion.glob("*/*.m*"))):  # 24 good, 4 bad
        key = f"videos/{path.parent.name}/{path.name}"
        fs.put_file(str(path), f"{s3_bucket}/{key}")
        lines.append(f"{key},{path.parent.name},{'val' if index % 3 == 0 else 'train'}")
    assert len(lines) == 29
    fs.pipe_file(f"{s3_bucket}/manifest.csv", ("\n".join(lines) + "\n").encode())
    manifest, out = f"s3://{s3_bucket}/manifest.csv", f"s3://{s3_bucket}/models/cnn_gru"
    done = run_cli("train", manifest, "--output", out, *MODEL, "--epochs", "1",
                   "--num-workers", "2", env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = rows(out, "SELECT * FROM training_metrics")
    assert row["epoch"] == 1 and row["workers"] == 2 and row["clips_per_s"] > 0
    # Bad files are skipped and counted, never fatal: probing drops the empty,
    # text and truncated files, and the corrupt one either there or when a clip
    # of it fails to decode.
    found = re.search(r"on (\d+) videos \((\d+) trained on, (\d+) skipped\)", done.stdout)
    assert found, done.stdout
    val, trained, skipped = (int(g) for g in found.groups())
    assert skipped in (3, 4) and val + trained + skipped == 28
    # Every usable video gives a clip or a skip; equal training shards drop one
    # video of an odd count.
    assert row["train_clips"] + row["val_clips"] + row["skipped"] == trained + val - trained % 2
    assert row["skipped"] <= 4 - skipped
    assert fs.exists(f"{s3_bucket}/models/cnn_gru/model.pt")

    again = run_cli("train", manifest, "--output", out, *MODEL, "--epochs", "1", env=_env())
    assert again.returncode == 2 and "--resume" in again.stderr
    # fine-tuning reads its weights from S3 too
    tuned = run_cli("train", manifest, "--output", f"{out}-tuned", *MODEL, "--epochs", "1",
                    "--init-weights", f"{out}/model.pt", env=_env())
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    assert "classifier head kept (same labels)" in tuned.stdout
    assert fs.exists(f"{s3_bucket}/models/cnn_gru-tuned/model.pt")

    lake = f"s3://{s3_bucket}/lake"
    labelled = run_cli("label", f"s3://{s3_bucket}/videos", "--output", lake, "--weights",
                       f"{out}/model.pt", env=_env())
    assert labelled.returncode == 0, labelled.stderr[-3000:]
    clips = rows(lake, "SELECT uri, label FROM clip_labels")
    assert len(clips) == 24  # one centre clip per good video; the corrupt one fails
    assert {c["label"] for c in clips} <= {"down", "left", "right", "up"}


def _imbalanced_manifest(root: Path, *, majority: int, minority: int, val: int) -> Path:
    """Two motion classes, 'left' x `majority` and 'right' x `minority` training
    videos (20:1 in the test), `val` of each validating: a manifest with splits."""
    lines = ["uri,label,split"]
    for c, (direction, n_train) in enumerate((("left", majority), ("right", minority))):
        for i in range(n_train + val):
            scene = draw_scene(direction, np.random.default_rng([5, c, i]), height=32, width=32)
            path = root / f"{direction}_{i:03d}.mp4"
            write_video(path, motion_frames(scene, 16), fps=25)
            lines.append(f"{path},{direction},{'train' if i < n_train else 'val'}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def _exported_recall(out: Path) -> tuple[float, dict[str, float]]:
    """(macro-F1, {class: recall}) of the epoch exported as model.pt."""
    (row,) = rows(str(out), "SELECT val_macro_f1, val_per_class FROM training_metrics "
                            "WHERE exported ORDER BY epoch DESC LIMIT 1")
    return row["val_macro_f1"], {c["label"]: c["recall"] for c in row["val_per_class"]}


@pytest.mark.timeout(600)  # 2-5 minutes on 2 busy cores
def test_balanced_training_lifts_the_minority_class_recall(tmp_path: Path):
    """20:1 (40 'left', 2 'right' training videos; 8 of each validating), the
    same seed and epochs: unbalanced training predicts the majority only
    (minority recall 0); --class-balance sampler lifts it, and model.pt is the
    epoch with the best macro-F1 (--select-by macro_f1). (The loss mode's math
    is tested in tests/training/test_class_balance.py; docs/design.md#training
    has all three modes side by side.)"""
    manifest = _imbalanced_manifest(tmp_path, majority=40, minority=2, val=8)
    recall = {}
    for mode in ("none", "sampler"):
        out = tmp_path / mode
        done = run_cli("train", str(manifest), "--output", str(out), *MODEL, "--epochs",
                       str(IMBALANCED_EPOCHS), "--class-balance", mode, "--select-by",
                       "macro_f1", env=_env(), timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "best epoch by macro_f1" in done.stdout and "recall left" in done.stdout
        macro_f1, recall[mode] = _exported_recall(out)
        history = rows(str(out), "SELECT epoch, val_macro_f1 FROM training_metrics")
        assert macro_f1 == max(r["val_macro_f1"] for r in history)
    assert recall["sampler"]["right"] > recall["none"]["right"], recall
