"""A trained model's export is what `vidlake label --weights` resolves and loads:
the right analysis, size and clip shape from the checkpoint alone, a strict
state dict, and the same logits as the module that was trained. Also the
training checkpoints (rotation, resume into fresh objects) and the
training_metrics table."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from jobs.label import parse_args
from pipeline.analyses.clip_classifier import ClipClassifier
from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.analyses.model_loader import load_model
from pipeline.analyses.resolve import resolve_analyses
from pipeline.cli.label_options import label_config_from_args
from pipeline.config import FrameSize, ModelSpec
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.errors import ConfigError
from pipeline.models.checkpoint import checkpoint_bytes, content_version
from pipeline.plan.work_unit import AnalysisWork, WorkUnit
from pipeline.storage_options import StorageOptions
from pipeline.training.checkpoints import (
    checkpoint_uri,
    latest_checkpoint,
    load_training_state,
    save_training_state,
)
from pipeline.training.metrics_table import TRAINING_METRICS, metrics_uri, write_metrics
from pipeline.training.trainable import FrameAverage, ModelShape, Trainable
from pipeline.training.worker_loop import warmup_cosine

NAMES = ["a", "b", "c"]
SHAPES = {
    "cnn_gru": ModelShape("cnn_gru", clip_len=4, frame_step=2, size=32, backbone="small_cnn",
                          hidden_size=32, pool_grid=2),
    "r3d_18": ModelShape("r3d_18", clip_len=4, frame_step=2, size=32),
    "mobilenet_v3_small": ModelShape("mobilenet_v3_small", clip_len=4, size=32),
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Small models on a shared 2-core machine: one thread avoids spinning
    threads that fight other processes; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Exported:
    """A 'trained' Trainable, its module in eval mode, and its checkpoint file."""

    trainable: Trainable
    module: torch.nn.Module
    path: Path
    config: dict[str, Any]
    _loaded: tuple[Any, Any] | None = None

    @property
    def family(self) -> str:
        """The model family `vidlake label` loads the export as."""
        return "frame" if self.trainable.shape.family == "frame" else "clip"

    def loaded(self) -> tuple[Any, Any]:
        """(ModelInfo, module) as `vidlake label` loads the checkpoint (once)."""
        if self._loaded is None:
            self._loaded = load_model(ModelSpec("auto", weights_uri=str(self.path)),
                                      StorageOptions(), self.family)
        return self._loaded

    def clips(self, n: int = 2, seed: int = 0) -> np.ndarray:
        """Random uint8 clips [n, T, H, W, 3] at the size frames are decoded at."""
        width, height = self.trainable.shape.decode_size()
        shape = (n, self.trainable.shape.clip_len, height, width, 3)
        return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module", params=list(SHAPES))
def exported(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Build, run one train-mode forward pass (BatchNorm statistics move away
    from their identity defaults), switch to eval, export and save."""
    torch.manual_seed(0)
    trainable = Trainable(SHAPES[request.param], num_classes=3)
    module = trainable.module
    holder = Exported(trainable, module, Path(), {})
    with torch.no_grad():
        module.train()
        module(trainable.inputs(holder.clips(4, seed=1), "cpu"))
    module.eval()
    state, config = trainable.export(module)
    path = tmp_path_factory.mktemp("export") / "model.pt"
    path.write_bytes(checkpoint_bytes(arch=trainable.shape.arch, state_dict=state,
                                      label_names=NAMES, config=config))
    holder.path, holder.config = path, config
    return holder


def _resolve(exported: Exported, tmp_path: Path) -> Any:
    args = parse_args([str(tmp_path), "--output", str(tmp_path / "lake"),
                       "--weights", str(exported.path)])
    (resolved,) = resolve_analyses(label_config_from_args(args))
    return resolved


