"""`vidlake label` on a real local Ray (the in-process default engine), end to end:
nothing lost, exactly once, embeddings, and user-supplied weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from jobs import label
from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.config import AnalysisSpec, FrameSize, ModelSpec, SampleSpec
from pipeline.corpus.listing import list_corpus
from pipeline.decode.unit_decoder import DecodeSettings, decode_units
from pipeline.models.checkpoint import save_checkpoint
from pipeline.plan.planner import plan_sampled
from pipeline.plan.probe import probe_videos
from tests.lakes import assert_corpus_accounted, rows, table_counts
from tests.media import BAD, GOOD

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

SAMPLE = "uniform:6"


def _label(source: Path, lake: Path, *extra: str) -> int:
    """`vidlake label` in this process, on the session's Ray."""
    return label.main([str(source), "--output", str(lake), "--sample", SAMPLE, "--size", "64",
                       "--max-frames-per-unit", "4", *extra])


def test_corpus_with_every_bad_kind(corpus, media: Path, tmp_path: Path):
    names = sorted([*GOOD, *BAD])
    source, lake = corpus(*names), tmp_path / "lake"
    assert _label(source, lake) == 0
    assert_corpus_accounted(str(lake), names, SAMPLE)
    (run,) = rows(str(lake), "select * from runs")
    assert run["status"] == "completed"
    assert (run["counts"]["videos"], run["counts"]["videos_ok"],
            run["counts"]["videos_failed"]) == (len(names), len(GOOD), len(BAD))
    ids = {r["run_id"] for r in rows(str(lake), "select run_id from frame_labels "
                                     "union select run_id from videos")}
    assert ids == {run["run_id"]}
    before = table_counts(str(lake))

    assert _label(source, lake) == 0  # rerun: nothing to do, so no rows and no runs row
    assert table_counts(str(lake)) == before

    (source / "late.mkv").write_bytes((media / "h264.mkv").read_bytes())
    assert _label(source, lake) == 0  # only the new video is work
    after = table_counts(str(lake))
    assert after["videos"] == before["videos"] + 1 and after["runs"] == before["runs"] + 1
    assert after["frame_labels"] == before["frame_labels"] + 6
    (late,) = rows(str(lake), "select status from videos where uri like '%late.mkv'")
    assert late["status"] == "ok"


def test_embeddings_one_per_label_and_nearest_neighbour(corpus, tmp_path: Path):
    source, lake = corpus("lossless.mkv", "h264.mp4"), tmp_path / "lake"
    assert _label(source, lake, "--embeddings") == 0
    counts = table_counts(str(lake))
    assert counts["frame_embeddings"] == counts["frame_labels"] == 12
    unmatched = rows(str(lake), """
        select count(*) as n from frame_labels l full outer join frame_embeddings e
          on l.uri = e.uri and l.frame_index = e.frame_index
         and l.timestamp_s = e.timestamp_s and l.run_id = e.run_id
        where l.uri is null or e.uri is null""")
    assert unmatched == [{"n": 0}]
    (dims,) = rows(str(lake), "select min(len(embedding)) as lo, max(len(embedding)) as hi "
                              "from frame_embeddings")
    assert dims == {"lo": 1024, "hi": 1024}  # mobilenet_v3_small's penultimate layer
    nearest = rows(str(lake), """
        with q as (select embedding from frame_embeddings
                   where uri like '%h264.mp4' and frame_index = 20)
        select regexp_extract(e.uri, '[^/]+$') as name, e.frame_index,
               list_cosine_similarity(e.embedding, q.embedding) as sim
        from frame_embeddings e, q order by sim desc limit 3""")
    assert (nearest[0]["name"], nearest[0]["frame_index"]) == ("h264.mp4", 20)
    assert nearest[0]["sim"] == pytest.approx(1.0, abs=1e-5)
    assert nearest[0]["sim"] >= nearest[1]["sim"] >= nearest[2]["sim"]


def _tiny_classifier() -> dict[str, torch.Tensor]:
    torch.manual_seed(1234)
    return torchvision.models.mobilenet_v3_small(num_classes=3).state_dict()


def _short_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _expected_labels(source: Path, weights: Path) -> dict[tuple[str, int], tuple[str, float]]:
    """(uri, frame) -> (label, score) computed in this process, without Ray."""
    spec = AnalysisSpec("frame_labels", ModelSpec("auto", weights_uri=str(weights)))
    classifier = FrameClassifier("frame_labels", spec)
    classifier.setup()
    settings = DecodeSettings(size=FrameSize(64, 64))
    units = [u for v in probe_videos(list_corpus(str(source)))
             for u in plan_sampled(v, SampleSpec.parse(SAMPLE), 4, "k", FrameSize(64, 64))]
    by_unit = classifier.process(decode_units(settings, units))
    return {(r["uri"], r["frame_index"]): (r["label"], r["score"])
            for rows in by_unit.values() for r in rows.tables["frame_labels"].to_pylist()}


def test_user_weights_set_labels_and_model_version(corpus, tmp_path: Path):
    source, lake = corpus("lossless.mkv", "h264.mp4"), tmp_path / "lake"
    plain, labels_file = tmp_path / "plain.pt", tmp_path / "labels.txt"
    torch.save(_tiny_classifier(), plain)
    labels_file.write_text("cat\ndog\nbird\n")
    checkpoint = tmp_path / "checkpoint.pt"
    save_checkpoint(str(checkpoint), arch="mobilenet_v3_small", state_dict=_tiny_classifier(),
                    label_names=["red", "green", "blue"])

    assert _label(source, lake, "--weights", str(plain), "--labels", str(labels_file)) == 0
    assert _label(source, lake, "--weights", str(checkpoint)) == 0  # new version: new work

    names = {_short_hash(plain): {"cat", "dog", "bird"},
             _short_hash(checkpoint): {"red", "green", "blue"}}
    got = rows(str(lake), "select * from frame_labels")
    assert len(got) == 24
    for row in got:
        assert row["model"] == "mobilenet_v3_small"
        assert row["label"] in names[row["model_version"]]
        assert set(row["topk_labels"]) == names[row["model_version"]]  # top-5 clipped to 3
        assert row["label"] == row["topk_labels"][0] and row["score"] == row["topk_scores"][0]
        assert sum(row["topk_scores"]) == pytest.approx(1.0, abs=1e-4)
    versions = rows(str(lake), "select model_version, count(*) as n from videos group by 1")
    assert {r["model_version"]: r["n"] for r in versions} == dict.fromkeys(names, 2)

    expected = _expected_labels(source, checkpoint)
    from_ray = {(r["uri"], r["frame_index"]): (r["label"], r["score"]) for r in got
                if r["model_version"] == _short_hash(checkpoint)}
    assert from_ray.keys() == expected.keys()
    for key, (name, score) in expected.items():
        assert from_ray[key][0] == name
        assert np.isclose(from_ray[key][1], score, atol=1e-4)
