"""Invariant 6: a secret given with `--storage-option` never reaches what Ray
records or shows, vidlake's logs, or the lake.

Fast tests check the redaction functions. The slow ones start one real cluster
(`ray start --head`), run `vidlake label s3://... --address ... --storage-option
secret=SENTINEL` against the SeaweedFS server (which accepts any key, so the
secret really is used by every task and actor), and then look for the sentinel
in Ray's job, actor, task and worker tables, Ray's session folder, the lake and
vidlake's own output.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobs.logging_setup import configure
from pipeline.config import FrameSize
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.secrets import MASK, SecretFilter, redact_argv, redact_text
from pipeline.storage_options import S3_OPTIONS, StorageOptions
from pipeline.storage_problems import storage_problem
from tests.cli.test_credentials import lake_text
from tests.conftest import S3_ACCESS_KEY, S3Server
from tests.jobs.test_ray_job_submit import RayHead, _ray_cluster, _skip_without_dashboard
from tests.procs import REPO_ROOT, VENV_BIN, run_cli

SENTINEL = f"vlsentinel-{secrets.token_hex(12)}"
KEY_ID = "AKIAUNITTEST0042"  # an access key ID for the fast tests


class ListHandler(logging.Handler):
    """Keeps each formatted record."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


# -- the redaction functions (fast) -----------------------------------------------
def test_redact_argv_masks_secret_values_and_keeps_the_rest():
    argv = ["/venv/bin/python", "/venv/bin/vidlake", "label", "s3://b/videos", "-o", "lake",
            "--storage-option", "key=AKIAEXAMPLE1", "--storage-option", f"secret={SENTINEL}",
            f"--storage-option=token={SENTINEL}t", "--storage-opt", f"secret={SENTINEL}a",
            "--storage-option", "endpoint_url=http://user:pa55word@store:9000",
            "--address", "ray://admin:hunter22@head:10001", "--password", "p4ssw0rd",
            f"--secret={SENTINEL}b", "--storage-option", "region_name=us-east-1"]
    assert redact_argv(argv) == [
        "/venv/bin/python", "/venv/bin/vidlake", "label", "s3://b/videos", "-o", "lake",
        "--storage-option", f"key={MASK}", "--storage-option", f"secret={MASK}",
        f"--storage-option=token={MASK}", "--storage-opt", f"secret={MASK}",
        "--storage-option", f"endpoint_url=http://user:{MASK}@store:9000",
        "--address", f"ray://admin:{MASK}@head:10001", "--password", MASK,
        f"--secret={MASK}", "--storage-option", "region_name=us-east-1"]


def test_known_secrets_are_masked_in_text(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-8842")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token-1177")
    StorageOptions.parse([f"key={KEY_ID}", f"secret={SENTINEL}"])  # registers both
    text = f"a {SENTINEL} b env-secret-8842 c env-token-1177 d http://u:pw@h/ e"
    assert redact_text(text) == f"a {MASK} b {MASK} c {MASK} d http://u:{MASK}@h/ e"


def test_storage_options_never_show_their_secrets():
    options = StorageOptions.parse(["endpoint_url=http://store:9000", f"key={KEY_ID}",
                                    f"secret={SENTINEL}"])
    settings = DecodeSettings(size=FrameSize(64, 64), storage=options)
    shown = [repr(options), str(options), repr(settings), str({"storage": options}),
             json.dumps(dataclasses.asdict(settings), default=str)]
    assert all(SENTINEL not in text and KEY_ID not in text for text in shown), shown
    assert "endpoint_url='http://store:9000'" in repr(options)
    again = pickle.loads(pickle.dumps(settings))  # workers still get the real values
    assert again == settings and again.storage.as_dict()["secret"] == SENTINEL
    assert options.redacted() == {"endpoint_url": "http://store:9000", "key": MASK,
                                  "secret": MASK}


