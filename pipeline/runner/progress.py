"""Live progress: units done out of those planned so far, frames, frames/s, ETA.

Where it goes depends on stderr. On a terminal, one line redraws itself in
place (a carriage return, at most `REDRAWS_PER_S` times a second) and ends
with a newline when the run loop does, before the summary. While it is shown,
writes through the root's and Ray's log handlers and through `sys.stderr`
(Ray's forwarded worker output) clear it first and redraw it after a full
line, so neither garbles the other. Elsewhere (Ray job logs, CI, a pipe) a
plain `progress:` log line every `interval_s` seconds. The environment
variable VIDLAKE_PROGRESS=bar or =plain overrides the detection.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TextIO, cast

log = logging.getLogger("vidlake.progress")

REDRAWS_PER_S = 5  # often enough to look live, rarely enough to cost nothing
BAR_CELLS = (10, 30)  # the bar's fewest and most cells; narrower terminals get none
GUARDED_LOGGERS = ("", "ray")  # the root, and Ray's (it keeps its own stderr handler)


@dataclass(frozen=True)
class ProgressState:
    """One reading of a run's progress."""

    units_done: int
    units_planned: int  # units to run, known so far
    planning: bool  # videos remain to plan: `units_planned` may still grow
    frames: int
    frames_per_s: float  # frames since the run loop started / elapsed_s
    elapsed_s: float
    eta_s: float | None  # None while unknown (still planning, or no rate measured yet)


def eta(*, done: int, total: int | None, units_per_s: float) -> float | None:
    """Seconds until `total` units are done at `units_per_s`; None while the
    total is not known (None) or the rate not measured (0)."""
    if total is None or units_per_s <= 0:
        return None
    return max(total - done, 0) / units_per_s


def format_duration(seconds: float) -> str:
    """`0:42`, `12:05`, `1:02:03` (whole seconds, rounded down)."""
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_bar(state: ProgressState, width: int) -> str:
    """The terminal line for `state`, at most `width - 1` characters (a line
    as wide as the terminal wraps on some):
    `[######......]  40% 120/300 units | 960 frames, 183.2 frames/s | 0:42 elapsed, ETA 1:03`,
    and while planning `120/300+ units, planning... | ... | ETA ?` (no bar)."""
    done, planned = state.units_done, state.units_planned
    if state.planning:
        counts = f"{done}/{planned}+ units, planning..."
    else:
        percent = 100 * min(done, planned) // planned if planned else 100
        counts = f"{percent:3d}% {done}/{planned} units"
    eta_text = "?" if state.eta_s is None else format_duration(state.eta_s)
    text = (f"{counts} | {state.frames} frames, {state.frames_per_s:.1f} frames/s | "
            f"{format_duration(state.elapsed_s)} elapsed, ETA {eta_text}")
    limit = max(width - 1, 0)
    room = limit - len(text) - 3  # the brackets and a space
    if not state.planning and room >= BAR_CELLS[0]:
        cells = min(room, BAR_CELLS[1])
        filled = cells * min(done, planned) // planned if planned else cells
        text = f"[{'#' * filled}{'.' * (cells - filled)}] {text}"
    return text[:limit]


def format_plain(state: ProgressState) -> str:
    """The log line: `progress: 120 of 600 units planned so far, 960 frames,
    183.2 frames/s` while planning, then `progress: 120 of 600 units, 960
    frames, 183.2 frames/s, ETA 2:31` (no ETA until a rate is measured)."""
    so_far = " planned so far" if state.planning else ""
    line = (f"progress: {state.units_done} of {state.units_planned} units{so_far}, "
            f"{state.frames} frames, {state.frames_per_s:.1f} frames/s")
    if state.eta_s is not None:
        line += f", ETA {format_duration(state.eta_s)}"
    return line


def wants_bar(stream: TextIO) -> bool:
    """VIDLAKE_PROGRESS=bar or =plain if set, else whether `stream` is a terminal."""
    mode = os.environ.get("VIDLAKE_PROGRESS", "").strip().lower()
    if mode in ("bar", "plain"):
        return mode == "bar"
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal behind `stream` (else $COLUMNS, else 80)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):  # not a real file: a test's stream
        columns = 0
    return columns if columns > 0 else shutil.get_terminal_size().columns


class TerminalLine:
    """The last line of a terminal stream, redrawn in place with `\\r`.
    `render()` gives its current text, for redraws after other writes."""

    def __init__(self, stream: TextIO, render: Callable[[], str]) -> None:
        self.stream = stream
        self.render = render
        self.lock = threading.RLock()  # log records may come from other threads
        self.shown = 0  # characters of the line on screen now
        self.drawn = False  # drawn at least once: ending it writes a newline

    def draw(self, text: str) -> None:
        with self.lock:
            pad = " " * max(self.shown - len(text), 0)  # cover a longer line's tail
            self.stream.write(f"\r{text}{pad}")
            self.stream.flush()
            self.shown, self.drawn = len(text), True

    def clear(self) -> None:
        with self.lock:
            if self.shown:
                self.stream.write(f"\r{' ' * self.shown}\r")
                self.shown = 0

    def redraw(self) -> None:
        with self.lock:
            if self.drawn:
                self.draw(self.render())

    def end(self) -> None:
        """Draw the line once more and move below it for good."""
        with self.lock:
            if self.drawn:
                self.draw(self.render())
                self.stream.write("\n")
                self.stream.flush()
                self.shown, self.drawn = 0, False


