"""Load weights from a URI the user gives (local or s3), never from a hub.

Two formats are accepted, both read with `torch.load(weights_only=True)`:

- a plain state_dict (tensor values); the architecture comes from --model and
  label names from --labels (or ImageNet's names for 1000 classes);
- a vidlake checkpoint: a dict with "arch", "state_dict" and "label_names"
  (plus optional "format", "normalization"), as written by `save_checkpoint`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError, StorageError
from pipeline.storage import StorageOptions, filesystem, fs_path

CHECKPOINT_FORMAT = "vidlake.model/1"


@dataclass(frozen=True)
class LoadedWeights:
    """Weights and what they say about themselves."""

    state_dict: dict[str, Any]
    arch: str | None  # None for a plain state_dict
    label_names: tuple[str, ...] | None
    version: str  # short content hash of the weights file
    extra: dict[str, Any]


def read_bytes(uri: str, storage: StorageOptions | None = None, *, what: str) -> bytes:
    """Read a small file (weights, labels) or raise StorageError naming `what`."""
    try:
        with filesystem(uri, storage).open(fs_path(uri), "rb") as handle:
            return bytes(handle.read())
    except FileNotFoundError:
        raise StorageError(f"{what} {uri!r} not found") from None
    except PermissionError as exc:
        raise StorageError(f"{what} {uri!r}: access denied ({exc})") from None
    except OSError as exc:
        raise StorageError(f"cannot read {what} {uri!r}: {exc}") from None


def content_version(raw: bytes) -> str:
    """model_version default: the first 12 hex digits of the weights' sha256."""
    return hashlib.sha256(raw).hexdigest()[:12]


def load_weights(uri: str, storage: StorageOptions | None = None) -> LoadedWeights:
    """Load and classify a weights file; ConfigError if it is neither format."""
    import torch

    raw = read_bytes(uri, storage, what="weights")
    try:
        obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"weights {uri!r} cannot be loaded with weights_only=True: "
                          f"{type(exc).__name__}: {str(exc)[:300]}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"weights {uri!r} hold a {type(obj).__name__}, not a state_dict")
    version = content_version(raw)
    if "state_dict" in obj and "arch" in obj:
        labels = obj.get("label_names")
        extra = {k: v for k, v in obj.items() if k not in ("state_dict", "arch", "label_names")}
        return LoadedWeights(obj["state_dict"], str(obj["arch"]),
                             tuple(labels) if labels else None, version, extra)
    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        return LoadedWeights(obj, None, None, version, {})
    raise ConfigError(f"weights {uri!r}: a dict that is neither a state_dict nor a vidlake "
                      "checkpoint (keys 'arch', 'state_dict', 'label_names')")


def peek_checkpoint(raw: bytes) -> dict[str, Any]:
    """The "arch" and "config" of a vidlake checkpoint, read without torch (the
    driver plans before any torch import); {} for anything else.

    torch.save writes a zip whose data.pkl is the pickled dict; its plain
    values (strings, numbers, nested dicts) are read with a pickle loader that
    refuses every global, so tensors are skipped, never built."""
    import pickle
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            data = archive.read(name)
    except (zipfile.BadZipFile, StopIteration):
        return {}
    try:
        obj = _PlainUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError, AttributeError):
        return {}
    if not isinstance(obj, dict) or not isinstance(obj.get("arch"), str):
        return {}
    config = obj.get("config")
    return {"arch": obj["arch"], "config": config if isinstance(config, dict) else {}}


class _PlainUnpickler:
    """Loads a pickle's plain values; every class or function it names (tensors,
    OrderedDict) becomes an inert placeholder, never constructed."""

    def __init__(self, handle: io.BytesIO) -> None:
        import pickle

        class Loader(pickle.Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                return _Opaque

            def persistent_load(self, pid: Any) -> Any:
                return None

        self._loader = Loader(handle)

    def load(self) -> Any:
        return self._loader.load()


class _Opaque:
    """Stands for anything a pickle builds from a named class or function."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __setitem__(self, _key: Any, _value: Any) -> None:
        pass

    def __setstate__(self, _state: Any) -> None:
        pass


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
    """Label names from a text file (one per line) or a JSON list."""
    import json

    text = read_bytes(uri, storage, what="labels").decode("utf-8")
    if text.lstrip().startswith("["):
        return tuple(str(x) for x in json.loads(text))
    return tuple(line.strip() for line in text.splitlines() if line.strip())