def test_weights_alone_resolve_the_trained_analysis(exported: Exported, tmp_path: Path) -> None:
    """`vidlake label --weights model.pt` picks the analysis, the size and the
    clip shape the model was trained with, and versions it by content."""
    shape = exported.trainable.shape
    resolved = _resolve(exported, tmp_path)
    assert resolved.arch == shape.arch
    assert resolved.version == content_version(exported.path.read_bytes())
    spec = resolved.spec
    if shape.family == "frame":
        assert spec.kind == "frame_labels"
        assert spec.size == FrameSize(32, 32)
        return
    assert spec.kind == "clip_labels"
    assert (spec.options.clip_len, spec.options.frame_step) == (4, 2)
    if shape.family == "rnn":
        assert spec.size == FrameSize(32, 32)
    else:  # 3D CNNs decode larger and centre-crop: the size is the recorded resize
        height, width = exported.config["clip"]["resize"]
        assert spec.size == FrameSize(width, height) == FrameSize(*shape.decode_size())
        assert exported.config["clip"]["crop"] == [32, 32]


def test_load_model_is_strict_and_keeps_names_and_config(exported: Exported) -> None:
    info, model = exported.loaded()
    assert info.arch == exported.trainable.shape.arch
    assert info.label_names == tuple(NAMES)
    assert info.config == exported.config
    assert not model.training
    state, _ = exported.trainable.export(exported.module)
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_a_checkpoint_that_does_not_fit_its_config_is_refused(tmp_path: Path) -> None:
    """Strict loading: a missing tensor, or a config that builds another shape
    (pool_grid 1 instead of 2 narrows the GRU's input), is a ConfigError."""
    torch.manual_seed(0)
    trainable = Trainable(SHAPES["cnn_gru"], num_classes=3)
    state, config = trainable.export(trainable.module.eval())
    partial = {k: v for k, v in state.items() if k != "classifier.bias"}
    reshaped = {"cnn_rnn": {**config["cnn_rnn"], "pool_grid": 1}}
    for name, (weights, options) in {"partial": (partial, config),
                                     "reshaped": (state, reshaped)}.items():
        path = tmp_path / f"{name}.pt"
        path.write_bytes(checkpoint_bytes(arch="cnn_gru", state_dict=weights,
                                          label_names=NAMES, config=options))
        with pytest.raises(ConfigError, match="do not fit cnn_gru"):
            load_model(ModelSpec("auto", weights_uri=str(path)), StorageOptions(), "clip")


def test_loaded_model_gives_the_trained_logits(exported: Exported) -> None:
    """The same input through the trained module and the loaded one: same logits
    (per frame for a frame CNN, whose export is the bare frame model)."""
    _, model = exported.loaded()
    x = exported.trainable.inputs(exported.clips(), "cpu")
    with torch.no_grad():
        if isinstance(exported.module, FrameAverage):
            frames = x.flatten(0, 1)
            want = exported.module.frame_model(frames)
            got = model(frames)
            averaged = got.view(x.shape[0], x.shape[1], -1).mean(dim=1)
            assert torch.allclose(exported.module(x), averaged, atol=1e-5)
        else:
            want, got = exported.module(x), model(x)
    assert got.shape == want.shape and got.shape[-1] == 3
    assert torch.allclose(got, want, atol=1e-5)


def _probabilities(exported: Exported, clips: np.ndarray) -> np.ndarray:
    """What the trained module predicts: per clip, or per frame for a frame CNN."""
    x = exported.trainable.inputs(clips, "cpu")
    with torch.no_grad():
        if isinstance(exported.module, FrameAverage):
            logits = exported.module.frame_model(x.flatten(0, 1))
        else:
            logits = exported.module(x)
    return torch.softmax(logits, dim=1).numpy()


