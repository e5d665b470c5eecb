"""Arrow schemas of the lake's tables: the public contract (see docs/tables.md)."""

from __future__ import annotations

import pyarrow as pa

_string = pa.string()

VIDEOS = pa.schema([
    ("uri", _string),
    ("size_bytes", pa.int64()),
    ("etag", _string),
    ("status", _string),  # "ok" or "error"
    ("error", _string),  # human-readable reason, null when ok
    ("decoder", _string),  # "decord", "pyav", "nvdec" (joined by "+"), "" when none
    ("codec", _string),
    ("width", pa.int32()),  # pixels, as displayed (after rotation)
    ("height", pa.int32()),
    ("fps", pa.float64()),  # average frames per second
    ("n_frames", pa.int64()),  # frames in the chosen video stream
    ("duration_s", pa.float64()),
    ("rotation", pa.int32()),  # clockwise degrees from the display matrix: 0/90/180/270
    ("n_sampled", pa.int64()),  # frames decoded for this run's analyses
    ("analyses", pa.list_(_string)),  # what this run did to the video: "kind:model@version"
    ("model", _string),  # models of the run's analyses, "+"-joined
    ("model_version", _string),  # their versions, "+"-joined in the same order
    ("run_id", _string),
    ("content_key", _string),  # hash of (uri, size_bytes, etag): the content version
    ("container", _string),  # FFmpeg's demuxer name: "mov,mp4,m4a,3gp,3g2,mj2", "mpegts"...
])

_LABEL_COMMON = [
    ("uri", _string),
    ("frame_index", pa.int64()),  # n-th decoded frame of the chosen stream, from 0
    ("timestamp_s", pa.float64()),  # presentation time of that frame
]
# Which version of what produced a row: the video's content (VideoRef.content_key,
# a hash of uri, size and etag) and the analysis (kind, model, version, frames,
# size, options: planner.analysis_key). Latest views pick rows by them.
_VERSION_COLUMNS = [("content_key", _string), ("analysis_key", _string)]
_MODEL_COLUMNS = [("model", _string), ("model_version", _string), ("run_id", _string),
                  *_VERSION_COLUMNS]

_TOPK = [
    ("label", _string),
    ("score", pa.float32()),  # softmax probability of `label`
    ("topk_labels", pa.list_(_string)),
    ("topk_scores", pa.list_(pa.float32())),
]

FRAME_LABELS = pa.schema([
    *_LABEL_COMMON,
    *_TOPK,
    *_MODEL_COLUMNS,
])

FRAME_EMBEDDINGS = pa.schema([
    *_LABEL_COMMON,
    ("embedding", pa.list_(pa.float32())),  # penultimate-layer features
    *_MODEL_COLUMNS,
])

CLIP_LABELS = pa.schema([
    ("uri", _string),
    ("clip_index", pa.int32()),  # position of the clip in the video's clip plan, from 0
    ("start_frame", pa.int64()),  # first frame of the clip
    ("end_frame", pa.int64()),  # exclusive: last frame of the clip + 1
    ("start_s", pa.float64()),  # presentation time of start_frame
    ("end_s", pa.float64()),  # presentation time of the last frame + one frame duration
    *_TOPK,
    *_MODEL_COLUMNS,
])

DETECTIONS = pa.schema([
    *_LABEL_COMMON,
    ("label", _string),
    ("score", pa.float32()),  # detector confidence
    ("x1", pa.float32()),  # box corners in pixels of the original frame (as coded),
    ("y1", pa.float32()),  # continuous coordinates: x in [0, width], y in [0, height]
    ("x2", pa.float32()),
    ("y2", pa.float32()),
    *_MODEL_COLUMNS,
])

SHOTS = pa.schema([
    ("uri", _string),
    ("shot_index", pa.int32()),  # from 0, in time order
    ("start_frame", pa.int64()),
    ("end_frame", pa.int64()),  # exclusive; the next shot starts here (shots tile the video)
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),  # the next shot's start_s; the video's end for the last shot
    ("detector", _string),  # "content", "adaptive" or "transnetv2"
    ("run_id", _string),
    *_VERSION_COLUMNS,
    # TransNetV2 only (null for the other detectors, and for a video's first
    # shot): the peak single-frame probability of the transition that starts
    # the shot, and whether that transition is gradual (a dissolve or fade:
    # more frames marked as in it than the two of a hard cut).
    ("transition_prob", pa.float32()),
    ("transition_gradual", pa.bool_()),
])

# Columns a writer may leave out (then null): they were added after the table's
# first writers, or only some detectors fill them. Files written before a
# column existed read it as null too (parquet_lake.conform, DuckDB's
# union_by_name).
OPTIONAL_COLUMNS = frozenset({"transition_prob", "transition_gradual", "stages",
                              "video_hours", "cpu_hours", "gpu_hours",
                              "video_hours_per_cpu_hour", "video_hours_per_gpu_hour",
                              "bottleneck"})

RUN_COUNTS = pa.struct([
    ("videos", pa.int64()), ("videos_ok", pa.int64()), ("videos_failed", pa.int64()),
    ("units", pa.int64()), ("units_failed", pa.int64()), ("units_skipped", pa.int64()),
    ("frames", pa.int64()),
])

# One output of a run's analyses: the table, what wrote it, and its analysis_key.
RUN_OUTPUT = pa.struct([
    ("table", _string), ("analysis", _string), ("model", _string),
    ("model_version", _string), ("analysis_key", _string),
])

