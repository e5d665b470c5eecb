"""LakeLock: one writer per lake. Exactly one of two racing runs wins, a lease
whose holder died is taken over (at once on this host, after its ttl from
another host), a live holder's heartbeat keeps it, and a stalled holder that
lost its lease finds out before its next commit. Each test runs on a local
folder and on a SeaweedFS bucket."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from pipeline.errors import LakeBusy
from pipeline.lake.lake_lock import LOCK_DIR, POLL_S, Clock, LakeLock
from pipeline.storage import filesystem, fs_path, join
from tests.procs import REPO_ROOT

OTHER_HOST = "far-away-host.example"


@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.slow, pytest.mark.s3])])
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A lake root: a local folder, or a prefix in a fresh SeaweedFS bucket."""
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


def _lock(root: str, run_id: str, *, ttl_s: float = 60.0, wait_s: float = 0.0,
          clock: Clock | None = None) -> LakeLock:
    return LakeLock(root, run_id=run_id, purpose="label", ttl_s=ttl_s, wait_s=wait_s,
                    clock=clock)


class FakeClock(Clock):
    """Time that passes only when the lock sleeps (instantly), `on_sleep` seeing
    each new monotonic time; wall time is the real one plus what has passed."""

    def __init__(self, on_sleep: Callable[[float], None] = lambda _now: None) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._wall0 = time.time()
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self._wall0 + self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.on_sleep(self.now)


def _lock_files(root: str) -> set[str]:
    """Names in LAKE/_lock, listed afresh."""
    fs = filesystem(root)
    try:
        listed = fs.ls(join(fs_path(root), LOCK_DIR), detail=False, refresh=True)
    except FileNotFoundError:
        return set()
    return {os.path.basename(p.rstrip("/")) for p in listed}


def _write_lease(root: str, generation: int, *, run_id: str, host: str, pid: int,
                 process_start: str = "", ttl_s: float = 60.0) -> None:
    """A lease file as `LakeLock._create` writes it, for a holder we make up."""
    body = json.dumps({"run_id": run_id, "host": host, "pid": pid,
                       "process_start": process_start, "ttl_s": ttl_s,
                       "purpose": "label"}).encode()
    path = join(fs_path(root), LOCK_DIR, f"lease-{generation:08d}.json")
    fs = filesystem(root)
    if root.startswith("s3://"):
        fs.pipe_file(path, body)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Path(path).write_bytes(body)


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.05)


# -- taking, refusing, releasing ------------------------------------------------------
def test_second_run_is_refused_until_the_first_releases(lake_root: str):
    first = _lock(lake_root, "run-first")
    first.acquire()
    try:
        assert first.generation == 1
        assert "lease-00000001.json" in _lock_files(lake_root)
        second = _lock(lake_root, "run-second", wait_s=0)
        with pytest.raises(LakeBusy, match="run-first"):
            second.acquire()
        assert second.generation == 0
        holder = second.holder()
        assert holder is not None
        assert (holder.run_id, holder.generation, holder.pid) == ("run-first", 1, os.getpid())
        first.check()  # nobody took it over
    finally:
        first.release()
    assert "lease-00000001.released" in _lock_files(lake_root)
    assert second.holder() is None
    with second:
        assert second.generation == 2
        with pytest.raises(LakeBusy, match="run-second"):
            _lock(lake_root, "run-third").acquire()
    assert second.generation == 0  # released on leaving the block


def test_old_generations_are_pruned(lake_root: str):
    for _ in range(5):
        with _lock(lake_root, "run-cycle"):
            pass
    names = _lock_files(lake_root)
    generations = {int(n[6:14]) for n in names if n.startswith("lease-")}
    assert generations == {4, 5}  # the lease before the newest is kept, older ones go
    with _lock(lake_root, "run-next") as lock:
        assert lock.generation == 6


def _race(root: str, contenders: int) -> tuple[list[LakeLock], list[BaseException]]:
    """`contenders` threads call acquire() at the same moment on one lake."""
    barrier = threading.Barrier(contenders)
    won: list[LakeLock] = []
    lost: list[BaseException] = []
    guard = threading.Lock()

    def contend(index: int) -> None:
        lock = _lock(root, f"racer-{index}", wait_s=0)
        barrier.wait()
        try:
            lock.acquire()
        except BaseException as exc:  # recorded and checked below
            with guard:
                lost.append(exc)
        else:
            with guard:
                won.append(lock)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "acquire() hung"
    return won, lost


