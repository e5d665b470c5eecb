"""Invariant 6: credentials passed with --storage-option never appear in logs,
Parquet data or metadata, commit records, or `runs.config`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow.parquet as pq

from jobs import label
from tests.lakes import rows

# key, secret and token go together (StorageOptions.parse refuses them apart).
SECRETS = {"key": "AKIAVIDLAKEKEY-9e2b", "secret": "SUPERSECRET-4f1c9a",
           "token": "SESSIONTOKEN-77ab03"}


def lake_text(root: Path) -> str:
    """Everything a reader of the lake can see, as text: the raw bytes of every
    file, plus the decoded rows and key-value metadata of every Parquet file
    (its data pages are compressed, so raw bytes alone would hide a value)."""
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts.append(path.read_bytes().decode("latin-1"))
        if path.suffix == ".parquet":
            parts.append(repr(pq.read_table(path).to_pylist()))
            parts.append(repr(pq.read_metadata(path).metadata))
    return "\n".join(parts)


def _label_with_options(source: Path, lake: Path, options: dict[str, str]) -> int:
    flags = [f for k, v in options.items() for f in ("--storage-option", f"{k}={v}")]
    return label.main([str(source), "--output", str(lake), "--engine", "sequential",
                       "--sample", "uniform:2", "--size", "64", "--verbose", *flags])


def test_secrets_are_redacted_everywhere(corpus, tmp_path: Path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    lake = tmp_path / "lake"
    assert _label_with_options(corpus("h264.mp4", "empty.mp4"), lake, SECRETS) == 0
    (run,) = rows(str(lake), "select config from runs")
    assert json.loads(run["config"])["storage"] == dict.fromkeys(SECRETS, "***")
    out = capsys.readouterr()
    seen = "\n".join([lake_text(lake), out.out, out.err, caplog.text])
    assert "SUPERSECRET" in SECRETS["secret"] and len(seen) > 1000  # the check can fail
    leaked = [name for name, value in SECRETS.items() if value in seen]
    assert leaked == []


def test_access_key_id_is_redacted(corpus, tmp_path: Path):
    lake = tmp_path / "lake"
    options = {"key": "AKIAVIDLAKETEST42", "secret": "SECRET-55e0"}
    assert _label_with_options(corpus("h264.mp4"), lake, options) == 0
    assert "AKIAVIDLAKETEST42" not in lake_text(lake)