def test_labelling_analysis_sees_what_training_saw(exported: Exported, tmp_path: Path) -> None:
    """The analysis `vidlake label` builds from the resolved spec, fed frames at
    the resolved size, predicts what the trained module predicts: training and
    labelling preprocess identically."""
    resolved = _resolve(exported, tmp_path)
    clips = exported.clips(seed=2)
    # analyses run on the GPU when there is one, under autocast (half precision)
    gpu = torch.cuda.is_available()
    want = _probabilities(exported, clips)
    assert (clips.shape[3], clips.shape[2]) == (resolved.spec.size.width,
                                                resolved.spec.size.height)
    if resolved.spec.kind == "clip_labels":
        got = ClipClassifier(resolved.name, resolved.spec).infer(clips)
        np.testing.assert_allclose(got, want, atol=3e-2 if gpu else 1e-5)
        return
    frames = clips.reshape(-1, *clips.shape[2:])
    ref = VideoRef("/videos/v.mp4", 1, "mtime:1")
    indices = tuple(range(len(frames)))
    unit = WorkUnit(unit_id="u", video=ref, unit_index=0, frame_indices=indices,
                    fps=25.0, end_frame=len(frames), size=resolved.spec.size,
                    work=(AnalysisWork(resolved.name, frames=indices),))
    decoded = DecodedUnit(unit, frames, np.arange(len(frames)), np.arange(len(frames)) / 25.0,
                          "decord")
    analysis = FrameClassifier(resolved.name, resolved.spec)
    analysis.setup()  # as the model actor does before processing
    table = analysis.process([decoded])["u"].tables["frame_labels"]
    labels, scores = table.column("topk_labels").to_pylist(), \
        table.column("topk_scores").to_pylist()
    assert len(labels) == len(frames)
    for row, (names, values) in enumerate(zip(labels, scores, strict=True)):
        expected = [want[row, NAMES.index(n)] for n in names]
        # BatchNorm is folded into the convolutions for inference: ~1e-6 apart
        np.testing.assert_allclose(values, expected, atol=3e-2 if gpu else 1e-4)
    # one-frame units (a corpus of tiny videos), batched across units in one call
    singles = [DecodedUnit(WorkUnit(unit_id=f"u{i}", video=VideoRef(f"/v{i}.mp4", 1, "m:1"),
                                    unit_index=0, frame_indices=(i,), fps=25.0, end_frame=i + 1,
                                    size=resolved.spec.size,
                                    work=(AnalysisWork(resolved.name, frames=(i,)),)),
                           frames[i : i + 1], np.array([i]), np.array([i / 25.0]), "decord")
               for i in range(len(frames))]
    rows = analysis.process(singles)
    for i in range(len(frames)):
        (names,), (values,) = (rows[f"u{i}"].tables["frame_labels"].column(c).to_pylist()
                               for c in ("topk_labels", "topk_scores"))
        expected = [want[i, NAMES.index(n)] for n in names]
        np.testing.assert_allclose(values, expected, atol=3e-2 if gpu else 1e-4)


# -- training checkpoints ------------------------------------------------------------
def _training_setup(seed: int) -> tuple[Trainable, torch.optim.Optimizer, Any]:
    torch.manual_seed(seed)
    trainable = Trainable(SHAPES["cnn_gru"], num_classes=3)
    optimizer = torch.optim.AdamW(trainable.module.parameters(), lr=1e-3, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(10, 2))
    return trainable, optimizer, scheduler


