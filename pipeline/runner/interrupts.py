"""Ctrl-C between commits, never inside one, and never lost."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) until the block is done, then raise it.

    A commit interrupted half-way is recovered by the next run, but the run
    interrupted would not know whether its commit landed, and its `runs` row
    could not count it. In any thread but the main one (signals go there)
    this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


class InterruptWatch:
    """Ctrl-C that cannot be lost: while watching, SIGINT is remembered as well
    as raised, and `check()` raises it again at a safe point. Python raises
    KeyboardInterrupt wherever the main thread happens to be, and when that is
    a destructor (decord's VideoReader.__del__) it is printed and swallowed:
    the run would go on as if nothing was pressed."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None
        self._previous_hook = sys.unraisablehook

    def __enter__(self) -> InterruptWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            sys.unraisablehook = self._on_unraisable
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            sys.unraisablehook = self._previous_hook

    def _on_unraisable(self, unraisable: Any) -> None:
        """A KeyboardInterrupt a destructor swallowed is remembered, not printed
        (the user sees one line); anything else is reported as Python would."""
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            self.pressed = True
            return
        self._previous_hook(unraisable)

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed while watching."""
        if self.pressed:
            raise KeyboardInterrupt
