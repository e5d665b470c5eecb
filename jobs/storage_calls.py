"""Run a vidlake command, counting the file-system calls it makes on local paths
and measuring its peak memory.

Usage (every child of the scale benchmark):
    python -m jobs.storage_calls COUNTS_JSON ROOT[:ROOT...] MODULE [ARGS...]

Runs `python -m MODULE ARGS` in this process, with the Python-level file
functions wrapped; every call whose path lies under one of the ROOTs (a
lake, a source folder; none: nothing is counted) is counted by kind, and the
counts are written to COUNTS_JSON as the process ends, with `peak_rss_kib`:
the process's own resident-memory high-water mark (VmHWM in
/proc/self/status). Not ru_maxrss: Linux carries the parent's high-water mark
into a forked child's ru_maxrss across exec, so a child of a big benchmark
process would report the benchmark's memory. The exit status is the module's.

What is counted, per call on a path under a ROOT:

- `open`: builtins.open / io.open and os.open (a file opened to read or write);
- `stat`: os.stat and os.lstat (os.path.exists, isdir, isfile go through them);
- `list`: os.scandir and os.listdir (one directory read); `entries` counts
  the names they return (fsspec's detailed listing then stats each entry
  through the DirEntry, a call this module cannot see: count it with `entries`);
- `write`: os.replace, os.rename, os.remove, os.unlink, os.mkdir, os.rmdir.

What is not counted: I/O done by native code that does not go through
Python's functions: DuckDB reading Parquet files (`vidlake query`), pyarrow's
own local filesystem (pq.read_table given fsspec's local filesystem uses it),
and reads and writes on files already open (bytes, not calls). On S3 the
benchmark counts requests at the server instead.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import runpy
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

KINDS = ("open", "stat", "list", "entries", "write")


class CallCounter:
    """Counts calls on paths under `roots`, by kind (thread-safe)."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = tuple(os.path.abspath(r).rstrip("/") for r in roots)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._originals: list[tuple[Any, str, Any]] = []

    def under(self, path: Any) -> bool:
        """True when `path` (str, bytes or path-like; not a descriptor) is under a root."""
        if isinstance(path, int):
            return False
        try:
            text = os.fsdecode(os.fspath(path))
        except TypeError:
            return False
        if not text.startswith("/"):
            text = os.path.join(os.getcwd(), text)
        return any(text == r or text.startswith(r + "/") for r in self.roots)

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.counts[kind] += n

    def _wrap(self, owner: Any, name: str, kind: str) -> None:
        original = getattr(owner, name)

        def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
            if self.under(path):
                self.add(kind)
            return original(path, *args, **kwargs)

        self._originals.append((owner, name, original))
        setattr(owner, name, counted)

    def install(self) -> None:
        """Wrap the file functions (`uninstall` puts them back)."""
        for owner, name in ((builtins, "open"), (io, "open"), (os, "open")):
            self._wrap(owner, name, "open")
        for name in ("stat", "lstat"):
            self._wrap(os, name, "stat")
        self._wrap(os, "listdir", "list")
        for name in ("replace", "rename", "remove", "unlink", "mkdir", "rmdir"):
            self._wrap(os, name, "write")
        scandir = os.scandir
        self._originals.append((os, "scandir", scandir))
        os.scandir = self._scandir(scandir)

    def _scandir(self, scandir: Callable[..., Any]) -> Callable[..., Any]:
        counter = self

        class Counted:
            """os.scandir's iterator, counting the entries it yields."""

            def __init__(self, inner: Any, counting: bool) -> None:
                self.inner, self.counting = inner, counting

            def __iter__(self) -> Iterator[os.DirEntry[Any]]:
                return self

            def __next__(self) -> os.DirEntry[Any]:
                entry = next(self.inner)
                if self.counting:
                    counter.add("entries")
                return entry

            def __enter__(self) -> Counted:
                return self

            def __exit__(self, *exc: object) -> None:
                self.inner.close()

            def close(self) -> None:
                self.inner.close()

        def counted(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            counting = self.under(path)
            if counting:
                self.add("list")
            return Counted(scandir(path, *args, **kwargs), counting)

        return counted

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()

    def totals(self) -> dict[str, int]:
        """Counts by kind, and `requests`: every kind but `entries` summed."""
        with self._lock:
            counts = {kind: self.counts.get(kind, 0) for kind in KINDS}
        counts["requests"] = sum(v for k, v in counts.items() if k != "entries")
        return counts


def peak_rss_kib() -> int:
    """This process's peak resident memory, KiB: VmHWM, which belongs to the
    address space made at exec (nothing inherited); ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: python -m jobs.storage_calls COUNTS_JSON ROOT[:ROOT...] MODULE [ARGS...]",
              file=sys.stderr)
        return 2
    out, roots, module, *args = argv
    counter = CallCounter([r for r in roots.split(":") if r])
    counter.install()
    sys.argv = [module, *args]
    code: int | str | None = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    finally:
        counter.uninstall()
        with open(out, "w") as handle:
            json.dump({**counter.totals(), "peak_rss_kib": peak_rss_kib()}, handle)
    if isinstance(code, str):
        print(code, file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