@pytest.mark.parametrize("contenders", [2, 3])
def test_exactly_one_of_racing_runs_wins(lake_root: str, contenders: int):
    # a loser must see the winner's whole lease (never a half-written file)
    rounds = 10 if lake_root.startswith("s3://") else 100
    for round_ in range(rounds):
        won, lost = _race(lake_root, contenders)
        assert len(won) == 1, f"round {round_}: {len(won)} winners, losers: {lost!r}"
        assert len(lost) == contenders - 1
        for exc in lost:
            assert isinstance(exc, LakeBusy), f"round {round_}: {exc!r}"
            assert won[0].run_id in str(exc)
        assert won[0].generation == round_ + 1
        won[0].release()


# -- a holder that died or stalled ------------------------------------------------------
# A run that takes the lease, says so, then waits for a line on stdin before
# calling check() (so it can be killed or paused while it holds the lease).
HOLDER = """
import sys
from pipeline.errors import LakeBusy
from pipeline.lake.lake_lock import LakeLock
lock = LakeLock(sys.argv[1], run_id=sys.argv[2], purpose="label", ttl_s=float(sys.argv[3]))
lock.acquire()
print("held", lock.generation, flush=True)
sys.stdin.readline()
try:
    lock.check()
except LakeBusy as exc:
    print("busy:", exc, flush=True)
else:
    print("still held", flush=True)
"""


@pytest.fixture
def holder_process(lake_root: str) -> Iterator[Callable[[str, float], subprocess.Popen[str]]]:
    """Factory: a child process holding the lake's lease (run id, ttl_s); it is
    killed and reaped at the end of the test."""
    started: list[subprocess.Popen[str]] = []

    def start(run_id: str, ttl_s: float) -> subprocess.Popen[str]:
        before = _lock_files(lake_root)
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, lake_root, run_id, str(ttl_s)],
                                cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        started.append(proc)

        def lease_written() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"holder exited: {proc.communicate()[1]}")
            return any(n.endswith(".json") for n in _lock_files(lake_root) - before)

        _wait_until(lease_written, 60, "the child's lease file")
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.communicate(timeout=30)


