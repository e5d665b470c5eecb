"""`ray job submit -- python -m jobs.label|relabel ...` against separate `ray start`
clusters (their own temp dir, ports and auth token; never the in-process Ray): one
head node, and a head plus a worker node with one CPU each, so work must spread."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.lakes import assert_corpus_accounted, rows
from tests.procs import REPO_ROOT, VENV_BIN, free_ports, stop_process_group, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # its own `ray start` clusters

# Not uploaded with the job: environments, caches, generated data (see .gitignore).
UPLOAD_EXCLUDES = [".venv", ".git", ".cache", "demo-data", "bench-data", "*.egg-info",
                   "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"]
# Per node: dashboard agent (http, grpc), runtime env agent, metrics, node and object manager.
NODE_PORTS = 6


@dataclass(frozen=True)
class RayHead:
    """A running cluster's head: its jobs API address and the environment to reach it."""

    address: str
    env: dict[str, str]


def _dashboard_missing() -> str | None:
    """Why Ray's dashboard (which serves the jobs API) cannot start, if it cannot."""
    try:
        importlib.import_module("ray.dashboard.optional_deps")
    except ImportError as exc:
        return str(exc)
    return None


def _skip_without_dashboard() -> None:
    missing = _dashboard_missing()
    if missing:
        pytest.skip("ray job submission needs Ray's dashboard, whose dependencies "
                    f"(ray[default]) are not installed: {missing}")


def _head_env(temp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_TMPDIR=temp,  # its own ray_current_cluster: nothing else joins it by accident
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),  # not ~/.ray's token
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # SIGTERM stops it at once
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # job's `python` is this venv's
    )
    return env


def _node_command(role: list[str], ports: list[int], temp: str, num_cpus: int) -> list[str]:
    """`ray start --block` for one node on loopback: `role` (head or join flags), then
    its own `NODE_PORTS` free ports, so two nodes on one host never collide."""
    agent, agent_grpc, runtime_env, metrics, node, objects = ports
    return [
        str(VENV_BIN / "ray"), "start", *role, "--block", "--node-ip-address=127.0.0.1",
        f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={runtime_env}", f"--metrics-export-port={metrics}",
        f"--node-manager-port={node}", f"--object-manager-port={objects}",
        f"--num-cpus={num_cpus}", "--disable-usage-stats", f"--temp-dir={temp}",
    ]


def _alive_nodes(head: RayHead) -> int:
    """How many nodes the cluster reports ALIVE (0 while the state API cannot answer)."""
    done = subprocess.run(
        [str(VENV_BIN / "ray"), "list", "nodes", "--address", head.address,
         "--filter", "state=ALIVE", "--format", "json"],
        env=head.env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return 0
    try:
        return len(json.loads(done.stdout))
    except json.JSONDecodeError:
        return 0


def _wait_for_nodes(head: RayHead, count: int, procs: list[subprocess.Popen],
                    deadline_s: float) -> None:
    """Poll until `count` nodes are alive; fail if a node process exits or time runs out."""
    deadline = time.monotonic() + deadline_s
    while (alive := _alive_nodes(head)) < count:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"ray node {proc.args!r} exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{alive} of {count} Ray nodes alive after {deadline_s:.0f}s")
        time.sleep(0.5)


def _listeners(ports: set[int]) -> dict[int, set[int]]:
    """Pids listening on each of `ports`, on any local address."""
    found: dict[int, set[int]] = {port: set() for port in ports}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in found:
            found[conn.laddr.port].add(conn.pid or -1)
    return found


def _wait_until_ports_are_ours(ports: set[int], procs: list[subprocess.Popen],
                               deadline_s: float) -> None:
    """Poll until every port in `ports` is listened on, then check every listener is one
    of our nodes' processes: free ports are picked before Ray binds them, so another
    process can take one in between, and our raylet would then talk to it."""
    deadline = time.monotonic() + deadline_s
    while not all((listeners := _listeners(ports)).values()):
        if time.monotonic() > deadline:
            idle = sorted(p for p, pids in listeners.items() if not pids)
            raise TimeoutError(f"ports {idle} not listened on after {deadline_s:.0f}s")
        time.sleep(0.2)
    ours = {proc.pid for proc in procs}
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            ours |= {child.pid for child in psutil.Process(proc.pid).children(recursive=True)}
    taken = {port: pids - ours for port, pids in listeners.items() if pids - ours}
    if taken:
        raise RuntimeError(f"ports picked for the test cluster were taken by other processes "
                           f"before Ray bound them (port: pids): {taken}")


def _ports_other_than(assigned: set[int], count: int) -> list[int]:
    """`count` free ports, none of them in `assigned` (ports given to a node that
    may not have bound them all yet)."""
    while True:
        ports = free_ports(count)
        if not assigned.intersection(ports):
            return ports


