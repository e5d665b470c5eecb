"""Keyframe reads (`--sample keyframes`, `uniform:8~`) on every file of the
conformance matrix: the probe finds the keyframes a forward decode flags, and
decoding each one alone gives the frame, index and time a forward decode gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.corpus.listing import list_corpus
from pipeline.decode.unit_decoder import KEYFRAME_DECODER, decode_unit
from pipeline.plan.probe import probe_video
from pipeline.plan.work_unit import WorkUnit, unit_id_for
from tests.decode.conformance.matrix import CASES, FPS, SETTINGS, Case, forward_decode, write_case


def _forward_keyframes(path: Path) -> list[int]:
    import av

    with av.open(str(path)) as container:
        return [i for i, frame in enumerate(container.decode(container.streams.video[0]))
                if frame.key_frame]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_keyframes_decode_alone_exactly(case: Case, tmp_path: Path):
    path = write_case(case, tmp_path)
    (ref,) = list_corpus(str(path))
    keys = probe_video(ref, keyframes=True).keyframes
    assert keys is not None and keys.tolist() == _forward_keyframes(path)
    unit = WorkUnit(unit_id=unit_id_for(ref, "keyframes", 0, 1), video=ref, unit_index=0,
                    frame_indices=tuple(int(k) for k in keys), fps=float(FPS),
                    keyframes_only=True)
    decoded = decode_unit(SETTINGS, unit)
    assert decoded.ok and decoded.decoder == KEYFRAME_DECODER
    frames, times = forward_decode(path)
    errors = np.abs(frames[None].astype(np.int16) - decoded.frames[:, None].astype(np.int16))
    assert errors.mean(axis=(2, 3, 4)).argmin(axis=1).tolist() == keys.tolist()
    np.testing.assert_allclose(decoded.timestamps_s, times[keys], atol=0.5 / FPS)


def test_frames_wrongly_taken_for_keyframes_are_decoded_exactly(tmp_path: Path):
    """FFmpeg's demuxers re-check keyframe flags (an AVI index that flags every
    frame key does not fool them), but a unit marked keyframes-only whose frames
    are not keyframes must still get the frames its indices name: the decoder's
    own verdict sends it GOP by GOP."""
    path = write_case(Case("ts", "h264_bframes"), tmp_path)
    (ref,) = list_corpus(str(path))
    unit = WorkUnit(unit_id=unit_id_for(ref, "keyframes", 0, 1), video=ref, unit_index=0,
                    frame_indices=(5, 12, 30), fps=float(FPS), keyframes_only=True)
    decoded = decode_unit(SETTINGS, unit)
    assert decoded.ok and decoded.decoder != KEYFRAME_DECODER
    frames, _ = forward_decode(path)
    errors = np.abs(frames[None].astype(np.int16) - decoded.frames[:, None].astype(np.int16))
    assert errors.mean(axis=(2, 3, 4)).argmin(axis=1).tolist() == [5, 12, 30]