def test_secret_filter_masks_messages_and_tracebacks(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-8842")
    StorageOptions.parse([f"key={KEY_ID}", f"secret={SENTINEL}"])
    handler = ListHandler()
    handler.addFilter(SecretFilter())
    log = logging.getLogger("vidlake-test-secrets")
    log.addHandler(handler)
    try:
        log.warning("options %s, env %s", {"secret": SENTINEL}, "env-secret-8842")
        try:
            raise ValueError(f"bad {SENTINEL}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    records = handler.lines
    assert len(records) == 2 and "ValueError: bad ***" in records[1], records
    assert not any(SENTINEL in r or "env-secret-8842" in r for r in records), records


def test_configure_filters_the_root_handlers():
    configure()
    handlers = logging.getLogger().handlers
    assert handlers and all(any(isinstance(f, SecretFilter) for f in h.filters)
                            for h in handlers)


def test_storage_problems_name_the_endpoint_without_its_password():
    from botocore.exceptions import EndpointConnectionError

    StorageOptions.parse([f"key={KEY_ID}", f"secret={SENTINEL}"])
    error = EndpointConnectionError(endpoint_url="http://user:pw@store:9000/bucket/key")
    message = str(storage_problem(error, "cannot list SOURCE 's3://bucket/key'"))
    assert message.startswith("the S3 endpoint http://store:9000 does not answer"), message
    assert "pw" not in message
    leaked = str(storage_problem(OSError(f"server said {SENTINEL}"), "cannot read x"))
    assert leaked == f"cannot read x: server said {MASK}"


def test_docs_list_every_storage_option():
    doc = (REPO_ROOT / "docs" / "secrets.md").read_text()
    assert [k for k in S3_OPTIONS if f"| `{k}` |" not in doc] == []


# -- a real cluster (slow) ----------------------------------------------------------
@dataclass(frozen=True)
class LabelledRun:
    """One `vidlake label --address` run on the test cluster, and where to look."""

    head: RayHead
    done: subprocess.CompletedProcess[str]
    lake: Path
    ray_temp: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server,
            ) -> Iterator[RayHead]:
    """`ray start --head` with 2 CPUs (after the S3 server: its nodes take this
    environment). One per module: starting a cluster is slow."""
    _skip_without_dashboard()
    with _ray_cluster(tmp_path_factory.mktemp("ray-nodes"), [2]) as head:
        yield head


def _gcs_address(head: RayHead, deadline_s: float = 60) -> str:
    """The cluster's GCS address, as `ray start` records it in its temp folder
    (once the node is up, which can be after its dashboard answers)."""
    deadline = time.monotonic() + deadline_s
    while not (found := list(Path(head.env["RAY_TMPDIR"]).rglob("ray_current_cluster"))):
        if time.monotonic() > deadline:
            raise TimeoutError(f"ray start recorded no address after {deadline_s:.0f}s")
        time.sleep(0.2)
    return found[0].read_text().strip()


@pytest.fixture(scope="module")
def labelled(cluster: RayHead, s3_server: S3Server, media: Path,
             tmp_path_factory: pytest.TempPathFactory) -> LabelledRun:
    """Label two videos from a bucket with the secret given on the command line."""
    bucket = f"vl-secrets-{secrets.token_hex(6)}"
    fs = s3_server.filesystem()
    fs.mkdir(bucket)
    for name in ("h264.mp4", "empty.mp4"):
        fs.put_file(str(media / name), f"{bucket}/videos/{name}")
    lake = tmp_path_factory.mktemp("secrets") / "lake"
    options = [f"endpoint_url={s3_server.endpoint}", "region_name=us-east-1",
               f"key={S3_ACCESS_KEY}", f"secret={SENTINEL}"]
    done = run_cli("label", f"s3://{bucket}/videos", "--output", str(lake),
                   "--address", _gcs_address(cluster), "--sample", "uniform:2", "--size", "64",
                   "--verbose", *[f for o in options for f in ("--storage-option", o)],
                   env={k: v for k, v in cluster.env.items() if k != "RAY_ADDRESS"},
                   timeout=280)
    return LabelledRun(cluster, done, lake, Path(cluster.env["RAY_TMPDIR"]))


def _ray_list(head: RayHead, kind: str) -> str:
    """`ray list KIND --detail` as JSON text (YAML, the default, folds long lines,
    which could split the sentinel and hide it)."""
    done = subprocess.run([str(VENV_BIN / "ray"), "list", kind, "--detail", "--limit", "10000",
                           "--format", "json", "--address", head.address], env=head.env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.dumps(json.loads(done.stdout))


@pytest.mark.slow
@pytest.mark.ray  # a `ray start` cluster of its own
def test_the_run_used_the_secret_and_succeeded(labelled: LabelledRun):
    assert labelled.done.returncode == 0, labelled.done.stderr[-4000:]
    assert "2 videos (1 ok, 1 failed)" in labelled.done.stdout


@pytest.mark.slow
@pytest.mark.ray  # a `ray start` cluster of its own
def test_ray_records_a_redacted_entrypoint(labelled: LabelledRun):
    jobs = _ray_list(labelled.head, "jobs")
    assert SENTINEL not in jobs, "the secret is in Ray's job table"
    assert "vidlake label s3://" in jobs and f"secret={MASK}" in jobs, jobs[-3000:]


@pytest.mark.slow
@pytest.mark.ray  # a `ray start` cluster of its own
@pytest.mark.parametrize(("kind", "expected"), [("actors", "InferenceActor"),
                                                ("tasks", "decode_task"),
                                                ("workers", "DRIVER")])
def test_ray_state_never_shows_the_secret(labelled: LabelledRun, kind: str, expected: str):
    shown = _ray_list(labelled.head, kind)
    assert expected in shown, shown[-3000:]  # the table holds this run's entries
    assert SENTINEL not in shown


@pytest.mark.slow
@pytest.mark.ray  # a `ray start` cluster of its own
def test_ray_session_folder_never_holds_the_secret(labelled: LabelledRun):
    files = [p for p in labelled.ray_temp.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.name.startswith("python-core-driver") for p in files)  # the driver's logs
    holding = [str(p) for p in files if SENTINEL.encode() in p.read_bytes()]
    assert holding == []


@pytest.mark.slow
@pytest.mark.ray  # a `ray start` cluster of its own
def test_lake_and_vidlake_output_never_hold_the_secret(labelled: LabelledRun):
    seen = "\n".join([lake_text(labelled.lake), labelled.done.stdout, labelled.done.stderr])
    assert "frame_labels" in seen and len(labelled.done.stderr) > 200
    assert SENTINEL not in seen
