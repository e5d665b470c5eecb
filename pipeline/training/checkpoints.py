"""Training checkpoints and the exported model, local or on object storage.

OUT/checkpoints/epoch_0003.pt holds everything to continue after epoch 3
(model, optimizer, scheduler, metrics so far, the best epoch and its
--select-by score); the last KEEP of them are kept. OUT/model.pt is the best
epoch's model (by validation top-1, or macro-F1) as a vidlake checkpoint: `vidlake label --weights
OUT/model.pt` needs no other flag. Every file is written whole or not at all.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

from pipeline.errors import ConfigError, StorageError
from pipeline.models.checkpoint_header import shown
from pipeline.storage import filesystem, fs_path, join, write_atomic
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors

log = logging.getLogger(__name__)

TRAIN_FORMAT = "vidlake.train/1"
KEEP = 2
_NAME = re.compile(r"epoch_(\d+)\.pt$")


def checkpoint_uri(output: str, epoch: int) -> str:
    return join(output, "checkpoints", f"epoch_{epoch:04d}.pt")


def model_uri(output: str) -> str:
    return join(output, "model.pt")


def _epochs(output: str, storage: StorageOptions) -> list[int]:
    fs = filesystem(output, storage)
    try:
        names = fs.ls(fs_path(join(output, "checkpoints")), detail=False)
    except FileNotFoundError:
        return []
    except storage_errors() as exc:
        raise StorageError(f"cannot list checkpoints in {output!r}: {exc}") from None
    return sorted(int(m.group(1)) for n in names if (m := _NAME.search(str(n))))


def latest_checkpoint(output: str, storage: StorageOptions) -> str | None:
    """URI of the newest training checkpoint under `output`, or None."""
    epochs = _epochs(output, storage)
    return checkpoint_uri(output, epochs[-1]) if epochs else None


def save_training_state(output: str, epoch: int, state: dict[str, Any],
                        storage: StorageOptions) -> str:
    """Write the state after `epoch` (1-based count of finished epochs) and
    drop all but the newest KEEP checkpoints; returns the new URI."""
    import torch

    buffer = io.BytesIO()
    torch.save({"format": TRAIN_FORMAT, "epoch": epoch, **state}, buffer)
    uri = checkpoint_uri(output, epoch)
    write_atomic(uri, buffer.getvalue(), storage)
    fs = filesystem(output, storage)
    for old in _epochs(output, storage)[:-KEEP]:
        fs.rm(fs_path(checkpoint_uri(output, old)))
    return uri


def load_training_state(uri: str, storage: StorageOptions) -> dict[str, Any]:
    """A checkpoint written by `save_training_state` (tensors and plain values
    only, so torch.load runs with weights_only=True). Read as weights files are
    (pipeline.models.checkpoint): at most WEIGHTS_MAX_BYTES, and a zip archive
    that cannot expand beyond the file; ConfigError naming the file otherwise."""
    import torch

    from pipeline.models.checkpoint import WEIGHTS_MAX_BYTES, pickle_entry, read_bytes

    where = f"checkpoint {uri!r}"
    raw = read_bytes(uri, storage, what="checkpoint", max_bytes=WEIGHTS_MAX_BYTES)
    pickle_entry(raw, where)  # before torch reads a byte of it
    try:
        state: dict[str, Any] = torch.load(io.BytesIO(raw), map_location="cpu",
                                           weights_only=True)
    except Exception as exc:  # torch.load raises many types for a bad file: all mean "bad file"
        raise ConfigError(f"{where} cannot be loaded with weights_only=True: "
                          f"{type(exc).__name__}: {shown(str(exc), 300)}") from None
    return state


def export_model(output: str, data: bytes, storage: StorageOptions) -> str:
    """Publish the best model's checkpoint bytes as OUT/model.pt."""
    uri = model_uri(output)
    write_atomic(uri, data, storage)
    return uri