def _step(trainable: Trainable, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    rng = np.random.default_rng(5)
    clips = rng.integers(0, 256, (2, 4, 32, 32, 3), dtype=np.uint8)
    trainable.module.train()
    loss = torch.nn.functional.cross_entropy(trainable.module(trainable.inputs(clips, "cpu")),
                                             torch.tensor([0, 2]))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()


def _same(a: Any, b: Any) -> bool:
    """Deep equality of state dicts holding tensors."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_training_checkpoints_rotate_and_resume_exactly(tmp_path: Path) -> None:
    """Three epochs saved keep the newest two; the newest restores model,
    AdamW and LambdaLR into fresh objects (in the worker's order), and the next
    step from there matches the uninterrupted run's next step exactly."""
    out, storage = str(tmp_path), StorageOptions()
    trainable, optimizer, scheduler = _training_setup(0)
    assert latest_checkpoint(out, storage) is None
    for epoch in (1, 2, 3):
        _step(trainable, optimizer, scheduler)
        history = [{"epoch": e, "val_acc": e / 10} for e in range(1, epoch + 1)]
        uri = save_training_state(out, epoch, {
            "model": trainable.module.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "history": history, "best_acc": epoch / 10,
            "best_epoch": epoch, "label_names": NAMES, "trainable": trainable.config()},
            storage)
        assert uri == checkpoint_uri(out, epoch)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == \
        ["epoch_0002.pt", "epoch_0003.pt"]
    latest = latest_checkpoint(out, storage)
    assert latest == checkpoint_uri(out, 3)
    state = load_training_state(latest, storage)
    assert (state["epoch"], state["best_epoch"], state["best_acc"]) == (3, 3, 0.3)
    assert [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert state["trainable"] == trainable.config() and state["label_names"] == NAMES

    fresh, fresh_opt, fresh_sched = _training_setup(1)
    fresh.module.load_state_dict(state["model"])
    fresh_opt.load_state_dict(state["optimizer"])
    fresh_sched.load_state_dict(state["scheduler"])
    assert _same(fresh_opt.state_dict(), optimizer.state_dict())
    assert _same(fresh_sched.state_dict(), scheduler.state_dict())
    assert fresh_opt.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    _step(trainable, optimizer, scheduler)
    _step(fresh, fresh_opt, fresh_sched)
    assert _same(fresh.module.state_dict(), trainable.module.state_dict())
    assert fresh_sched.get_last_lr() == scheduler.get_last_lr()


def _row(epoch: int) -> dict[str, Any]:
    return {"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": 0.3 * epoch,
            "val_loss": 1.2 / epoch, "val_acc": 0.25 * epoch, "train_clips": 20,
            "val_clips": 6, "skipped": epoch - 1, "clips_per_s": 10.5, "train_s": 2.0,
            "lr": 1e-3 / epoch, "workers": 2}


def test_metrics_table_has_one_row_per_epoch_in_its_schema(tmp_path: Path) -> None:
    """Rewritten whole from the history: a longer history replaces the table
    (no duplicated epochs); duckdb reads it; missing values become NULL."""
    out, storage = str(tmp_path), StorageOptions()
    write_metrics(out, [_row(1), _row(2)], storage)
    partial = {k: v for k, v in _row(3).items() if k != "clips_per_s"}
    write_metrics(out, [_row(1), _row(2), partial], storage)
    path = metrics_uri(out)
    assert pq.read_schema(path).remove_metadata() == TRAINING_METRICS
    rows = duckdb.connect().execute(
        "SELECT epoch, val_acc, skipped, clips_per_s, workers FROM read_parquet(?) "
        "ORDER BY epoch", [path]).fetchall()
    assert rows == [(1, 0.25, 0, 10.5, 2), (2, 0.5, 1, 10.5, 2), (3, 0.75, 2, None, 2)]


def test_metrics_table_round_trips_per_class_scores_and_reads_older_rows_as_null(
        tmp_path: Path) -> None:
    """val_per_class is a list of structs DuckDB can unnest; a row from before
    the column (no per-class scores) reads as NULL."""
    out, storage = str(tmp_path), StorageOptions()
    per_class = [{"label": "left", "support": 20, "precision": 0.95, "recall": 1.0,
                  "f1": 0.975}, {"label": "right", "support": 1, "precision": 0.0,
                                 "recall": 0.0, "f1": 0.0}]
    new = {**_row(2), "val_macro_f1": 0.4875, "val_per_class": per_class,
           "select_by": "macro_f1", "exported": True}
    write_metrics(out, [_row(1), new], storage)
    connection = duckdb.connect()
    rows = connection.execute(
        "SELECT epoch, val_macro_f1, select_by, exported, val_per_class IS NULL "
        "FROM read_parquet(?) ORDER BY epoch", [metrics_uri(out)]).fetchall()
    assert rows == [(1, None, None, None, True), (2, 0.4875, "macro_f1", True, False)]
    recalls = connection.execute(
        "SELECT c.label, c.recall, c.support FROM (SELECT unnest(val_per_class) AS c "
        "FROM read_parquet(?)) ORDER BY c.label", [metrics_uri(out)]).fetchall()
    assert recalls == [("left", 1.0, 20), ("right", 0.0, 1)]
