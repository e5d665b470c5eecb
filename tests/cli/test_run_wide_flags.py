"""Every flag the user gives is honoured or refused: run-wide analysis flags
apply to every analysis of the run that has the option (also the one a run
without --analysis implies), change only that analysis's key, and a flag no
analysis of the run has is exit 2 naming the analyses that take it."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import label
from pipeline.analyses.resolve import ResolvedAnalysis, resolve_analyses
from pipeline.cli.label_options import add_label_arguments, label_config_from_args
from pipeline.cli.parser import OneLineParser
from pipeline.plan.planner import analysis_key
from tests.lakes import rows
from tests.procs import run_cli

SEQUENTIAL = ["--engine", "sequential", "--max-frames-per-unit", "16"]


def _resolved(*flags: str) -> list[ResolvedAnalysis]:
    parser = OneLineParser(prog="vidlake label")
    add_label_arguments(parser)
    return resolve_analyses(label_config_from_args(parser.parse_args(["src", "-o", "lake",
                                                                      *flags])))


def test_clip_flags_shape_the_clips_of_the_analysis_the_model_implies(corpus, tmp_path: Path):
    lake = tmp_path / "lake"
    assert label.main([str(corpus("h264.mp4")), "--output", str(lake), "--model", "r3d_18",
                       "--clip-len", "4", "--clips-per-video", "3", "--size", "32",
                       *SEQUENTIAL]) == 0
    clips = rows(str(lake), "select start_frame, end_frame from clip_labels order by 1")
    assert len(clips) == 3
    assert {r["end_frame"] - r["start_frame"] for r in clips} == {4}


def test_detector_flags_apply_without_analysis(corpus, tmp_path: Path):
    """Untrained weights score boxes low: with threshold 0 every frame keeps
    exactly the 2 best of them (the defaults, 0.5 and 100, keep others)."""
    lake = tmp_path / "lake"
    assert label.main([str(corpus("h264.mp4")), "--output", str(lake),
                       "--model", "ssdlite320_mobilenet_v3_large", "--score-threshold", "0",
                       "--max-boxes", "2", "--sample", "uniform:2", "--size", "64",
                       *SEQUENTIAL]) == 0
    per_frame = rows(str(lake), "select frame_index, count(*) as n, min(score) as low "
                                "from detections group by 1 order by 1")
    assert [r["n"] for r in per_frame] == [2, 2]
    assert min(r["low"] for r in per_frame) < 0.5


def test_a_detector_flag_leaves_the_frame_labels_key_alone():
    """Adding detections with --max-boxes to a frame_labels run is new work for
    the detections only: the frame_labels key is what it was."""
    (plain,) = _resolved("--analysis", "frame_labels")
    labels, boxes = _resolved("--analysis", "frame_labels", "--analysis", "detections",
                              "--max-boxes", "3")
    assert _key(labels) == _key(plain)
    assert boxes.spec.options.max_boxes == 3
    (default_boxes,) = _resolved("--analysis", "detections")
    assert _key(boxes) != _key(default_boxes)


def _key(resolved: ResolvedAnalysis) -> str:
    return analysis_key(resolved.spec, resolved.version, resolved.spec.outputs[0])


@pytest.mark.parametrize(("flags", "message"), [
    (["--analysis", "frame_labels", "--max-boxes", "3"],
     "--max-boxes applies to detections; this run has frame_labels"),
    (["--max-boxes", "3"], "--max-boxes applies to detections; this run has frame_labels"),
    (["--model", "resnet18", "--clip-len", "4"],
     "--clip-len applies to clip_labels; this run has frame_labels"),
    (["--analysis", "clip_labels", "--shot-threshold", "30"],
     "--shot-threshold applies to shots; this run has clip_labels"),
    (["--analysis", "shots", "--sample", "every:2"],
     "--sample applies to frame_labels, frame_embeddings, clip_labels, detections; "
     "this run has shots"),
    (["--analysis", "detections", "--top-k", "3"],
     "--top-k applies to frame_labels, clip_labels; this run has detections"),
    (["--model", "r3d_18", "--embeddings"],
     "--embeddings applies to frame_labels; this run has clip_labels"),
    (["--analysis", "shots:model=resnet18"], "shots has no option 'model'"),
    (["--analysis", "shots:batch=4"], "shots has no option 'batch'"),
    (["--engine", "sequential", "--decode-workers", "4"],
     "--decode-workers applies to the ray engine; this run has --engine sequential"),
    (["--engine", "sequential", "--inference-timeout", "5"],
     "--inference-timeout applies to the ray engine; this run has --engine sequential"),
], ids=["analysis", "implied", "implied-clip", "shots-flag", "sample-shots", "top-k",
        "embeddings", "shots-model", "shots-batch", "sequential-workers",
        "sequential-timeout"])
def test_a_flag_no_analysis_of_the_run_has_is_refused(flags: list[str], message: str,
                                                      tmp_path: Path):
    result = run_cli("label", str(tmp_path), "--output", str(tmp_path / "lake"), *flags)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "lake").exists()
