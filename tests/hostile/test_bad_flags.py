"""Every command refuses a bad value with exit 2 and one line on stderr (no
traceback, no usage dump), before any work; nothing is silently clamped,
ignored or left to hang."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import cli
from pipeline.decode.gpu_environment import cuda_device_count, extra_installed

LABEL_FLAGS = [
    ["--engine", "ray", "--decode-workers", "-3"],  # used to hang forever
    ["--sample", "fps:nan"], ["--sample", "fps:inf"], ["--sample", "uniform:1e400"],
    ["--inference-threads", "-1"], ["--inference-actors", "-1"],
    ["--fault-tolerance", "2"], ["--fault-tolerance", "-1"], ["--fault-tolerance", "nan"],
    ["--lock-ttl", "nan"], ["--lock-ttl", "0"], ["--lock-wait", "-1"],
    ["--unit-timeout", "nan"], ["--unit-timeout", "inf"], ["--unit-timeout", "0"],
    ["--batch-frames", "1.5"], ["--buffer-mb", "0"], ["--max-frames-per-unit", "-4"],
    ["--decoder-threads", "-1"], ["--decode-device", "tpu"],
    ["--decode-device", "gpu"],  # decode workers hold no GPU: needs --decode in-actor
    ["--decode-device", "gpu", "--decode", "in-actor", "--fault-tolerance", "0.1"],
    ["--top-k", "0"], ["--max-frame-pixels", "0"],
    ["--max-frame-pixels", "64xnan"], ["--clip-len", "-1"], ["--clips-per-video", "0"],
    ["--score-threshold", "1.5"], ["--max-boxes", "0"], ["--shot-threshold", "nan"],
    ["--shot-threshold", "0.1"],  # the 0-1 scale before PySceneDetect parity
    ["--shot-method", "hsv"], ["--min-shot-len", "-1"],
    ["--analysis", "shots:threshold=nan"], ["--analysis", "shots:window=-1"],
    ["--analysis", "shots:threshold=20,threshold=30"],  # a key twice: last used to win
    ["--analysis", "frame_labels:size=32,size=64"],
    ["--analysis", "shots:min-shot-len=3,min_shot_len=4"],
    ["--analysis", "clip_labels:num_gpus=inf"], ["--analysis", "detections:actors=0"],
]


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run `vidlake ARGV` in-process; it must exit 2 with one stderr line."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vidlake {argv[0]}: error: "), lines
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("flags", LABEL_FLAGS, ids=lambda f: " ".join(f))
@pytest.mark.parametrize("command", ["label", "relabel"])
def test_label_and_relabel_refuse_bad_values(corpus, tmp_path: Path, capsys, command: str,
                                             flags: list[str]):
    lake = tmp_path / "lake"
    _refused(capsys, [command, str(corpus("h264.mp4")), "--output", str(lake), *flags])
    assert not lake.exists()


@pytest.mark.skipif(extra_installed() and cuda_device_count() > 0, reason="a GPU machine")
@pytest.mark.parametrize("flags", [["--decode-device", "gpu", "--decode", "in-actor"],
                                   ["--decode-device", "gpu", "--engine", "sequential"]])
@pytest.mark.parametrize("command", ["label", "relabel"])
def test_gpu_decode_without_a_gpu_fails_fast(corpus, tmp_path: Path, capsys, command: str,
                                             flags: list[str]):
    """No PyNvVideoCodec or no CUDA device here: exit 2 before Ray starts, saying
    what to install or use instead."""
    lake = tmp_path / "lake"
    line = _refused(capsys, [command, str(corpus("h264.mp4")), "--output", str(lake), *flags])
    assert "pip install 'vidlake[gpu]'" in line or "needs a CUDA device" in line
    assert not lake.exists()


@pytest.mark.parametrize("flags", [
    ["--max-attempts", "0"], ["--compact-files", "-1"], ["--compact-target-mb", "nan"],
])
def test_relabel_policy_flags(corpus, tmp_path: Path, capsys, flags: list[str]):
    _refused(capsys, ["relabel", str(corpus("h264.mp4")), "--output", str(tmp_path / "l"),
                      *flags])


def test_a_pipeline_file_with_a_key_twice_is_refused(corpus, tmp_path: Path, capsys):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("analyses:\n  - analysis: shots\n    threshold: 20\n"
                        "    threshold: 30\n")
    line = _refused(capsys, ["label", str(corpus("h264.mp4")), "--output",
                             str(tmp_path / "lake"), "--pipeline", str(pipeline)])
    assert "'threshold' is given twice" in line


@pytest.mark.parametrize("flags", [
    ["--epochs", "0"], ["--num-workers", "-1"], ["--batch-size", "nan"], ["--lr", "nan"],
    ["--lr", "-0.1"], ["--lr", "inf"], ["--weight-decay", "-1"], ["--warmup", "1.5"],
    ["--seed", "-1"], ["--clip-len", "0"], ["--clip-step", "2.5"], ["--size", "-8"],
    ["--hidden-size", "0"], ["--pool-grid", "0"], ["--val-fraction", "0"],
    ["--val-fraction", "1"], ["--val-fraction", "nan"], ["--cpus-per-worker", "-2"],
    ["--decode-device", "gpu"],  # train decodes in CPU Ray Data tasks: not a train flag
    ["--class-balance", "weights"], ["--class-balance", ""], ["--select-by", "f1"],
    ["--select-by", "macro-f1"],
])
def test_train_refuses_bad_values(tmp_path: Path, capsys, flags: list[str]):
    _refused(capsys, ["train", str(tmp_path), "--output", str(tmp_path / "out"),
                      "--model", "cnn_gru", *flags])


@pytest.mark.parametrize(("flags", "says"), [
    (["--no-hflip"], "flips are off by default"),  # the old opt-out: gone, and says so
    (["--no-hflip", "--hflip"], "--no-hflip is gone"),
    (["--no-hflip", "--hflip-swap", "left=right"], "--no-hflip is gone"),
    (["--hflip-swap", "left"], "expects A=B"),
    (["--hflip-swap", "=right"], "expects A=B"),
    (["--hflip-swap", "left=left"], "cannot swap with itself"),
    (["--hflip-swap", "left=right", "--hflip-swap", "up=left"], "'left' is already in"),
    (["--hflip", "--hflip-swap", "a=b", "--hflip-swap", "b=a"], "'a' is already in"),
])
def test_train_refuses_contradictory_flips(tmp_path: Path, capsys, flags: list[str],
                                           says: str):
    """Flips are opt-in; --hflip-swap implies --hflip; a swap that cannot say
    what a flipped class becomes is refused, before any work."""
    line = _refused(capsys, ["train", str(tmp_path), "--output", str(tmp_path / "out"),
                             "--model", "cnn_gru", *flags])
    assert says in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flags", "hflip", "swaps"), [
    ([], False, ()),
    (["--hflip"], True, ()),
    (["--hflip-swap", "left=right"], True, (("left", "right"),)),  # implies --hflip
    (["--hflip", "--hflip-swap", "left=right", "--hflip-swap", "up=down"], True,
     (("left", "right"), ("up", "down"))),
])
def test_train_flips_are_opt_in(tmp_path: Path, flags: list[str], hflip: bool,
                                swaps: tuple[tuple[str, str], ...]):
    from jobs.train import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(
        [str(tmp_path), "--output", str(tmp_path / "out"), "--model", "cnn_gru", *flags]))
    assert (config.hflip, config.flip_swaps) == (hflip, swaps)


@pytest.mark.parametrize("argv", [
    ["compact", "LAKE", "--target-mb", "0"], ["compact", "LAKE", "--min-files", "1"],
    ["compact", "LAKE", "--lock-wait", "nan"], ["compact", "LAKE", "--target-mb", "1.5"],
    ["query", "LAKE", "select 1", "--max-rows", "-1"],
    ["query", "LAKE", "select 1", "--format", "xml"],
    ["evaluate", "LAKE", "--truth", "t.csv", "--table", "detections"],
    ["label"],  # SOURCE and --output missing
])
def test_other_commands_refuse_bad_values(tmp_path: Path, capsys, argv: list[str]):
    _refused(capsys, [a.replace("LAKE", str(tmp_path)) for a in argv])