class GuardedStream:
    """Wraps a text stream: each write clears the terminal line first, and a
    write that ends a line redraws it below."""

    def __init__(self, stream: TextIO, line: TerminalLine) -> None:
        self._stream = stream
        self._line = line

    def write(self, text: str) -> int:
        with self._line.lock:
            self._line.clear()
            written = self._stream.write(text)
            if text.endswith("\n"):
                self._line.redraw()
            return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ProgressReporter:
    """Reports a run's progress: a self-redrawing bar when `stream` (stderr)
    is a terminal, else a log line at most every `interval_s` seconds. Use as
    a context manager: inside, log records and stderr writes keep clear of the
    bar; leaving ends its line. `clock`: seconds, monotonic (tests pass a fake)."""

    def __init__(self, total_units: int = 0, interval_s: float = 2.0, *,
                 stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total_units
        self.planning = True
        self.interval_s = interval_s
        self.units = 0
        self.frames = 0
        self.clock = clock
        self.started = clock()
        self._last: float | None = None  # when the line was last logged or drawn
        self._first: tuple[float, int, int] | None = None  # (time, units, frames) of result 1
        self._latest = self.started
        self.stream = stream or sys.stderr
        self.line = TerminalLine(self.stream, self._render) if wants_bar(self.stream) else None
        self._restore: list[Callable[[], None]] = []

    def planned(self, units: int, *, complete: bool) -> None:
        """`units` to run are known so far; `complete`: planning is over."""
        self.total, self.planning = units, not complete

    def update(self, units: int, frames: int) -> None:
        """`units` more are done, with `frames` decoded frames."""
        now = self.clock()
        if self._first is None:
            self._first = (now, units, frames)
        self.units += units
        self.frames += frames
        self._latest = now
        if self.line is not None:
            if self._last is None or now - self._last >= 1 / REDRAWS_PER_S or not self.line.shown:
                self._last = now
                self.line.draw(self._render())
        elif self._last is None or now - self._last >= self.interval_s:
            self._last = now
            log.info("%s", format_plain(self.state(now)))

    def state(self, now: float) -> ProgressState:
        """The progress at `now` (a reading of `clock`)."""
        elapsed = now - self.started
        units_per_s = self._steady(self.units, 1)
        return ProgressState(
            units_done=self.units, units_planned=self.total, planning=self.planning,
            frames=self.frames, frames_per_s=self.frames / elapsed if elapsed > 0 else 0.0,
            elapsed_s=elapsed,
            eta_s=eta(done=self.units, total=None if self.planning else self.total,
                      units_per_s=units_per_s))

    @property
    def steady_frames_per_s(self) -> float:
        """Frames/s from the first result to the last: start-up and model loading
        left out."""
        return self._steady(self.frames, 2)

    def _steady(self, count: int, field: int) -> float:
        """`count` (units or frames) per second after the first result."""
        if self._first is None or self._latest <= self._first[0]:
            return 0.0
        return (count - self._first[field]) / (self._latest - self._first[0])

    def _render(self) -> str:
        return format_bar(self.state(self.clock()), terminal_width(self.stream))

    def __enter__(self) -> ProgressReporter:
        if self.line is not None:
            self._guard(self.line)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the bar's line (the summary prints below it); stop guarding."""
        if self.line is not None:
            self.line.end()
        while self._restore:
            self._restore.pop()()

    def _guard(self, line: TerminalLine) -> None:
        """Route the log handlers that write to the bar's stream, and
        `sys.stderr` when that is the bar's stream, through a GuardedStream."""
        guard = cast(TextIO, GuardedStream(line.stream, line))
        for name in GUARDED_LOGGERS:
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is line.stream:
                    handler.setStream(guard)
                    self._restore.append(partial(_unguard_handler, handler, guard, line.stream))
        if sys.stderr is line.stream:
            sys.stderr = guard
            self._restore.append(partial(_unguard_stderr, guard, line.stream))


def _unguard_handler(handler: logging.StreamHandler[Any], guard: TextIO,
                     stream: TextIO) -> None:
    if handler.stream is guard:  # unless someone has set another stream since
        handler.setStream(stream)


def _unguard_stderr(guard: TextIO, stream: TextIO) -> None:
    if sys.stderr is guard:
        sys.stderr = stream
