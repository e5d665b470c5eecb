"""Keyframe reads (`--sample keyframes`, `uniform:8~`) on every file of the
conformance matrix: the probe finds the keyframes a forward decode flags, and
decoding each one alone gives the frame, index and time a forward decode gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.decode.unit_decoder import KEYFRAME_DECODER
from tests.decode.conformance.matrix import (
    CASES,
    Case,
    forward_decode,
    keyframes_of,
    verdict,
    write_case,
)


def _forward_keyframes(path: Path) -> tuple[int, ...]:
    import av

    with av.open(str(path)) as container:
        frames: Any = container.decode(container.streams.best("video"))
        return tuple(i for i, frame in enumerate(frames) if frame.key_frame)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_keyframes_decode_alone_exactly(case: Case, tmp_path: Path):
    path = write_case(case, tmp_path)
    keys = keyframes_of(path)
    assert keys == _forward_keyframes(path)
    found = verdict(path, keys, forward_decode(path), keyframes_only=True)
    assert found == f"exact ({KEYFRAME_DECODER})"


def test_frames_wrongly_taken_for_keyframes_are_decoded_exactly(tmp_path: Path):
    """FFmpeg's demuxers re-check keyframe flags (an AVI index that flags every
    frame key does not fool them), but a unit marked keyframes-only whose frames
    are not keyframes must still get the frames its indices name: the decoder's
    own verdict sends it GOP by GOP."""
    path = write_case(Case("ts", "h264_bframes"), tmp_path)
    found = verdict(path, (5, 12, 30), forward_decode(path), keyframes_only=True)
    assert found.startswith("exact") and KEYFRAME_DECODER not in found
