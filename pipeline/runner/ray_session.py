"""Joining or starting Ray: the one place vidlake calls `ray.init`.

Without an address a fresh local Ray starts in this process (the embedded
default); with one (or RAY_ADDRESS) the driver joins that cluster. `auto`
joins the one `ray start --head` left running on this machine, which spares
each small job Ray's start-up (docs/operations.md, "A warm local cluster").
Either way Ray records this driver's command line with its secrets masked,
Ray's log handler masks secrets too, and Ray's processes never inherit a
real-time scheduling policy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import ray

from pipeline.secrets import filter_log_handlers, redact_argv

log = logging.getLogger(__name__)


def _leave_realtime_scheduling() -> None:
    """Back to SCHED_OTHER if this process runs under a real-time policy (an
    AV1 encode by SVT-AV1 as root leaves SCHED_FIFO 99 behind): every Ray
    process would inherit it, and Ray's polling threads at real-time priority
    starve the processes they wait for (seen: load 400, a 30 s training run
    stuck for minutes)."""
    if not hasattr(os, "sched_getscheduler"):
        return
    try:
        if os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR):
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            log.warning("this process ran under a real-time scheduling policy; Ray starts "
                        "under SCHED_OTHER")
    except OSError as exc:
        log.warning("cannot leave the real-time scheduling policy: %s", exc)


def start_ray(address: str | None, dashboard: bool = False) -> None:
    """Join `address` (or RAY_ADDRESS), or start a local Ray in this process;
    `dashboard` starts its dashboard too (and the state API Ray Train polls)."""
    if ray.is_initialized():
        return
    _leave_realtime_scheduling()
    if address:  # the flag wins: Ray itself would prefer RAY_ADDRESS to its argument
        os.environ["RAY_ADDRESS"] = address
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        with _redacted_entrypoint():
            ray.init(address=address, logging_level=logging.WARNING)
        filter_log_handlers()  # Ray's own handler, set up by ray.init
        return
    # Ray reports usage statistics over the network unless told not to; a run
    # reaches nothing beyond the user's storage (a user's explicit 1 stands).
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Local workers import what the driver can: its working directory too.
    paths = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    # address="local": always a fresh in-process cluster, never a stray one that
    # `ray start` left running on this machine.
    with _redacted_entrypoint():
        ray.init(address="local", include_dashboard=dashboard, logging_level=logging.WARNING,
                 configure_logging=True, log_to_driver=True)
    filter_log_handlers()


def _command_line() -> list[str]:
    """This process's command line, as Ray reads it for a driver's entrypoint."""
    import psutil  # Ray's own dependency (vendored), importable once ray is

    try:
        return list(psutil.Process().cmdline())
    except psutil.Error:
        return [sys.executable, *sys.argv]


@contextlib.contextmanager
def _redacted_entrypoint() -> Iterator[None]:
    """While Ray connects, have it record this driver's command line with the
    secrets masked (`redact_argv`). Ray stores a driver's entrypoint in its job
    table (`ray list jobs`, the dashboard), reading it from the process's command
    line, `--storage-option secret=...` included, and `ray.init` takes no
    argument for it, so its helper is swapped for the duration of the call.
    tests/hostile/test_secrets.py fails if a Ray release records it another way."""
    import ray._private.utils as ray_utils

    original = getattr(ray_utils, "get_entrypoint_name", None)

    def redacted_entrypoint_name() -> str:
        prefix = "(interactive_shell) " if hasattr(sys, "ps1") else ""  # as Ray's own
        return prefix + subprocess.list2cmdline(redact_argv(_command_line()))

    ray_utils.get_entrypoint_name = redacted_entrypoint_name
    try:
        yield
    finally:
        if original is not None:
            ray_utils.get_entrypoint_name = original
