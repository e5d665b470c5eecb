"""Shared fixtures: generated videos, a real S3 server (SeaweedFS), a real local Ray."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.media import build_media, copy_corpus
from tests.procs import REPO_ROOT, VENV_BIN, free_ports, stop_process_group, wait_for_port

S3_ACCESS_KEY = "vidlake-test"
S3_SECRET_KEY = "vidlake-test-secret"


# -- tiers -----------------------------------------------------------------------
# fixture -> the marker of the service it starts
SERVICES = {"s3_server": "s3", "s3_bucket": "s3", "ray_session": "ray"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the S3 server is `s3`, one that uses the session's Ray is
    `ray`, and both are `slow`, so that `make test-fast` (-m "not slow") runs
    without either (`-m "not s3"` skips only the S3 server)."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker in sorted({SERVICES[f] for f in used & SERVICES.keys()}):
            item.add_marker(getattr(pytest.mark, marker))
            item.add_marker(pytest.mark.slow)


# -- videos --------------------------------------------------------------------
@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with every good and bad test video (see tests/media.py), made once."""
    folder = tmp_path_factory.mktemp("media")
    build_media(folder)
    return folder


@pytest.fixture
def corpus(media: Path, tmp_path: Path) -> Callable[..., Path]:
    """Factory: `corpus("a.mp4", "b.mkv", name="videos")` -> a fresh folder holding
    copies of those media files (each test gets its own video identities)."""

    def make(*names: str, name: str = "corpus") -> Path:
        return copy_corpus(media, tmp_path / name, names)

    return make


# -- object storage --------------------------------------------------------------
@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 gateway on loopback."""

    endpoint: str
    process: subprocess.Popen

    def filesystem(self) -> Any:
        """A fresh s3fs client for this server (test-side uploads and checks)."""
        import s3fs

        return s3fs.S3FileSystem(key=S3_ACCESS_KEY, secret=S3_SECRET_KEY, skip_instance_cache=True,
                                 client_kwargs={"endpoint_url": self.endpoint,
                                                "region_name": "us-east-1"})


def _weed_command(data_dir: Path) -> tuple[list[str], int]:
    """`weed server` with master, volume, filer and S3 on free loopback ports.

    This weed version takes explicit gRPC ports (-<svc>.port.grpc), so all
    eight ports are picked free instead of relying on port + 10000.
    """
    s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = free_ports(8)
    return [
        str(VENV_BIN / "weed"), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-dir={data_dir}",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=0",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        "-volume.preStopSeconds=0",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ], s3


def _wait_until_writable(server: S3Server, deadline_s: float) -> None:
    """Create and write a bucket until it works (volumes are allocated after start)."""
    deadline = time.monotonic() + deadline_s
    fs = server.filesystem()
    while True:
        try:
            fs.makedirs("readiness-check", exist_ok=True)  # exists after a restart
            fs.pipe_file("readiness-check/ok", b"ok")
            return
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS (`weed server -s3`) on free loopback ports for the whole session.

    Sets AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    AWS_REGION for the session (restored afterwards), so s3fs, the pipeline
    and CLI subprocesses all talk to it. Stopped by pid at the end.
    """
    data_dir = tmp_path_factory.mktemp("seaweedfs")
    command, s3_port = _weed_command(data_dir)
    log = (data_dir / "weed.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3_port}", process)
    try:
        wait_for_port(s3_port, process, 60, "weed server")
        _wait_until_writable(server, 60)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)
            env.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            env.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            env.setenv("AWS_REGION", "us-east-1")
            yield server
    finally:
        stop_process_group(process, grace_s=3)
        log.close()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket for one test; its name (no s3:// prefix)."""
    name = f"vl-{uuid.uuid4().hex[:16]}"
    s3_server.filesystem().mkdir(name)
    return name


# -- Ray -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ray_session(s3_server: S3Server) -> Iterator[None]:
    """One in-process local Ray for the session, started as `vidlake label` does
    (`start_ray(None)`), and shut down at the end.

    It starts after the S3 server: Ray's workers take the environment (the
    AWS_* variables naming the server) of the process that starts Ray.

    RAY_TMPDIR points at a private folder so this never joins a cluster that a
    `ray start` elsewhere on the host recorded in /tmp/ray; the repository root
    goes on PYTHONPATH so workers import `tests.*` (fault-injection decoders).
    """
    import ray

    from pipeline.runner.ray_session import start_ray

    temp = tempfile.mkdtemp(prefix="vlray-", dir="/tmp")  # short: Ray's socket paths < 108 chars
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_TMPDIR", temp)
        # Ray's processes export metrics every second instead of every ten: a
        # test reading the metrics endpoint waits less (tests/observe)
        env.setenv("RAY_metrics_report_interval_ms", "1000")
        env.delenv("RAY_ADDRESS", raising=False)
        paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
        if ray.is_initialized():  # a test's `vidlake label` started one without the AWS_* env
            ray.shutdown()
        start_ray(None)
        try:
            yield
        finally:
            ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
