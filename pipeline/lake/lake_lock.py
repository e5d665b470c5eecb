"""LakeLock: one writer per lake at a time, on a local folder or S3.

Concurrent runs on one lake would plan the same units and write their rows
twice, so every writing run (label, relabel, compact) holds a lease first.
A lease is `LAKE/_lock/lease-<generation>.json`, created only if absent
(O_EXCL on disk; `If-None-Match: *` on S3, which AWS S3 and SeaweedFS honour),
so of two runs that race for the same generation exactly one wins. The
holder rewrites `lease-<generation>.beat` every `ttl_s / 4` seconds and
writes `lease-<generation>.released` when it is done.

A lease is live while it is not released and its heartbeat is younger than
`ttl_s`; a lease taken on this host by a process that no longer exists is
dead at once (a SIGKILLed driver does not make the next run wait). Taking
over a dead lease creates the next generation, never deletes: a paused
holder that wakes finds a newer lease and stops before its next commit
(`check()`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pipeline.errors import LakeBusy, StorageError
from pipeline.storage import filesystem, fs_path, is_remote, join
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors
from pipeline.storage_retry import RETRY_BUDGET_S, with_retries

log = logging.getLogger(__name__)

LOCK_DIR = "_lock"
DEFAULT_TTL_S = 60.0
POLL_S = 1.0  # how often a waiting run looks at the lease again
# S3's Last-Modified has whole seconds: a file written 0.9 s ago may carry a
# stamp 1.9 s old. Ages on object storage are read this much younger, so a
# live lease is never judged dead early (a dead one is taken over up to 1 s late).
_REMOTE_STAMP_RESOLUTION_S = 1.0


def _proc_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (state first); [] when gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _lease_errors() -> tuple[type[BaseException], ...]:
    """What a heartbeat or a release may meet: storage errors, retried or not."""
    return (StorageError, *storage_errors())


def _process_start(pid: int) -> str:
    """Start time of `pid` in clock ticks since boot (tells a reused pid apart)."""
    fields = _proc_stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _alive_here(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False  # exited (SIGKILLed), not yet reaped by its parent
    return not started or not fields or len(fields) <= 19 or fields[19] == started


@dataclass(frozen=True)
class Lease:
    """What a lease file says about its holder."""

    generation: int
    run_id: str
    host: str
    pid: int
    process_start: str
    ttl_s: float
    purpose: str


class Clock:
    """The time a lock reads and waits on (tests give one that never sleeps)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        """Wall-clock seconds, compared with the store's stamps of lease files."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class LakeLock:
    """The lease of one run on one lake; use as a context manager."""

    def __init__(self, root: str, storage: StorageOptions | None = None, *, run_id: str,
                 purpose: str, ttl_s: float = DEFAULT_TTL_S, wait_s: float = 0.0,
                 retry_s: float = RETRY_BUDGET_S, clock: Clock | None = None) -> None:
        """`retry_s`: how long transient storage errors are retried (see
        storage_retry): a store that restarts mid-run does not break the lease.
        `clock`: what waiting for a lease and judging its age read."""
        self.clock = clock or Clock()
        self.retry_s = retry_s
        self.root = root.rstrip("/")
        self._fs = filesystem(self.root, storage)
        self._remote = is_remote(self.root)
        self.run_id = run_id
        self.purpose = purpose
        self.ttl_s = ttl_s
        self.wait_s = wait_s
        self.generation = 0
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _path(self, name: str) -> str:
        return join(fs_path(self.root), LOCK_DIR, name)

    # -- reading ---------------------------------------------------------------
    def _retrying(self, call: Any, what: str) -> Any:
        return with_retries(call, f"{what} the lock of {self.root}", self.retry_s)

    def _names(self) -> set[str]:
        folder = join(fs_path(self.root), LOCK_DIR)
        try:
            # refresh: s3fs caches listings, and other runs write here
            listed = self._retrying(lambda: self._fs.ls(folder, detail=False, refresh=True),
                                    "list")
        except FileNotFoundError:
            return set()
        return {os.path.basename(p.rstrip("/")) for p in listed}

    @staticmethod
    def _generations(names: set[str]) -> list[int]:
        return sorted(int(n[6:-5]) for n in names
                      if n.startswith("lease-") and n.endswith(".json") and n[6:-5].isdigit())

    def _read(self, generation: int) -> Lease:
        path = self._path(f"lease-{generation:08d}.json")
        data = json.loads(self._retrying(lambda: self._fs.cat_file(path), "read"))
        return Lease(generation=generation, **data)

    def _age_s(self, name: str) -> float:
        """Seconds since `name` was last written (its stamp is the store's clock
        for S3, compared with ours), rounded down to the stamp's resolution."""
        info = self._retrying(lambda: self._fs.info(self._path(name)), "read")
        mtime = info.get("LastModified") or info.get("mtime")
        stamp = mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime or 0)
        resolution = _REMOTE_STAMP_RESOLUTION_S if self._remote else 0.0
        return self.clock.time() - stamp - resolution

    def _look(self) -> tuple[int, Lease | None]:
        """The newest generation (0 for none) and its lease if it is live."""
        names = self._names()
        generations = self._generations(names)
        if not generations:
            return 0, None
        lease = self._read(generations[-1])
        base = f"lease-{lease.generation:08d}"
        if f"{base}.released" in names:
            return lease.generation, None
        if lease.host == socket.gethostname() and not _alive_here(lease.pid,
                                                                  lease.process_start):
            return lease.generation, None
        beat = f"{base}.beat" if f"{base}.beat" in names else f"{base}.json"
        return lease.generation, lease if self._age_s(beat) < lease.ttl_s else None

    def holder(self) -> Lease | None:
        """The live lease, or None when the lake is free."""
        return self._look()[1]

    # -- taking and keeping ------------------------------------------------------
    def _create(self, generation: int) -> bool:
        """Create lease `generation` if nobody has; False when someone has."""
        body = json.dumps({"run_id": self.run_id, "host": socket.gethostname(),
                           "pid": os.getpid(), "process_start": _process_start(os.getpid()),
                           "ttl_s": self.ttl_s, "purpose": self.purpose}).encode()
        path = self._path(f"lease-{generation:08d}.json")
        if self._remote:
            try:
                self._retrying(lambda: self._fs.pipe_file(path, body, mode="create"), "take")
            except FileExistsError:  # s3fs's word for 412 on If-None-Match (AWS)
                return self._ours(generation)
            except OSError as exc:
                text = str(exc).lower()
                # 412 Precondition Failed (SeaweedFS, MinIO): another run won the
                # race; 409 ConditionalRequestConflict (AWS): another run's create
                # of this key is in flight. Either way: look again.
                if any(word in text for word in ("pre-condition", "precondition",
                                                 "conditional", "conflicting")):
                    return self._ours(generation)
                raise
            return True
        # Written aside, then linked into place: link() fails if the lease exists,
        # like O_EXCL, and a reader never sees a lease file without its content.
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        scratch = os.path.join(folder, f"tmp-{uuid.uuid4().hex}")
        with open(scratch, "wb") as handle:
            handle.write(body)
        try:
            os.link(scratch, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(scratch)
        return True

    def _ours(self, generation: int) -> bool:
        """After a refused create: True when the lease is ours all the same (a
        retried PUT whose first try got through and whose answer was lost)."""
        try:
            return self._read(generation).run_id == self.run_id
        except FileNotFoundError:  # a 409 for a create that never landed
            return False

    def acquire(self) -> None:
        """Take the lease, waiting up to `wait_s` for a live one to end; LakeBusy
        when it does not, StorageError when the lake cannot be reached."""
        deadline = self.clock.monotonic() + self.wait_s
        try:
            while True:
                newest, current = self._look()
                if current is None:
                    # the generation after the one just judged free or dead: if
                    # another run took it (or a newer one) meanwhile, this fails
                    if self._create(newest + 1):
                        self.generation = newest + 1
                        break
                    continue  # lost the race: look again
                if self.clock.monotonic() >= deadline:
                    raise LakeBusy(
                        f"lake {self.root!r} is locked by {current.purpose} run "
                        f"{current.run_id} (host {current.host}, pid {current.pid}); "
                        f"wait for it to finish, or pass --lock-wait SECONDS to wait. A "
                        f"lease whose holder died expires {current.ttl_s:.0f}s after its "
                        f"last heartbeat")
                self.clock.sleep(min(POLL_S, max(0.1, deadline - self.clock.monotonic())))
        except storage_errors() as exc:
            raise StorageError(f"cannot take the lock of lake {self.root!r}: {exc}") from None
        self._prune()
        # a fresh event per lease: a lock released once (its event set) may be taken again
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                      args=(self.generation, self._stop),
                                      name="vidlake-lake-lease")
        self._beat.start()
        log.info("holding lease %d of lake %s", self.generation, self.root)

    def _prune(self) -> None:
        """Delete the files of leases two or more generations old (bounded folder)."""
        for name in self._names():
            digits = name[6:14]
            if name.startswith("lease-") and digits.isdigit() \
                    and int(digits) < self.generation - 1:
                try:
                    self._fs.rm_file(self._path(name))
                except storage_errors():  # tidying only: the next run tries again
                    return

    def _heartbeat(self, generation: int, stop: threading.Event) -> None:
        path = self._path(f"lease-{generation:08d}.beat")
        while not stop.wait(self.ttl_s / 4):
            try:
                self._write(path, str(time.time()).encode())
            except _lease_errors() as exc:  # the next beat tries again
                log.warning("lease heartbeat failed: %s", exc)

    def _write(self, path: str, data: bytes) -> None:
        if self._remote:
            self._retrying(lambda: self._fs.pipe_file(path, data), "write")
        else:
            with open(path, "wb") as handle:
                handle.write(data)

    def check(self) -> None:
        """Raise LakeBusy if a newer lease exists (ours expired and was taken over)."""
        newer = [g for g in self._generations(self._names()) if g > self.generation]
        if newer:
            raise LakeBusy(f"lease {self.generation} of lake {self.root!r} was taken over by "
                           f"lease {newer[0]} while this run was stalled; stopping before "
                           "the next commit (a rerun continues from what is committed)")

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None
        if self.generation:
            try:
                self._write(self._path(f"lease-{self.generation:08d}.released"), b"")
            except _lease_errors() as exc:
                log.warning("could not release lease %d of %s (it expires in %.0fs): %s",
                            self.generation, self.root, self.ttl_s, exc)
            self.generation = 0

    def __enter__(self) -> LakeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
