"""ProgressReporter: the bar on a terminal, plain log lines elsewhere, and the
formatting behind both (a fake clock: no sleeping)."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from pipeline.runner.progress import (
    ProgressReporter,
    ProgressState,
    eta,
    format_bar,
    format_duration,
    format_plain,
    wants_bar,
)


class TtyStringIO(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("VIDLAKE_PROGRESS", raising=False)
    monkeypatch.setenv("COLUMNS", "120")
    yield


def state(**changes: object) -> ProgressState:
    values: dict[str, object] = dict(units_done=30, units_planned=120, planning=False,
                                     frames=960, frames_per_s=183.25, elapsed_s=42.0,
                                     eta_s=63.0)
    values.update(changes)
    return ProgressState(**values)  # type: ignore[arg-type]


def test_format_duration() -> None:
    assert format_duration(0) == "0:00"
    assert format_duration(42.9) == "0:42"
    assert format_duration(725) == "12:05"
    assert format_duration(3723) == "1:02:03"
    assert format_duration(-1) == "0:00"


def test_eta_only_with_a_total_and_a_rate() -> None:
    assert eta(done=30, total=120, units_per_s=2.0) == 45.0
    assert eta(done=30, total=None, units_per_s=2.0) is None
    assert eta(done=30, total=120, units_per_s=0.0) is None
    assert eta(done=130, total=120, units_per_s=2.0) == 0.0


def test_bar_with_a_known_total() -> None:
    line = format_bar(state(), 200)
    assert line == ("[#######.......................]  25% 30/120 units | 960 frames, "
                    "183.2 frames/s | 0:42 elapsed, ETA 1:03")


def test_bar_while_planning_has_no_bar_and_no_eta() -> None:
    line = format_bar(state(planning=True, eta_s=None), 200)
    assert line == ("30/120+ units, planning... | 960 frames, 183.2 frames/s | "
                    "0:42 elapsed, ETA ?")


def test_bar_without_a_rate_says_eta_unknown() -> None:
    assert format_bar(state(eta_s=None), 200).endswith("ETA ?")


@pytest.mark.parametrize("width", [0, 1, 5, 40, 80, 85, 96, 120, 300])
def test_bar_never_wider_than_the_terminal(width: int) -> None:
    for s in (state(), state(planning=True, eta_s=None), state(units_planned=0)):
        assert len(format_bar(s, width)) <= max(width - 1, 0)


def test_bar_drops_the_bar_on_a_narrow_terminal() -> None:
    text = format_bar(state(), 80)
    assert text.startswith(" 25% 30/120 units") and text.endswith("ETA 1:03")
    fits = len(text) + 1 + len("[##########] ")
    assert format_bar(state(), fits).startswith("[##........] ")
    assert format_bar(state(), fits - 1) == text


def test_plain_lines() -> None:
    assert format_plain(state(planning=True, eta_s=None)) == (
        "progress: 30 of 120 units planned so far, 960 frames, 183.2 frames/s")
    assert format_plain(state()) == (
        "progress: 30 of 120 units, 960 frames, 183.2 frames/s, ETA 1:03")
    assert format_plain(state(eta_s=None)) == (
        "progress: 30 of 120 units, 960 frames, 183.2 frames/s")


def test_wants_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    assert wants_bar(TtyStringIO())
    assert not wants_bar(io.StringIO())
    monkeypatch.setenv("VIDLAKE_PROGRESS", "plain")
    assert not wants_bar(TtyStringIO())
    monkeypatch.setenv("VIDLAKE_PROGRESS", "bar")
    assert wants_bar(io.StringIO())
    monkeypatch.setenv("VIDLAKE_PROGRESS", "fancy")  # unknown: detect
    assert not wants_bar(io.StringIO())


def test_terminal_redraws_in_place_throttled_and_ends_with_a_newline() -> None:
    out, clock = TtyStringIO(), FakeClock()
    with ProgressReporter(stream=out, clock=clock) as progress:
        progress.planned(4, complete=False)
        clock.now += 1.0
        progress.update(1, 8)  # drawn: the first
        clock.now += 0.1
        progress.update(1, 8)  # within 1/5 s: not drawn
        clock.now += 0.2
        progress.planned(4, complete=True)
        progress.update(1, 8)  # drawn
        clock.now += 0.3
        progress.update(1, 8)
        assert "\n" not in out.getvalue()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    draws = text.rstrip("\n").split("\r")[1:]
    assert draws[0] == "1/4+ units, planning... | 8 frames, 8.0 frames/s | 0:01 elapsed, ETA ?"
    assert draws[1].startswith("[") and " 75% 3/4 units | 24 frames" in draws[1]
    assert draws[1].endswith("ETA 0:00")  # 2 units in 0.3 s after the first: 1 left
    assert draws[-1].startswith("[##############################] 100% 4/4 units")
    assert len(draws) == 4  # three draws, then the last state once more on leaving
    assert all(len(d) <= 119 for d in draws)


def test_shorter_line_covers_the_longer_one() -> None:
    out, clock = TtyStringIO(), FakeClock()
    with ProgressReporter(stream=out, clock=clock) as progress:
        progress.update(1, 1000)
        progress.line.draw("short")  # type: ignore[union-attr]
    first = out.getvalue().split("\r")[1]
    assert out.getvalue().split("\r")[2].rstrip("\n").startswith("short" + " " * (len(first) - 5))


def test_no_output_on_a_terminal_without_results() -> None:
    out = TtyStringIO()
    with ProgressReporter(stream=out, clock=FakeClock()):
        pass
    assert out.getvalue() == ""


def test_log_records_clear_the_bar_and_it_comes_back_below() -> None:
    out, clock = TtyStringIO(), FakeClock()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with ProgressReporter(stream=out, clock=clock) as progress:
            progress.update(1, 8)
            bar = out.getvalue()
            logging.getLogger("vidlake.test").warning("video x failed")
            assert handler.stream is not out  # guarded while the bar is up
        assert handler.stream is out
    finally:
        root.removeHandler(handler)
    after = out.getvalue()[len(bar):]
    blank = " " * (len(bar) - 1)
    assert after.startswith(f"\r{blank}\rWARNING video x failed\n\r")
    assert after.endswith("\n") and after.count("\n") == 2


def test_stderr_writes_clear_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    out, clock = TtyStringIO(), FakeClock()
    monkeypatch.setattr(sys, "stderr", out)
    with ProgressReporter(clock=clock) as progress:
        progress.update(1, 8)
        assert sys.stderr is not out and sys.stderr.isatty()
        print("(worker pid=1) hello", file=sys.stderr)
    assert sys.stderr is out
    lines = out.getvalue().split("\n")
    assert lines[0].endswith("\r(worker pid=1) hello")
    assert lines[1].startswith("\r1/0+ units, planning...")


def test_not_a_terminal_logs_plain_lines_every_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    out, clock = io.StringIO(), FakeClock()
    caplog.set_level(logging.INFO, logger="vidlake.progress")
    with ProgressReporter(stream=out, clock=clock) as progress:
        progress.planned(10, complete=False)
        for _ in range(6):
            clock.now += 0.5
            progress.update(1, 10)  # logged at 0.5 s (the first) and at 2.5 s
        progress.planned(10, complete=True)
        clock.now += 1.5
        progress.update(1, 10)  # 4.5 s: 2 s after the last line
    assert out.getvalue() == ""
    assert [r.getMessage() for r in caplog.records if r.name == "vidlake.progress"] == [
        "progress: 1 of 10 units planned so far, 10 frames, 20.0 frames/s",
        "progress: 5 of 10 units planned so far, 50 frames, 20.0 frames/s",
        "progress: 7 of 10 units, 70 frames, 15.6 frames/s, ETA 0:02",
    ]


def test_steady_rate_leaves_out_the_start() -> None:
    clock = FakeClock()
    progress = ProgressReporter(stream=io.StringIO(), clock=clock)
    assert progress.steady_frames_per_s == 0.0
    clock.now += 30.0  # model loading
    progress.update(1, 8)
    assert progress.steady_frames_per_s == 0.0
    clock.now += 2.0
    progress.update(2, 16)
    assert progress.steady_frames_per_s == 8.0
