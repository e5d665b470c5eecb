"""Storage problems found before any work (invariant 4): `vidlake label` exits 2
with exactly one line `vidlake label: error: ...` that names the problem and
what to fix, and no traceback. Each case runs the real CLI against a real S3
server (SeaweedFS), a closed port, or a SeaweedFS that checks credentials."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.corpus.listing import list_corpus
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.storage_options import StorageOptions
from tests.conftest import S3_ACCESS_KEY, S3_SECRET_KEY, S3Server, _weed_command
from tests.procs import free_ports, run_cli, stop_process_group, wait_for_port

# Identities of the credential-checking server: one may write, one may only read.
ADMIN = ("AKVLADMIN", "admin-secret-4b7e")
READER = ("AKVLREADER", "reader-secret-90c2")
WRONG_SECRET = "wrong-secret-d1f3a7"


def _env(tmp_path: Path, **aws: str) -> dict[str, str]:
    """The CLI's environment: no AWS settings but `aws`, no ~/.aws files, no instance
    metadata lookups, one attempt per S3 request (a dead endpoint fails in ms)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "RAY_ADDRESS"}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1",
               AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"), **aws)
    return env


def _label(env: dict[str, str], source: str, output: str | Path, *flags: str,
           ) -> subprocess.CompletedProcess[str]:
    return run_cli("label", source, "--output", str(output), "--engine", "sequential",
                   "--sample", "uniform:2", "--size", "64", *flags, env=env, timeout=120)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The run's single `vidlake label: error:` line, after checking exit code 2
    and the absence of a traceback."""
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines()
              if line.startswith("vidlake label: error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    return errors[0]


def _upload_video(fs: Any, bucket: str) -> str:
    """One object with a video's name (listing fails before anything reads it)."""
    fs.pipe_file(f"{bucket}/videos/clip.mp4", b"listing never gets to read this")
    return f"s3://{bucket}/videos/clip.mp4"


def _manifest(tmp_path: Path, uri: str) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text(f"uri\n{uri}\n")
    return path


# -- --storage-option --------------------------------------------------------------
@pytest.mark.parametrize(("options", "named"), [
    (["foo=bar"], ["'foo' is not a known option", "endpoint_url", "region_name", "anon"]),
    (["anon=maybe"], ["anon", "true/1/yes/false/0/no"]),
    (["use_ssl=2"], ["use_ssl", "true/1/yes/false/0/no"]),
    (["requester_pays=sure"], ["requester_pays"]),
    (["endpoint_url=ftp://store:21"], ["endpoint_url", "http:// or https:// URL"]),
    (["endpoint_url=localhost:9000"], ["endpoint_url", "http:// or https:// URL"]),
    (["max_attempts=0"], ["max_attempts", "at least 1"]),
    (["region_name=us-east-1", "region_name=eu-west-1"], ["'region_name' is given twice"]),
    ([f"key={ADMIN[0]}"], ["key and secret go together"]),
    ([f"secret={ADMIN[1]}"], ["key and secret go together"]),
    (["anon=true", f"key={ADMIN[0]}", f"secret={ADMIN[1]}"], ["anon cannot be combined"]),
    ([ADMIN[1]], ["expects key=value"]),
], ids=["unknown-key", "anon-word", "use_ssl-word", "requester_pays-word", "ftp-endpoint",
        "endpoint-without-scheme", "zero-attempts", "repeated-key", "key-alone",
        "secret-alone", "anon-with-key", "no-equals-sign"])
def test_bad_storage_options_are_refused(tmp_path: Path, options: list[str],
                                          named: list[str]):
    flags = [f for option in options for f in ("--storage-option", option)]
    line = _one_error_line(_label(_env(tmp_path), str(tmp_path), tmp_path / "lake", *flags))
    for words in named:
        assert words in line, line
    assert ADMIN[1] not in line  # a secret given by mistake is never echoed
    assert not (tmp_path / "lake").exists()


# -- credentials and endpoints -------------------------------------------------------
def test_manifest_of_s3_objects_without_credentials(s3_server: S3Server, s3_bucket: str,
                                                    tmp_path: Path):
    uri = _upload_video(s3_server.filesystem(), s3_bucket)
    env = _env(tmp_path, AWS_ENDPOINT_URL_S3=s3_server.endpoint)
    line = _one_error_line(_label(env, str(_manifest(tmp_path, uri)), tmp_path / "lake"))
    assert line.startswith("vidlake label: error: no S3 credentials found"), line
    assert uri in line and "AWS_ACCESS_KEY_ID" in line and "AWS_PROFILE" in line


def test_s3_source_without_credentials(s3_server: S3Server, s3_bucket: str, tmp_path: Path):
    _upload_video(s3_server.filesystem(), s3_bucket)
    env = _env(tmp_path, AWS_ENDPOINT_URL_S3=s3_server.endpoint)
    line = _one_error_line(_label(env, f"s3://{s3_bucket}/videos", tmp_path / "lake"))
    assert "no S3 credentials found" in line and f"SOURCE 's3://{s3_bucket}/videos'" in line


def test_partial_credentials_are_named(s3_server: S3Server, s3_bucket: str, tmp_path: Path):
    """AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY: the message is about the
    credentials, not about the output."""
    env = _env(tmp_path, AWS_ENDPOINT_URL_S3=s3_server.endpoint,
               AWS_ACCESS_KEY_ID=S3_ACCESS_KEY)
    line = _one_error_line(_label(env, str(tmp_path), f"s3://{s3_bucket}/lake"))
    assert line.startswith("vidlake label: error: incomplete S3 credentials in the "
                           "environment: AWS_SECRET_ACCESS_KEY is missing"), line