def _state(pid: int) -> str:
    """The process state letter of `pid` (Z: exited, not yet reaped), '' when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _line(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.readline().strip()


def test_lease_of_a_killed_process_on_this_host_is_taken_over_at_once(
        lake_root: str, holder_process: Callable[[str, float], subprocess.Popen[str]]):
    proc = holder_process("run-doomed", 600.0)  # its lease would live 10 minutes
    with pytest.raises(LakeBusy, match="run-doomed"):
        _lock(lake_root, "run-next", wait_s=0).acquire()  # alive: refused
    proc.send_signal(signal.SIGKILL)
    # Not reaped yet: a zombie is as dead as a vanished process.
    _wait_until(lambda: _state(proc.pid) in ("Z", "X", ""), 10, "the child to die")
    clock = FakeClock()
    with _lock(lake_root, "run-next", wait_s=600, clock=clock) as lock:
        assert lock.generation == 2
        assert clock.slept == []  # no waiting on the dead lease's ttl
    proc.wait(10)
    with _lock(lake_root, "run-after-reaping", wait_s=0) as lock:  # reaped: gone
        assert lock.generation == 3


def test_a_paused_holder_finds_its_lease_taken_over(
        lake_root: str, holder_process: Callable[[str, float], subprocess.Popen[str]]):
    ttl_s = 1.5
    proc = holder_process("run-paused", ttl_s)
    assert _line(proc.stdout) == "held 1"
    proc.send_signal(signal.SIGSTOP)  # alive but silent: its heartbeat stops
    try:
        with pytest.raises(LakeBusy, match="run-paused"):
            _lock(lake_root, "run-next", wait_s=0).acquire()  # within its ttl: still live
        taker = _lock(lake_root, "run-taker", wait_s=15)
        taker.acquire()  # LakeBusy if the silent lease outlived its ttl by 15 s
        assert taker.generation == 2
    finally:
        proc.send_signal(signal.SIGCONT)
    try:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        answer = _line(proc.stdout)
        assert answer.startswith("busy:") and "taken over by lease 2" in answer, answer
        taker.check()  # the new holder's lease is the newest
        assert proc.wait(30) == 0
        # the old holder's late heartbeats and release do not free the new lease
        with pytest.raises(LakeBusy, match="run-taker"):
            _lock(lake_root, "run-third", wait_s=0).acquire()
    finally:
        taker.release()


def test_check_raises_once_a_newer_generation_exists(lake_root: str):
    stalled = _lock(lake_root, "run-stalled", ttl_s=60.0)
    stalled.acquire()
    try:
        stalled.check()
        # another host's run judged our lease dead and took generation 2
        _write_lease(lake_root, 2, run_id="run-elsewhere", host=OTHER_HOST, pid=1)
        with pytest.raises(LakeBusy, match=r"lease 1 .* taken over by lease 2"):
            stalled.check()
    finally:
        stalled.release()
    with pytest.raises(LakeBusy, match="run-elsewhere"):  # our release did not free it
        _lock(lake_root, "run-next", wait_s=0).acquire()


def test_stale_lease_of_another_host_is_taken_over_after_its_ttl(lake_root: str):
    ttl_s = 30.0
    _write_lease(lake_root, 1, run_id="run-far-away", host=OTHER_HOST, pid=os.getpid(),
                 ttl_s=ttl_s)  # our pid, but on another host: says nothing about liveness
    with pytest.raises(LakeBusy, match="run-far-away") as refused:
        _lock(lake_root, "run-impatient", wait_s=0, clock=FakeClock()).acquire()
    assert OTHER_HOST in str(refused.value)
    clock = FakeClock()
    with _lock(lake_root, "run-patient", wait_s=120, clock=clock) as lock:
        assert lock.generation == 2
    # taken once the lease's last write is ttl_s old (remote stamps round to 1 s)
    assert ttl_s <= clock.now <= ttl_s + 2 + POLL_S, clock.now


def test_released_lease_of_another_host_is_free_at_once(lake_root: str):
    _write_lease(lake_root, 1, run_id="run-far-away", host=OTHER_HOST, pid=1)
    with pytest.raises(LakeBusy):
        _lock(lake_root, "run-next", wait_s=0).acquire()
    fs = filesystem(lake_root)
    fs.pipe_file(join(fs_path(lake_root), LOCK_DIR, "lease-00000001.released"), b"")
    with _lock(lake_root, "run-next", wait_s=0) as lock:
        assert lock.generation == 2


def test_lease_of_a_reused_pid_on_this_host_is_dead(lake_root: str):
    # our own pid, alive, but started at another time: the holder is gone
    _write_lease(lake_root, 1, run_id="run-gone", host=socket.gethostname(), pid=os.getpid(),
                 process_start="1")
    with _lock(lake_root, "run-next", wait_s=0) as lock:
        assert lock.generation == 2


# -- keeping it -------------------------------------------------------------------------
def _refused_throughout(root: str, holder: str, hold_s: float) -> int:
    """Try to take the lease every 0.2 s for `hold_s`; each try must be refused."""
    tries = 0
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        with pytest.raises(LakeBusy, match=holder):
            _lock(root, "run-intruder", wait_s=0).acquire()
        tries += 1
        time.sleep(0.2)
    return tries


def test_heartbeat_keeps_a_live_lease_past_its_ttl(lake_root: str):
    ttl_s = 1.2
    with _lock(lake_root, "run-holder", ttl_s=ttl_s) as lock:
        assert _refused_throughout(lake_root, "run-holder", 3 * ttl_s) >= 5
        assert "lease-00000001.beat" in _lock_files(lake_root)
        lock.check()


def test_a_lock_taken_again_keeps_beating(lake_root: str):
    ttl_s = 1.2
    lock = _lock(lake_root, "run-holder", ttl_s=ttl_s)
    lock.acquire()
    lock.release()
    lock.acquire()  # the same object, a second time
    try:
        assert lock.generation == 2
        _refused_throughout(lake_root, "run-holder", 3 * ttl_s)
    finally:
        lock.release()


def test_waiter_takes_the_lease_when_the_holder_releases(lake_root: str):
    holder = _lock(lake_root, "run-holder")
    holder.acquire()
    released_at: list[float] = []

    def release_at_10s(now: float) -> None:
        if now >= 10 and not released_at:
            released_at.append(now)
            holder.release()

    clock = FakeClock(release_at_10s)
    with _lock(lake_root, "run-waiter", wait_s=600, clock=clock) as waiter:
        assert waiter.generation == 2
    assert released_at == [clock.now]  # taken at the first look after the release
    assert max(clock.slept) <= POLL_S  # polled, not slept through the whole wait_s


def test_waiter_gives_up_after_wait_s(lake_root: str):
    with _lock(lake_root, "run-holder"):
        clock = FakeClock()
        with pytest.raises(LakeBusy, match="run-holder"):
            _lock(lake_root, "run-waiter", wait_s=5.0, clock=clock).acquire()
    assert 5.0 <= clock.now < 5.0 + POLL_S
