"""The tiny-videos benchmark: its corpus and its plain loop (the vidlake side is
`vidlake label`, tested everywhere else)."""

from __future__ import annotations

from pathlib import Path

from jobs import benchmark
from jobs.tiny_benchmark import corpus, plain_loop


def test_the_corpus_is_one_second_clips_and_the_loop_reads_one_frame_each(tmp_path: Path):
    import decord

    root = corpus(tmp_path, 3)
    clips = sorted(root.glob("clip_*.mp4"))
    assert len(clips) == 3
    assert [len(decord.VideoReader(str(c))) for c in clips] == [25, 25, 25]
    assert plain_loop(root, tmp_path / "weights.pt") == 3
    assert len(sorted(corpus(tmp_path, 2).glob("clip_*.mp4"))) == 2  # a smaller corpus


def test_the_scenario_is_a_benchmark_choice():
    args = benchmark.parse_args(["tiny", "--videos", "40"])
    assert (args.scenario, args.videos) == ("tiny", 40)
