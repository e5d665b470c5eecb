"""Fault-injection frame decoders, named by `ExecutionSpec.decoder_path`
("tests.fault_injection:hang_on_marker") and resolved inside Ray workers,
which import `tests` from the repository root that start_ray puts on
PYTHONPATH."""

from __future__ import annotations

import ctypes
import signal

from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.unit_decoder import DecodeSettings, decode_frames
from pipeline.plan.work_unit import WorkUnit

HANG_MARKER = "HANG"


def hang_forever() -> None:
    """Block in native code, holding the GIL, deaf to every catchable signal:
    what a stuck decord looks like from outside. Only SIGKILL ends it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    libc = ctypes.PyDLL(None)  # PyDLL: the GIL stays held during the call
    libc.pause()


def hang_on_marker(settings: DecodeSettings, unit: WorkUnit, path: str) -> DecodedUnit:
    """Hang on videos whose uri contains HANG; decode every other one normally."""
    if HANG_MARKER in unit.video.uri:
        hang_forever()
    return decode_frames(settings, unit, path)


class SimulatedCrash(BaseException):
    """The process 'dies' here (a BaseException, like KeyboardInterrupt: no
    `except Exception` on the way up stops it)."""


CRASH_MARKER = "CRASH"


def crash_on_marker(settings: DecodeSettings, unit: WorkUnit, path: str) -> DecodedUnit:
    """Kill the run on videos whose uri contains CRASH; decode every other one normally."""
    if CRASH_MARKER in unit.video.uri:
        raise SimulatedCrash(unit.video.uri)
    return decode_frames(settings, unit, path)
