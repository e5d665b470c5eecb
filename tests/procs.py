"""Loopback ports and child processes for the servers the tests start."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# Address space a child may map (torch's libraries included): a regression that
# allocates by what a hostile file claims fails the child, not the machine.
CHILD_MEMORY = 6 * 2**30


def cap_memory(limit: int = CHILD_MEMORY) -> None:
    """preexec_fn for a child process: at most `limit` bytes of address space."""
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free right now on every local address.

    Bound on the wildcard address, not loopback: Ray turns `--node-ip-address=127.0.0.1`
    into the host's routable IP, so a port another Ray holds there looks free on 127.0.0.1
    (seen in CI: a test node's raylet reached the session Ray's runtime-env agent, 403)."""
    with contextlib.ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, proc: subprocess.Popen, deadline_s: float, what: str) -> None:
    """Poll until `port` accepts connections; fail if `proc` exits or time runs out."""
    deadline = time.monotonic() + deadline_s
    while not port_accepts(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before port {port} "
                               "opened")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: port {port} not open after {deadline_s:.0f}s")
        time.sleep(0.1)


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the group `proc` leads (started with start_new_session), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children the leader left behind
    proc.wait()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240,
            ) -> subprocess.CompletedProcess[str]:
    """Run `vidlake ARGS` from the repository root; returns the completed process."""
    return subprocess.run([str(VENV_BIN / "vidlake"), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
