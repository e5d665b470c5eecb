"""read_bytes turns every storage error into one line that says what to fix:
missing credentials and a silent endpoint included (botocore's errors are not
OSErrors), never a traceback; a missing file still says "not found"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from pipeline.errors import StorageError
from pipeline.models import checkpoint
from pipeline.models.checkpoint import read_bytes

URI = "s3://models/mine.pt"


class _Refusing:
    """A filesystem whose every open raises `error`, as s3fs does for a store
    that cannot be reached or will not have us."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def open(self, *_args: Any, **_kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(("error", "expected"), [
    (NoCredentialsError(), "no S3 credentials found, so cannot read weights "
                           f"{URI!r}; set AWS_ACCESS_KEY_ID"),
    (EndpointConnectionError(endpoint_url="http://user:pw@store:9000/models/mine.pt"),
     f"the S3 endpoint http://store:9000 does not answer, so cannot read weights {URI!r}"),
    (PermissionError(13, "Forbidden"), f"cannot read weights {URI!r}: permission denied"),
], ids=["no-credentials", "no-endpoint", "denied"])
def test_storage_errors_become_one_fix_it_line(monkeypatch: pytest.MonkeyPatch,
                                               error: BaseException, expected: str):
    monkeypatch.setattr(checkpoint, "filesystem", lambda *_args: _Refusing(error))
    with pytest.raises(StorageError) as failed:
        read_bytes(URI, what="weights")
    message = str(failed.value)
    assert message.startswith(expected) and "\n" not in message and "pw" not in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_a_missing_file_is_not_found(tmp_path: Path):
    missing = str(tmp_path / "none.pt")
    with pytest.raises(StorageError, match=f"^{re.escape(f'labels {missing!r} not found')}$"):
        read_bytes(missing, what="labels")
