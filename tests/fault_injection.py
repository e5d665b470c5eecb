"""Fault-injection frame decoders, named by `ExecutionSpec.decoder_path`
("tests.fault_injection:hang_on_marker") and resolved inside Ray workers,
which import `tests` from the repository root that start_ray puts on
PYTHONPATH."""

from __future__ import annotations

import ctypes
import signal
import time
from pathlib import Path

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


WAIT_MARKER = "WAIT"
WAIT_LIMIT_S = 120.0


def wait_for_go_file(settings: DecodeSettings, unit: WorkUnit, path: str) -> DecodedUnit:
    """On videos whose uri contains WAIT, wait until a file `<uri>.go` exists (a
    test creates it once it has seen what it waits for while the run is still
    going; at most WAIT_LIMIT_S), then decode normally."""
    if WAIT_MARKER in unit.video.uri:
        go = Path(unit.video.uri + ".go")
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # a handshake with the test, polled
    return decode_frames(settings, unit, path)
