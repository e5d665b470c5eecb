"""Choosing analyses: a pipeline YAML file, and `--weights` alone picking the
analysis its checkpoint implies (`vidlake label --engine sequential`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from jobs import label
from pipeline.models.checkpoint import save_checkpoint
from pipeline.models.cnn_rnn import CnnRnnConfig, build_cnn_rnn
from tests.lakes import rows, table_counts
from tests.media import GOOD


def test_pipeline_file_sets_each_analysis(corpus, tmp_path: Path):
    source, lake = corpus("lossless.mp4", "h264.mp4", "empty.mp4"), tmp_path / "lake"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        "analyses:\n"
        "  - analysis: frame_labels\n"
        "    model: resnet18\n"
        "    sample: every:25\n"
        "    size: 32\n"
        "    top_k: 2\n"
        "    resources: {actors: 1, batch: 16}\n"
        "  - analysis: shots\n"
        "    threshold: 30\n"
        "    min_shot_len: 5\n")
    assert label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--pipeline", str(pipeline)]) == 0
    labels = rows(str(lake), "select uri, frame_index, model, topk_labels from frame_labels")
    expected = sum(len(range(0, GOOD[n].n_frames, 25)) for n in ("lossless.mp4", "h264.mp4"))
    assert len(labels) == expected
    assert {r["model"] for r in labels} == {"resnet18"}
    assert {len(r["topk_labels"]) for r in labels} == {2}
    assert table_counts(str(lake))["shots"] >= 2  # one shot at least per good video
    (run,) = rows(str(lake), "select config from runs")
    described = json.loads(run["config"])["analyses"]
    assert [a["kind"] for a in described] == ["frame_labels", "shots"]
    assert described[1]["options"]["threshold"] == 30
    assert json.loads(run["config"])["execution"]["engine"] == "sequential"


def test_weights_alone_pick_the_analysis_the_checkpoint_implies(corpus, tmp_path: Path):
    """A CNN+GRU checkpoint carries its architecture, shape and label names:
    `--weights` is the only flag needed to get clip labels."""
    source, lake = corpus("h264.mp4", "lossless.mkv"), tmp_path / "lake"
    config = CnnRnnConfig(backbone="mobilenet_v3_small", hidden_size=16, input_size=32,
                          clip_len=4)
    torch.manual_seed(0)
    model = build_cnn_rnn("cnn_gru", 3, config)
    weights = tmp_path / "model.pt"
    save_checkpoint(str(weights), arch="cnn_gru", state_dict=model.state_dict(),
                    label_names=["left", "right", "up"], config={"cnn_rnn": config.to_dict()})
    assert label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--weights", str(weights)]) == 0
    clips = rows(str(lake), "select * from clip_labels order by uri")
    assert len(clips) == 2
    assert {c["label"] for c in clips} <= {"left", "right", "up"}
    assert {c["model"] for c in clips} == {"cnn_gru"}
    assert all(c["end_frame"] - c["start_frame"] == 4 for c in clips)  # the checkpoint's T
    assert table_counts(str(lake))["frame_labels"] == 0
