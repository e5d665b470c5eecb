"""`ray job submit -- python -m jobs.label ...` against a separate `ray start --head`
cluster (its own temp dir, ports and auth token; never the in-process Ray)."""

from __future__ import annotations

import importlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lakes import assert_corpus_accounted, rows
from tests.procs import REPO_ROOT, VENV_BIN, free_ports, stop_process_group, wait_for_port

pytestmark = pytest.mark.slow

# Not uploaded with the job: environments, caches, generated data (see .gitignore).
UPLOAD_EXCLUDES = [".venv", ".git", ".cache", "demo-data", "bench-data", "*.egg-info",
                   "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"]


@dataclass(frozen=True)
class RayHead:
    """A running head node: its jobs API address and the environment to reach it."""

    address: str
    env: dict[str, str]


def _dashboard_missing() -> str | None:
    """Why Ray's dashboard (which serves the jobs API) cannot start, if it cannot."""
    try:
        importlib.import_module("ray.dashboard.optional_deps")
    except ImportError as exc:
        return str(exc)
    return None


def _head_env(temp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_TMPDIR=temp,  # its own ray_current_cluster: nothing else joins it by accident
        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),  # not ~/.ray's token
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # SIGTERM stops it at once
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",  # job's `python` is this venv's
    )
    return env


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[RayHead]:
    """`ray start --head --block` with a dashboard on free loopback ports; stopped by
    its process group at the end. Skipped when the dashboard cannot run here."""
    missing = _dashboard_missing()
    if missing:
        pytest.skip("ray job submission needs Ray's dashboard, whose dependencies "
                    f"(ray[default]) are not installed: {missing}")
    temp = tempfile.mkdtemp(prefix="vlhead-", dir="/tmp")  # short: socket paths < 108 chars
    gcs, dashboard, agent, agent_grpc, runtime_env, metrics, node, objects = free_ports(8)
    command = [
        str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
        f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}", f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={runtime_env}",
        f"--metrics-export-port={metrics}", f"--node-manager-port={node}",
        f"--object-manager-port={objects}", "--num-cpus=2", "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    env = _head_env(temp)
    log = (tmp_path / "ray-head.log").open("wb")
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for_port(dashboard, process, 120, "ray start --head")
        yield RayHead(f"http://127.0.0.1:{dashboard}", env)
    finally:
        stop_process_group(process, grace_s=30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_label_job_runs_on_a_submitted_cluster(ray_head: RayHead, corpus, tmp_path: Path):
    names = ("h264.mp4", "lossless.mkv", "empty.mp4")
    source, lake = corpus(*names), tmp_path / "lake"
    submit = subprocess.run(
        [str(VENV_BIN / "ray"), "job", "submit", "--address", ray_head.address,
         "--working-dir", str(REPO_ROOT),
         "--runtime-env-json", json.dumps({"excludes": UPLOAD_EXCLUDES}), "--",
         "python", "-m", "jobs.label", str(source), "--output", str(lake),
         "--sample", "uniform:2", "--size", "64"],
        env=ray_head.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=280,
        check=False)
    output = submit.stdout + submit.stderr
    assert submit.returncode == 0, output[-4000:]
    assert "succeeded" in output and "3 videos (2 ok, 1 failed)" in output
    assert_corpus_accounted(str(lake), names, "uniform:2")
    (run,) = rows(str(lake), "select status from runs")
    assert run["status"] == "completed"