# A run's totals per stage (the sums of its run_stages rows).
STAGE_TOTAL = pa.struct([
    ("stage", _string), ("analysis", _string), ("workers", pa.int32()),
    ("items_in", pa.int64()), ("items_out", pa.int64()),
    ("frames_in", pa.int64()), ("frames_out", pa.int64()),
    ("busy_s", pa.float64()), ("idle_s", pa.float64()), ("blocked_s", pa.float64()),
    ("bytes", pa.int64()), ("utilisation", pa.float64()),
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
    ("outputs", pa.list_(RUN_OUTPUT)),  # what the run asked for, done now or earlier
    ("stages", pa.list_(STAGE_TOTAL)),  # per stage, summed over the run's run_stages rows
    ("video_hours", pa.float64()),  # duration of the videos finished ok by this run
    ("cpu_hours", pa.float64()),  # CPUs the run held × wall time
    ("gpu_hours", pa.float64()),  # GPUs the run held × wall time
    ("video_hours_per_cpu_hour", pa.float64()),  # null when no CPU-hours
    ("video_hours_per_gpu_hour", pa.float64()),  # null on CPU-only runs
    ("bottleneck", _string),  # the verdict line: "decode-bound: model actors idle 63%..."
])

# One row per run, stage (and analysis) and interval of a few seconds: where a
# run's time went (pipeline/observe/stage_meter.py). Sums over a run's rows
# are its totals (runs.stages).
RUN_STAGES = pa.schema([
    ("run_id", _string),
    ("stage", _string),  # list | probe | fetch | decode | analysis | commit
    ("analysis", _string),  # the analysis of an `analysis` row, null otherwise
    ("interval_start", pa.timestamp("us", tz="UTC")),
    ("interval_s", pa.float64()),  # seconds the interval lasted (the last is partial)
    ("workers", pa.int32()),  # processes doing the stage's work (decode slots, actors)
    ("items_in", pa.int64()),  # videos (list, probe) or units handed to the stage
    ("items_out", pa.int64()),  # ...and finished by it
    ("frames_in", pa.int64()),
    ("frames_out", pa.int64()),
    ("busy_s", pa.float64()),  # worker-seconds working, measured in the workers
    ("idle_s", pa.float64()),  # worker-seconds with nothing to do (decode, model actors)
    ("blocked_s", pa.float64()),  # seconds decode was held back by a full frame buffer
    ("frames_per_s", pa.float64()),  # frames_out / interval_s
    ("bytes", pa.int64()),  # fetch: bytes copied from storage
    ("queue_p50", pa.int64()),  # items waiting for the stage, sampled every 0.2 s
    ("queue_p95", pa.int64()),
    ("queue_max", pa.int64()),
    ("buffer_bytes", pa.int64()),  # decode: most bytes of decoded frames held for models
    ("utilisation", pa.float64()),  # busy_s / (workers × interval_s), 0-1
    ("gpu_utilisation", pa.float64()),  # model actors on GPUs: mean NVML reading, 0-1
    ("gpu_memory_bytes", pa.int64()),  # model actors on GPUs: peak allocated
])

# One row per (video content, output table, analysis_key) event: a run planned
# it (pending), finished it (done), or it failed (failed; quarantined once its
# attempts reach the run's --max-attempts). The `video_status` view keeps each
# key's latest event.
STATUS_LOG = pa.schema([
    ("uri", _string),
    ("content_key", _string),
    ("size_bytes", pa.int64()),
    ("etag", _string),
    ("analysis", _string),  # the output table: frame_labels, clip_labels, shots...
    ("model", _string),
    ("model_version", _string),
    ("analysis_key", _string),
    ("status", _string),  # pending | done | failed | quarantined
    ("error", _string),  # the reason of a failure, null otherwise
    ("attempts", pa.int32()),  # failed attempts so far (this one included)
    ("run_id", _string),
    ("updated_at", pa.timestamp("us", tz="UTC")),  # when the event was recorded
])

# The lake's own tables; analyses declare theirs (pipeline/analyses/kinds.py).
CORE_TABLES: dict[str, pa.Schema] = {
    "videos": VIDEOS,
    "runs": RUNS,
    "run_stages": RUN_STAGES,
    "status_log": STATUS_LOG,
}


def analysis_tables() -> dict[str, tuple[pa.Schema, str | None]]:
    """Table -> (schema, partition column) of every table an analysis writes.

    Their rows belong to one (video content, analysis version): they carry
    content_key and analysis_key. A model's tables are split into hive
    partitions by model_version: each version's rows go to
    LAKE/<table>/model_version=<v>/, so old versions stay queryable beside new
    ones and can be dropped or compacted one by one (the column stays in the
    files too).
    """
    from pipeline.analyses.kinds import KINDS  # imported late: analyses import this module

    tables: dict[str, tuple[pa.Schema, str | None]] = {}
    for kind in KINDS.values():  # several kinds may write one table (shots): if they agree
        for name, schema in kind.tables.items():
            entry = (schema, "model_version" if kind.family else None)
            if tables.setdefault(name, entry) != entry:
                raise TypeError(f"analysis {kind.name} writes table {name} with another "
                                "schema or partitioning than an earlier kind does")
    return tables


def all_tables() -> dict[str, pa.Schema]:
    """Every table of a lake: the lake's own and the analyses'."""
    return {**CORE_TABLES, **{name: s for name, (s, _) in analysis_tables().items()}}


def row_tables() -> tuple[str, ...]:
    """The tables analyses write (rows stamped with content and analysis keys)."""
    return tuple(analysis_tables())


def partition_column(table: str) -> str | None:
    entry = analysis_tables().get(table)
    return entry[1] if entry else None