@contextlib.contextmanager
def _ray_cluster(logs: Path, cpus: list[int]) -> Iterator[RayHead]:
    """A head node with `cpus[0]` CPUs and a dashboard, plus one joined worker node per
    further entry; every node's process group is stopped (workers first) at the end."""
    temp = tempfile.mkdtemp(prefix="vlhead-", dir="/tmp")  # short: socket paths < 108 chars
    gcs, dashboard, *head_ports = free_ports(2 + NODE_PORTS)  # one call: all distinct
    env = _head_env(temp)
    head = RayHead(f"http://127.0.0.1:{dashboard}", env)
    roles = [["--head", f"--port={gcs}", "--include-dashboard=true",
              "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}"]]
    roles += [[f"--address=127.0.0.1:{gcs}"]] * (len(cpus) - 1)
    procs: list[subprocess.Popen] = []
    # The ports every node's raylet and job server use: GCS, dashboard, and per node
    # the dashboard agent and runtime-env agent (jobs' environments are set up there).
    checked = {gcs, dashboard}
    assigned = {gcs, dashboard}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, temp, ignore_errors=True)
        for i, (role, num_cpus) in enumerate(zip(roles, cpus, strict=True)):
            # A worker's ports are picked once the head holds its own: distinct, and
            # free for the shortest time before Ray binds them.
            ports = head_ports if i == 0 else _ports_other_than(assigned, NODE_PORTS)
            assigned.update(ports)
            checked.update(ports[:3])
            log = stack.enter_context((logs / f"ray-node{i}.log").open("wb"))
            procs.append(subprocess.Popen(_node_command(role, ports, temp, num_cpus), env=env,
                                          cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True))
            stack.callback(stop_process_group, procs[-1], grace_s=30)  # LIFO: workers first
            if i == 0:  # workers join the GCS, which is up once the dashboard answers
                wait_for_port(dashboard, procs[0], 120, "ray start --head")
        if len(procs) > 1:
            _wait_for_nodes(head, len(procs), procs, 120)
        _wait_until_ports_are_ours(checked, procs, 60)
        yield head


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[RayHead]:
    """`ray start --head --block` with 2 CPUs and a dashboard on free loopback ports.
    Skipped when the dashboard cannot run here."""
    _skip_without_dashboard()
    with _ray_cluster(tmp_path, [2]) as head:
        yield head


@pytest.fixture
def ray_two_nodes(tmp_path: Path) -> Iterator[RayHead]:
    """A head and a worker node (`ray start --address=...`), one CPU each, both alive
    before the test starts. Skipped when the dashboard cannot run here."""
    _skip_without_dashboard()
    with _ray_cluster(tmp_path, [1, 1]) as head:
        yield head


def _submit(head: RayHead, *entrypoint: str) -> tuple[int, str]:
    """`ray job submit` of the working tree; (exit code, stdout + stderr)."""
    done = subprocess.run(
        [str(VENV_BIN / "ray"), "job", "submit", "--address", head.address,
         "--working-dir", str(REPO_ROOT),
         "--runtime-env-json", json.dumps({"excludes": UPLOAD_EXCLUDES}), "--", *entrypoint],
        env=head.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=280,
        check=False)
    return done.returncode, done.stdout + done.stderr


def test_label_job_runs_on_a_submitted_cluster(ray_head: RayHead, corpus, tmp_path: Path):
    names = ("h264.mp4", "lossless.mkv", "empty.mp4")
    source, lake = corpus(*names), tmp_path / "lake"
    code, output = _submit(ray_head, "python", "-m", "jobs.label", str(source),
                           "--output", str(lake), "--sample", "uniform:2", "--size", "64")
    assert code == 0, output[-4000:]
    assert "succeeded" in output and "3 videos (2 ok, 1 failed)" in output
    assert_corpus_accounted(str(lake), names, "uniform:2")
    (run,) = rows(str(lake), "select status from runs")
    assert run["status"] == "completed"


def test_relabel_job_on_two_nodes_then_again_with_nothing_to_do(ray_two_nodes: RayHead,
                                                                 corpus, tmp_path: Path):
    names = ("h264.mp4", "lossless.mkv", "empty.mp4")
    source, lake = corpus(*names), tmp_path / "lake"
    # --max-attempts 1: empty.mp4 fails once and is quarantined, so the rerun has nothing
    # to do (with the default 3, each nightly run would retry it until it failed 3 times).
    relabel = ("python", "-m", "jobs.relabel", str(source), "--output", str(lake),
               "--sample", "uniform:2", "--size", "64", "--max-attempts", "1")

    code, output = _submit(ray_two_nodes, *relabel)
    assert code == 0, output[-4000:]
    assert "succeeded" in output and "3 videos (2 ok, 1 failed)" in output
    assert_corpus_accounted(str(lake), names, "uniform:2")

    code, output = _submit(ray_two_nodes, *relabel)  # the nightly rerun: nothing new
    assert code == 0, output[-4000:]
    assert "succeeded" in output and " 0 videos (0 ok, 0 failed)" in output, output[-4000:]
    assert_corpus_accounted(str(lake), names, "uniform:2")  # still exactly once
    runs = rows(str(lake), "select status from runs")
    assert [r["status"] for r in runs] == ["completed", "completed"]
