"""Time one decoder over a list of videos and print one JSON line: decoder,
version, files, frames, seconds. Run as a script (not as `jobs.*`) by the
python of a side venv: it imports only the standard library, numpy and the
decoder, because decord 0.6 and decord2 both install `decord` and so live in
venvs of their own (`python -m jobs.benchmark decode` makes them).

    python jobs/decode_timer.py decord sparse VIDEO...
    python jobs/decode_timer.py pyav full VIDEO...

sparse: 8 frames, the centres of 8 equal segments (vidlake's uniform:8),
resized on decode to 112x112. full: every frame, in order, at its own size.
One decoding thread, as vidlake's decode workers use.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

SPARSE_FRAMES, SPARSE_SIDE = 8, 112
CHUNK = 32  # frames per decord call in full mode: memory stays small on long videos


def uniform(n_frames: int, count: int = SPARSE_FRAMES) -> list[int]:
    """The centre frame of each of `count` equal segments of [0, n_frames)."""
    count = min(count, n_frames)
    return [int((i + 0.5) * n_frames / count) for i in range(count)]


def decord_frames(path: str, mode: str) -> int:
    """Decode `path` with decord in `mode`; the number of frames returned."""
    import decord

    if mode == "sparse":
        reader = decord.VideoReader(path, num_threads=1, width=SPARSE_SIDE, height=SPARSE_SIDE)
        return len(reader.get_batch(uniform(len(reader))).asnumpy())
    reader = decord.VideoReader(path, num_threads=1)
    n_frames = len(reader)
    return sum(len(reader.get_batch(list(range(start, min(start + CHUNK, n_frames)))).asnumpy())
               for start in range(0, n_frames, CHUNK))


def pyav_frames(path: str, mode: str) -> int:
    """Decode `path` with PyAV in `mode`, forward from the start (as vidlake's
    PyAV path does for a short video); the number of frames returned."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        if mode == "full":
            return sum(1 for frame in container.decode(stream)
                       if frame.to_ndarray(format="rgb24").size)
        wanted = uniform(stream.frames)
        got = 0
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                frame.reformat(width=SPARSE_SIDE, height=SPARSE_SIDE, format="rgb24").to_ndarray()
                got += 1
            if index >= wanted[-1]:
                break
        return got


def version(decoder: str) -> str:
    module = __import__("decord" if decoder == "decord" else "av")
    return str(module.__version__)


def main(argv: list[str]) -> int:
    decoder, mode, *paths = argv
    if mode not in ("sparse", "full") or decoder not in ("decord", "pyav"):
        raise SystemExit("usage: decode_timer.py decord|pyav sparse|full VIDEO...")
    decode: Callable[[str, str], int] = decord_frames if decoder == "decord" else pyav_frames
    name = version(decoder)  # the import stays out of the timing
    t0 = time.perf_counter()
    frames = sum(decode(path, mode) for path in paths)
    seconds = time.perf_counter() - t0
    print(json.dumps({"decoder": decoder, "version": name, "files": len(paths),
                      "frames": frames, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