@pytest.mark.parametrize("source_kind", ["manifest", "prefix", "output"])
def test_dead_endpoint_is_named_quickly(tmp_path: Path, source_kind: str):
    (port,) = free_ports(1)  # free: nothing listens there
    endpoint = f"http://127.0.0.1:{port}"
    env = _env(tmp_path, AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID=S3_ACCESS_KEY,
               AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY)
    source, output = {"manifest": (str(_manifest(tmp_path, "s3://b/v.mp4")),
                                   str(tmp_path / "lake")),
                      "prefix": ("s3://b/videos", str(tmp_path / "lake")),
                      "output": (str(tmp_path), "s3://b/lake")}[source_kind]
    started = time.monotonic()
    line = _one_error_line(_label(env, source, output))
    assert f"the S3 endpoint {endpoint} does not answer" in line, line
    assert "AWS_ENDPOINT_URL_S3" in line and S3_SECRET_KEY not in line
    assert time.monotonic() - started < 30


def test_missing_bucket_is_named(s3_server: S3Server, tmp_path: Path):
    bucket = f"vl-missing-{uuid.uuid4().hex[:12]}"
    env = _env(tmp_path, AWS_ENDPOINT_URL_S3=s3_server.endpoint,
               AWS_ACCESS_KEY_ID=S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY)
    line = _one_error_line(_label(env, f"s3://{bucket}/videos", tmp_path / "lake"))
    assert f"bucket '{bucket}' does not exist" in line, line


# -- credentials the store refuses ---------------------------------------------------
@pytest.fixture(scope="module")
def checking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS that checks credentials (-s3.config): ADMIN may write, READER
    may read and list; one bucket `videos` holds one object."""
    data_dir = tmp_path_factory.mktemp("seaweedfs-iam")
    identities = [{"name": name, "credentials": [{"accessKey": key, "secretKey": secret}],
                   "actions": actions}
                  for name, (key, secret), actions in (
                      ("admin", ADMIN, ["Admin", "Read", "Write", "List", "Tagging"]),
                      ("reader", READER, ["Read", "List"]))]
    (data_dir / "s3.json").write_text(json.dumps({"identities": identities}))
    command, port = _weed_command(data_dir)
    log = (data_dir / "weed.log").open("wb")
    process = subprocess.Popen([*command, f"-s3.config={data_dir / 's3.json'}"], stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{port}", process)
    try:
        wait_for_port(port, process, 60, "weed server")
        _wait_for_bucket(server, 60)
        yield server
    finally:
        stop_process_group(process, grace_s=3)
        log.close()


def _wait_for_bucket(server: S3Server, deadline_s: float) -> None:
    """Create the `videos` bucket and its object as ADMIN, once volumes are ready."""
    import s3fs

    fs = s3fs.S3FileSystem(key=ADMIN[0], secret=ADMIN[1], skip_instance_cache=True,
                           client_kwargs={"endpoint_url": server.endpoint,
                                          "region_name": "us-east-1"})
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            fs.makedirs("videos", exist_ok=True)
            _upload_video(fs, "videos")
            return
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.s3
@pytest.mark.slow  # starts its own SeaweedFS, like the tests on the session's S3 server
@pytest.mark.parametrize(("key", "secret", "target", "named"), [
    (ADMIN[0], WRONG_SECRET, "source", "the store refused the credentials (signature "
                                       "mismatch: the secret key does not match"),
    ("AKVLNOBODY", WRONG_SECRET, "source", "the store refused the credentials (the store "
                                           "does not know the access key ID)"),
    (ADMIN[0], WRONG_SECRET, "manifest", "the store refused access with these credentials"),
    (READER[0], READER[1], "output", "the store refused access with these credentials"),
], ids=["wrong-secret", "unknown-key", "manifest-entry", "read-only-output"])
def test_refused_credentials(checking_server: S3Server, tmp_path: Path, key: str, secret: str,
                             target: str, named: str):
    env = _env(tmp_path, AWS_ENDPOINT_URL_S3=checking_server.endpoint,
               AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret)
    source, output = {"source": ("s3://videos/videos", str(tmp_path / "lake")),
                      "manifest": (str(_manifest(tmp_path, "s3://videos/videos/clip.mp4")),
                                   str(tmp_path / "lake")),
                      "output": ("s3://videos/videos", "s3://videos/lake")}[target]
    line = _one_error_line(_label(env, source, output))
    assert named in line and "AWS_SECRET_ACCESS_KEY" in line, line
    assert secret not in line


@pytest.mark.s3
@pytest.mark.slow
def test_the_checking_server_accepts_good_credentials(checking_server: S3Server):
    """The refusals above are about the credentials: with ADMIN's, the same listing
    and write check pass (and READER may list)."""
    for key, secret in (ADMIN, READER):
        options = StorageOptions.parse([f"endpoint_url={checking_server.endpoint}",
                                        f"key={key}", f"secret={secret}"])
        assert [r.uri for r in list_corpus("s3://videos/videos", options)] == [
            "s3://videos/videos/clip.mp4"]
    ParquetLake("s3://videos/lake", StorageOptions.parse([
        f"endpoint_url={checking_server.endpoint}", f"key={ADMIN[0]}",
        f"secret={ADMIN[1]}"])).check_writable()
