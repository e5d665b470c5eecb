"""`--decode-device gpu` on CPU: which videos NVDEC gets (from their real probed
streams, encoded here), what the CPU fallback records, and what is refused
before any work. NVDEC itself runs only in jobs/nvdec_check.py, on a GPU."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ExecutionSpec, FrameSize
from pipeline.decode.gpu_environment import (
    cluster_gpu_refusal,
    cuda_device_count,
    extra_installed,
    gpu_decode_refusal,
)
from pipeline.decode.gpu_routing import decode_frames_on_gpu
from pipeline.decode.nvdec_support import (
    NvdecLimits,
    StreamFacts,
    chroma_of,
    frame_times_s,
    stream_facts,
    why_not_nvdec,
)
from pipeline.decode.pyav_decoder import decode_with_pyav
from pipeline.decode.unit_decoder import DecodeSettings, decode_frames, decode_units
from pipeline.errors import ConfigError
from pipeline.synthetic.video_writer import write_video
from tests.decode.test_unit_decoder import unit_of

# What a GPU might answer for (codec, chroma, bit depth): data standing in for
# cuvidGetDecoderCaps, shaped like an older NVDEC (H.264 8-bit 4:2:0 only;
# HEVC 8/10-bit 4:2:0 and 4:4:4; AV1 8/10-bit 4:2:0).
LIMITS = {("h264", "420", 8): NvdecLimits(48, 16, 4096, 4096, 65536),
          ("hevc", "420", 8): NvdecLimits(144, 144, 8192, 8192, 262144),
          ("hevc", "420", 10): NvdecLimits(144, 144, 8192, 8192, 262144),
          ("hevc", "444", 8): NvdecLimits(144, 144, 8192, 8192, 262144),
          ("av1", "420", 8): NvdecLimits(128, 128, 8192, 8192, 262144)}


def limits_for(facts: StreamFacts | None) -> Callable[[], NvdecLimits | None]:
    return lambda: None if facts is None else LIMITS.get((facts.codec, facts.chroma,
                                                          facts.bit_depth))


def video(tmp_path: Path, name: str, codec: str, width: int = 64, height: int = 64,
          frames: int = 30) -> Path:
    path = tmp_path / name
    write_video(path, (np.full((height, width, 3), 7 * i % 256, np.uint8) for i in range(frames)),
                codec=codec, gop=10)
    return path


def verdict(path: Path) -> str | None:
    facts = stream_facts(str(path))
    return why_not_nvdec(facts, limits_for(facts))


def test_closed_gop_mp4_of_a_supported_codec_goes_to_nvdec(tmp_path: Path):
    assert verdict(video(tmp_path, "a.mp4", "h264")) is None
    assert verdict(video(tmp_path, "b.mp4", "h264_bframes")) is None
    assert verdict(video(tmp_path, "c.mp4", "hevc_closed_gop", 160, 160)) is None


@pytest.mark.parametrize(("name", "codec", "size", "reason"), [
    ("ten.mp4", "h264_10bit", (64, 64), "does not decode h264 4:2:0 10-bit"),
    ("full.mp4", "h264_444", (64, 64), "does not decode h264 4:4:4 8-bit"),
    ("tiny.mp4", "hevc_closed_gop", (64, 64), "64x64 is outside this GPU's NVDEC range"),
    ("open.mp4", "hevc", (160, 160), "open GOP"),
    ("a.mkv", "h264", (64, 64), "not verified in matroska"),
    ("a.ts", "h264", (64, 64), "not verified in mpegts"),
    ("a.mkv", "ffv1", (64, 64), "NVDEC has no ffv1 decoder"),
])
def test_what_nvdec_cannot_take_goes_to_cpu_with_a_reason(tmp_path: Path, name: str, codec: str,
                                                         size: tuple[int, int], reason: str):
    assert reason in (verdict(video(tmp_path, name, codec, *size)) or "")


def test_probed_facts_are_the_streams(tmp_path: Path):
    facts = stream_facts(str(video(tmp_path, "a.mp4", "h264_10bit", 96, 64)))
    assert facts is not None
    assert (facts.codec, facts.chroma, facts.bit_depth) == ("h264", "420", 10)
    assert (facts.width, facts.height, facts.rotation) == (96, 64, 0)
    assert facts.header_frames == facts.packet_frames == 30
    assert stream_facts(str(tmp_path / "a.mp4")) is facts  # one probe per video
    assert chroma_of("yuv422p") == ("422", 8) and chroma_of("gray") == ("400", 8)
    assert chroma_of("rgb24") == ("", 8) and chroma_of("no-such-format") == ("", 0)


def test_headers_that_disagree_with_the_stream_go_to_cpu(tmp_path: Path):
    facts = stream_facts(str(video(tmp_path, "a.mp4", "h264")))
    assert facts is not None
    lying = dataclasses.replace(facts, header_frames=31)
    assert "header counts 31 frames and the stream holds 30" in (
        why_not_nvdec(lying, limits_for(lying)) or "")
    no_times = dataclasses.replace(facts, frame_pts=None)
    assert "frame times" in (why_not_nvdec(no_times, limits_for(no_times)) or "")
    asked: list[StreamFacts] = []

    def limits() -> NvdecLimits | None:
        asked.append(lying)
        return None

    why_not_nvdec(lying, limits)
    assert not asked  # the GPU is asked only about a stream that passed the rest
    assert why_not_nvdec(None, limits_for(None)) == "its stream header could not be read"
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 100)
    assert stream_facts(str(tmp_path / "junk.mp4")) is None


def test_nvdec_timestamps_are_the_cpu_decoders(tmp_path: Path):
    path = video(tmp_path, "a.mp4", "h264_bframes", frames=60)
    facts = stream_facts(str(path))
    assert facts is not None
    indices = np.array([0, 5, 17, 33, 59], np.int64)
    _, kept, stamps, _ = decode_with_pyav(str(path), indices, FrameSize(32, 32), threads=1)
    assert np.array_equal(kept, indices)
    times = frame_times_s(facts, kept)
    assert times is not None and np.array_equal(times, stamps)


def test_a_video_nvdec_cannot_take_is_decoded_on_cpu_as_before(tmp_path: Path):
    """The fallback needs no GPU: decord's frames, named "decord", the reason noted."""
    path = video(tmp_path, "a.mkv", "h264")
    unit = unit_of(path, (0, 9, 10, 29))
    settings = DecodeSettings(size=FrameSize(32, 32), device="gpu")
    on_gpu = decode_frames_on_gpu(settings, unit, str(path))
    on_cpu = decode_frames(DecodeSettings(size=FrameSize(32, 32)), unit, str(path))
    assert on_gpu.ok and on_gpu.decoder == on_cpu.decoder == "decord"
    assert np.array_equal(on_gpu.frames, on_cpu.frames)
    assert np.array_equal(on_gpu.timestamps_s, on_cpu.timestamps_s)
    assert on_gpu.notes == ["decoded on CPU: NVDEC frame indexing is not verified in "
                            "matroska,webm"]


