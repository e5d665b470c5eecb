"""Load weights from a URI the user gives (local or s3), never from a hub.

Two formats are accepted, both read with `torch.load(weights_only=True)`:

- a plain state_dict (tensor values); the architecture comes from --model and
  label names from --labels (or ImageNet's names for 1000 classes);
- a vidlake checkpoint: a dict with "arch", "state_dict" and "label_names"
  (plus optional "config", "format", "trained"), as written by `save_checkpoint`.

What such a file says about itself is a hint to check, never an order: its
"arch" and "config" must be plain values (pipeline.models.checkpoint_header)
that name a model the user may build (pipeline.models.registry), and the
archive must not expand beyond the file (checked here; docs/security.md).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError, StorageError
from pipeline.models.checkpoint_header import (
    CheckpointHeader,
    PickledObject,
    checkpoint_header,
    parse_label_names,
    shown,
)
from pipeline.storage import filesystem, fs_path
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors, storage_problem

CHECKPOINT_FORMAT = "vidlake.model/1"
MIB = 2**20
# Label files are text: 64 MiB holds millions of names. Reading stops one byte
# past the cap, so /dev/zero or an endless stream fails in milliseconds.
LABELS_MAX_BYTES = 64 * MIB
# A whole weights file: 4 GiB holds a 1-billion-parameter float32 model, 20x the
# largest built-in (fasterrcnn_resnet50_fpn_v2, 0.17 GB); beyond it is a device
# or an endless stream, refused before it fills the driver's memory.
WEIGHTS_MAX_BYTES = 4096 * MIB
# A checkpoint's pickle (names, shapes, options; tensor data is stored beside
# it): mvit_v2_s with 21,843 label names needs 0.6 MB. Unpickling can build ~85x
# its size in objects (32 MiB of empty dicts: 2.8 GB and 9 s), hence 16 MiB.
PICKLE_MAX_BYTES = 16 * MIB
_CHUNK_BYTES = 16 * MIB
_PICKLE_ERRORS = (ValueError, EOFError, TypeError, AttributeError, KeyError, IndexError,
                  OverflowError)


@dataclass(frozen=True)
class LoadedWeights:
    """Weights and what they say about themselves (checked plain values)."""

    state_dict: dict[str, Any]
    arch: str | None  # None for a plain state_dict
    label_names: tuple[str, ...] | None
    version: str  # short content hash of the weights file
    extra: dict[str, Any]
    size_bytes: int = 0  # of the weights file: what a model built from it may allocate


def read_bytes(uri: str, storage: StorageOptions | None = None, *, what: str,
               max_bytes: int | None = None) -> bytes:
    """Read a small file (weights, labels) whole, or raise StorageError naming
    `what`. With `max_bytes`, reads at most max_bytes + 1 bytes and raises
    ConfigError beyond the cap (a device or endless stream stops there).

    Storage errors (missing credentials, an endpoint that does not answer,
    access denied: botocore's as well as OSErrors) become one-line StorageErrors
    that say what to fix (`storage_problem`), never a traceback."""
    try:
        with filesystem(uri, storage).open(fs_path(uri), "rb") as handle:
            data = bytes(handle.read()) if max_bytes is None else _read_upto(handle, max_bytes + 1)
    except FileNotFoundError:
        raise StorageError(f"{what} {uri!r} not found") from None
    except storage_errors() as exc:
        raise storage_problem(exc, f"cannot read {what} {uri!r}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise ConfigError(f"{what} {uri!r} is larger than {max_bytes / MIB:g} MiB")
    return data


def _read_upto(handle: Any, limit: int) -> bytes:
    """At most `limit` bytes, read in chunks: one read(limit) would allocate a
    buffer of the whole cap up front, even for a small file."""
    out = io.BytesIO()
    while out.tell() < limit:
        chunk = handle.read(min(_CHUNK_BYTES, limit - out.tell()))
        if not chunk:
            break
        out.write(chunk)
    return out.getvalue()


def content_version(raw: bytes) -> str:
    """model_version default: the first 12 hex digits of the weights' sha256."""
    return hashlib.sha256(raw).hexdigest()[:12]


# How a file torch.save wrote in its legacy (pre-1.6, non-zip) format starts: a
# pickled protocol-2 long, torch's magic number 0x1950a86a20f9469cfc6c.
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def pickle_entry(raw: bytes, where: str) -> zipfile.ZipInfo | None:
    """The data.pkl entry of a torch.save archive, once the archive is known not
    to expand beyond the file: every entry stored (torch.save never compresses)
    and the pickle under PICKLE_MAX_BYTES, judged from the zip's directory
    before anything is read. None when `raw` is not a zip (legacy torch files)."""
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        return None
    try:
        entries = zipfile.ZipFile(io.BytesIO(raw)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise ConfigError(f"{where}: a damaged zip archive ({shown(str(exc))})") from None
    pickles = [e for e in entries if e.filename.rsplit("/", 1)[-1] == "data.pkl"]
    if len(pickles) != 1:
        raise ConfigError(f"{where}: {len(pickles)} data.pkl entries; torch.save writes one")
    if pickles[0].file_size > PICKLE_MAX_BYTES:
        raise ConfigError(f"{where}: data.pkl is {pickles[0].file_size / MIB:.0f} MiB, over "
                          f"the {PICKLE_MAX_BYTES // MIB} MiB a checkpoint's header may take")
    packed = next((e for e in entries if e.compress_type != zipfile.ZIP_STORED), None)
    if packed is not None:
        raise ConfigError(f"{where}: zip entry {shown(packed.filename)} is compressed; "
                          "torch.save stores entries uncompressed (re-save the model)")
    return pickles[0]


def load_weights(uri: str, storage: StorageOptions | None = None) -> LoadedWeights:
    """Load and classify a weights file; ConfigError if it is neither format or
    holds anything but plain values and tensors where vidlake reads them."""
    import torch

    where = f"weights {uri!r}"
    raw = read_bytes(uri, storage, what="weights", max_bytes=WEIGHTS_MAX_BYTES)
    pickle_entry(raw, where)  # before torch reads a byte of it
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a bad file: all mean "bad file"
        raise ConfigError(f"{where} cannot be loaded with weights_only=True: "
                          f"{type(exc).__name__}: {shown(str(exc), 300)}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{where} hold a {type(obj).__name__}, not a state_dict")
    version = content_version(raw)
    if "state_dict" in obj and "arch" in obj:
        header = checkpoint_header(obj, where)
        extra = {k: v for k, v in obj.items() if k not in ("state_dict", "arch", "label_names")}
        if "config" in obj:
            extra["config"] = header.config
        return LoadedWeights(_state_dict(obj["state_dict"], where, torch.Tensor), header.arch,
                             header.label_names, version, extra, len(raw))
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return LoadedWeights(_state_dict(obj, where, torch.Tensor), None, None, version, {},
                             len(raw))
    raise ConfigError(f"{where}: a dict that is neither a state_dict nor a vidlake "
                      "checkpoint (keys 'arch', 'state_dict', 'label_names')")


def _state_dict(value: Any, where: str, tensor: type) -> dict[str, Any]:
    """`value` if it maps names to tensors, else ConfigError naming the first bad entry."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: state_dict is a {type(value).__name__}, not a mapping")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, tensor):
            raise ConfigError(f"{where}: state_dict entry {shown(key)} is a "
                              f"{type(item).__name__}, not a tensor")
    return value


def peek_checkpoint(raw: bytes, *, where: str) -> CheckpointHeader | None:
    """The header of a vidlake checkpoint, read without torch (the driver plans
    before any torch import) and checked as `load_weights` checks it; None for
    a plain state_dict or a legacy (non-zip) torch file, which torch.load judges;
    ConfigError for a file torch.save cannot have written (fail before Ray starts).

    torch.save writes a zip whose data.pkl is the pickled dict; its plain
    values (strings, numbers, nested dicts) are read with a pickle loader that
    refuses every global, so tensors are skipped, never built."""
    import pickle

    entry = pickle_entry(raw, where)
    if entry is None:
        if not raw.startswith(LEGACY_MAGIC):
            raise ConfigError(f"{where} is not a torch.save file (neither its zip archive "
                              "nor torch's legacy format)")
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            data = archive.read(entry)
        obj = _PlainUnpickler(io.BytesIO(data)).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, *_PICKLE_ERRORS) as exc:
        raise ConfigError(f"{where}: data.pkl cannot be read ({type(exc).__name__}: "
                          f"{shown(str(exc))})") from None
    if not isinstance(obj, dict) or "arch" not in obj:
        return None
    return checkpoint_header(obj, where)


class _PlainUnpickler:
    """Loads a pickle's plain values; every class or function it names (tensors,
    OrderedDict) becomes an inert placeholder, never constructed."""

    def __init__(self, handle: io.BytesIO) -> None:
        import pickle

        class Loader(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                return PickledObject

            def persistent_load(self, pid: Any) -> Any:
                return None

        self._loader = Loader(handle)

    def load(self) -> Any:
        return self._loader.load()


def checkpoint_bytes(*, arch: str, state_dict: dict[str, Any], label_names: list[str],
                     **extra: Any) -> bytes:
    """A self-describing checkpoint that `vidlake label --weights` accepts alone."""
    import torch

    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "arch": arch, "state_dict": state_dict,
                "label_names": list(label_names), **extra}, buffer)
    return buffer.getvalue()


def save_checkpoint(path: str, *, arch: str, state_dict: dict[str, Any],
                    label_names: list[str], **extra: Any) -> None:
    """Write `checkpoint_bytes(...)` to the local file `path`."""
    with open(path, "wb") as handle:
        handle.write(checkpoint_bytes(arch=arch, state_dict=state_dict,
                                      label_names=label_names, **extra))


def read_label_names(uri: str, storage: StorageOptions | None = None) -> tuple[str, ...]:
    """Label names from a UTF-8 text file (one per line) or a JSON list of strings,
    checked by `parse_label_names`; ConfigError naming the file otherwise."""
    where = f"labels {uri!r}"
    raw = read_bytes(uri, storage, what="labels", max_bytes=LABELS_MAX_BYTES)
    try:
        text = raw.decode("utf-8-sig")  # a BOM (Windows editors) is not part of a name
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text (byte {exc.start}); give one name "
                          "per line or a JSON list") from None
    return parse_label_names(text, where)
