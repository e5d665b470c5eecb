"""The in-actor decode thread hands a systemic error to its call, which raises
it (the driver then stops the run, exit 2), instead of dying alone and
leaving the call waiting until the unit times out. Plain objects, no Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import FrameSize
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.gpu_environment import cuda_device_count, extra_installed
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.errors import ConfigError, StorageError
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.ray_tasks import InferenceActor
from pipeline.synthetic.video_writer import write_video
from tests.decode.test_unit_decoder import unit_of


def storage_gone(settings: DecodeSettings, unit: WorkUnit, path: str) -> DecodedUnit:
    raise StorageError("the store went away")


def _unit(tmp_path: Path) -> WorkUnit:
    path = tmp_path / "a.mp4"
    write_video(path, (np.zeros((32, 32, 3), np.uint8) for _ in range(4)))
    return unit_of(path, (0, 1))


def test_a_systemic_error_in_the_decode_thread_reaches_the_call(tmp_path: Path):
    settings = DecodeSettings(size=FrameSize(32, 32),
                              decoder_path=f"{__name__}:storage_gone")
    with pytest.raises(StorageError, match="the store went away"):
        InferenceActor([]).decode_and_infer(settings, [_unit(tmp_path)], 8, [])


@pytest.mark.skipif(extra_installed() and cuda_device_count() > 0, reason="a GPU machine")
def test_an_actor_that_cannot_decode_on_gpu_refuses_its_first_call(tmp_path: Path):
    settings = DecodeSettings(size=FrameSize(32, 32), device="gpu")
    with pytest.raises(ConfigError, match="--decode-device gpu"):
        InferenceActor([]).decode_and_infer(settings, [_unit(tmp_path)], 8, [])