@pytest.mark.skipif(extra_installed() and cuda_device_count() > 0, reason="a GPU machine")
def test_a_process_without_nvdec_stops_the_run_not_the_video(tmp_path: Path):
    """Without the extra (or a device) GPU decode is a systemic error, raised by
    the decode stage, never an error row per video."""
    unit = unit_of(video(tmp_path, "a.mp4", "h264"), (0, 1))
    with pytest.raises(ConfigError, match="--decode-device gpu"):
        decode_units(DecodeSettings(size=FrameSize(32, 32), device="gpu"), [unit])


def gpu(**fields: object) -> ExecutionSpec:
    return dataclasses.replace(ExecutionSpec(decode_device="gpu"), **fields)  # type: ignore[arg-type]


def test_gpu_decode_placement_and_environment_rules(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert gpu_decode_refusal(ExecutionSpec(), extra=False, cuda_devices=0) is None
    assert "add --decode in-actor" in (gpu_decode_refusal(gpu(), extra=True, cuda_devices=1) or "")
    assert gpu_decode_refusal(gpu(decode="in-actor"), extra=True, cuda_devices=1) is None
    assert gpu_decode_refusal(gpu(engine="sequential"), extra=True, cuda_devices=1) is None
    assert "pip install 'vidlake[gpu]'" in (
        gpu_decode_refusal(gpu(engine="sequential"), extra=False, cuda_devices=1) or "")
    assert "needs a CUDA device" in (
        gpu_decode_refusal(gpu(decode="in-actor"), extra=True, cuda_devices=0) or "")
    # a joined cluster's GPUs are elsewhere: its engine and actors check them
    joined = gpu(decode="in-actor", address="ray://head:10001")
    assert gpu_decode_refusal(joined, extra=False, cuda_devices=0) is None
    assert "has no GPU" in (cluster_gpu_refusal(joined, gpus=0) or "")
    assert cluster_gpu_refusal(joined, gpus=2) is None
    assert cluster_gpu_refusal(ExecutionSpec(), gpus=0) is None
