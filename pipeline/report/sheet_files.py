"""File names of contact sheets: safe, unique per video, always inside the
output folder; PNGs written whole or not at all."""

from __future__ import annotations

import hashlib
import io
import os
import re

from PIL import Image

from pipeline.storage import write_local_atomic

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_STEM_CHARS = 60  # of the video's file name kept in the sheet's name


def sheet_name(uri: str, detector: str | None = None) -> str:
    """`<file stem>-<8 hex of the uri's hash>[.<detector>]`: only [A-Za-z0-9._-],
    never starting with a dot, so it names a file inside the output folder; two
    uris that share a file name get different hashes."""
    stem = uri.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    safe = _UNSAFE.sub("_", stem).strip("._-")[:_STEM_CHARS] or "video"
    digest = hashlib.sha1(uri.encode()).hexdigest()[:8]
    suffix = f".{_UNSAFE.sub('_', detector)}" if detector else ""
    return f"{safe}-{digest}{suffix}"


def page_file(name: str, page: int) -> str:
    """`name.png` for page 1, `name_p2.png` for page 2 and so on (pages count from 1)."""
    return f"{name}.png" if page == 1 else f"{name}_p{page}.png"


def write_png(image: Image.Image, folder: str, file_name: str) -> str:
    """Write `image` as folder/file_name (a bare name, no folders) through a temp
    file and a rename, so a reader never sees half a PNG; returns the path."""
    if os.path.basename(file_name) != file_name or file_name.startswith("."):
        raise ValueError(f"not a bare file name: {file_name!r}")
    path = os.path.join(folder, file_name)
    encoded = io.BytesIO()
    image.save(encoded, format="PNG")
    write_local_atomic(path, encoded.getvalue())
    return path
