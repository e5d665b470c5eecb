"""Arrow schemas of the lake's tables: the public contract (see README)."""

from __future__ import annotations

import pyarrow as pa

_string = pa.string()

VIDEOS = pa.schema([
    ("uri", _string),
    ("size_bytes", pa.int64()),
    ("etag", _string),
    ("status", _string),  # "ok" or "error"
    ("error", _string),  # human-readable reason, null when ok
    ("decoder", _string),  # "decord", "pyav", or "" when nothing was decoded
    ("codec", _string),
    ("width", pa.int32()),  # pixels, as coded
    ("height", pa.int32()),
    ("fps", pa.float64()),  # average frames per second
    ("n_frames", pa.int64()),  # frames in the chosen video stream
    ("duration_s", pa.float64()),
    ("rotation", pa.int32()),  # degrees from container metadata
    ("n_sampled", pa.int64()),  # frames analysed by this run
    ("model", _string),
    ("model_version", _string),
    ("run_id", _string),
])

_LABEL_COMMON = [
    ("uri", _string),
    ("frame_index", pa.int64()),  # n-th decoded frame of the chosen stream, from 0
    ("timestamp_s", pa.float64()),  # presentation time of that frame
]
_MODEL_COLUMNS = [("model", _string), ("model_version", _string), ("run_id", _string)]

FRAME_LABELS = pa.schema([
    *_LABEL_COMMON,
    ("label", _string),
    ("score", pa.float32()),  # softmax probability of `label`
    ("topk_labels", pa.list_(_string)),
    ("topk_scores", pa.list_(pa.float32())),
    *_MODEL_COLUMNS,
])

FRAME_EMBEDDINGS = pa.schema([
    *_LABEL_COMMON,
    ("embedding", pa.list_(pa.float32())),  # penultimate-layer features
    *_MODEL_COLUMNS,
])

RUN_COUNTS = pa.struct([
    ("videos", pa.int64()), ("videos_ok", pa.int64()), ("videos_failed", pa.int64()),
    ("units", pa.int64()), ("units_failed", pa.int64()), ("units_skipped", pa.int64()),
    ("frames", pa.int64()),
])

RUNS = pa.schema([
    ("run_id", _string),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("status", _string),  # "completed" or "failed"
    ("config", _string),  # resolved config as JSON, credentials redacted
    ("counts", RUN_COUNTS),
    ("wall_s", pa.float64()),
    ("frames_per_s", pa.float64()),
    ("code_version", _string),
])

TABLES: dict[str, pa.Schema] = {
    "videos": VIDEOS,
    "frame_labels": FRAME_LABELS,
    "frame_embeddings": FRAME_EMBEDDINGS,
    "runs": RUNS,
}
