"""Ray Data pipelines that turn labelled videos into decoded clips.

A video is probed once per training run (one Ray Data pass); each epoch a
worker streams its shard of the epoch's items through `decode_clip_batch`,
which decodes with the labelling path's own decoder (decord, PyAV fallback).
Memory is bounded by the stream's batches, never by the dataset: Ray Data
pulls only a few blocks ahead of the trainer.

Items are plain dicts so that Ray Data can carry them:
uri, size_bytes, etag, n_frames, fps, width, height, label (class index).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipeline.config import FrameSize
from pipeline.corpus.video_ref import VideoRef
from pipeline.plan.work_unit import WorkUnit
from pipeline.storage_options import StorageOptions
from pipeline.training.clip_sampling import ClipRecipe, augment, clip_indices

log = logging.getLogger(__name__)

# Logical CPUs a decode task asks Ray for: decoding small clips is light and
# the trainer workers hold most CPUs; Ray only counts, the OS shares.
DECODE_CPUS = 0.25
DECODE_BATCH = 4  # clips per decode task call


def _ref(item: dict[str, Any]) -> VideoRef:
    return VideoRef(str(item["uri"]), int(item["size_bytes"]), str(item["etag"]))


def _probe_batch(batch: dict[str, np.ndarray], storage: StorageOptions,
                 keyframes: bool) -> dict[str, np.ndarray]:
    from pipeline.plan.probe import probe_video

    infos = [probe_video(VideoRef(str(u), int(s), str(e)), storage, keyframes=keyframes)
             for u, s, e in zip(batch["uri"], batch["size_bytes"], batch["etag"], strict=True)]
    keys = {"keyframes": _keyframe_column(infos)} if keyframes else {}
    return {**batch, **keys,
            "n_frames": np.asarray([i.n_frames for i in infos], np.int64),
            "fps": np.asarray([i.fps for i in infos], np.float64),
            "width": np.asarray([i.width for i in infos], np.int64),
            "height": np.asarray([i.height for i in infos], np.int64),
            "error": np.asarray([i.error or ("no frames" if i.n_frames <= 0 else "")
                                 for i in infos], object)}


def _keyframe_column(infos: list[Any]) -> np.ndarray:
    """object [N]: each video's keyframe indices, a list of ints."""
    column = np.empty(len(infos), object)
    for row, info in enumerate(infos):
        column[row] = info.keyframes.tolist() if info.keyframes is not None else []
    return column


def quiet_data_context() -> Any:
    """Ray Data's context without progress bars: a worker's stream starts twice
    per epoch, and each bar would print to the driver's console."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    return context


def probe_items(items: list[dict[str, Any]], storage: StorageOptions, *,
                keyframes: bool = False) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Probe every video once, in parallel on the cluster: (usable items with
    their stream's n_frames, fps, width, height, and with `keyframes` their
    keyframe indices; [(uri, reason)] of the rest)."""
    import ray

    quiet_data_context()
    rows = ray.data.from_items(items).map_batches(
        _probe_batch,  # type: ignore[arg-type]  # Ray's stubs miss fn_kwargs parameters
        fn_kwargs={"storage": storage, "keyframes": keyframes}, batch_size=DECODE_BATCH,
        batch_format="numpy", num_cpus=DECODE_CPUS).take_all()
    good = [{k: _plain(v) for k, v in r.items() if k != "error"} for r in rows if not r["error"]]
    bad = [(str(r["uri"]), str(r["error"])) for r in rows if r["error"]]
    return sorted(good, key=lambda r: r["uri"]), sorted(bad)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def clip_seed(seed: int, epoch: int, uri: str) -> int:
    """The seed of one clip's random choices: fixed by (run seed, epoch, video)."""
    raw = f"{seed}\0{epoch}\0{uri}".encode()
    return int(hashlib.sha1(raw).hexdigest()[:15], 16)


def epoch_shard(items: list[dict[str, Any]], *, epoch: int, seed: int, rank: int, world: int,
                shuffle: bool, balance: bool = False) -> list[dict[str, Any]]:
    """This worker's items for one epoch, each with its clip seed.

    Training items are reshuffled every epoch (a permutation drawn from the
    run seed and the epoch), or with `balance` drawn with replacement, each
    class equally often (class_balance.balanced_draw); every worker gets the
    same number, because DDP steps all workers together; validation keeps
    every item once. A video drawn twice gets a clip seed per draw, so its
    clips differ (another start frame, another crop)."""
    from pipeline.training.class_balance import balanced_draw

    order = np.arange(len(items))
    if balance:
        order = balanced_draw([i["label"] for i in items], seed=seed, epoch=epoch)
    elif shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(items))
    if shuffle or balance:
        order = order[: len(items) // world * world]
    drawn: dict[int, int] = {}
    seeds = []
    for i in order:
        uri, again = items[i]["uri"], drawn.get(int(i), 0)
        drawn[int(i)] = again + 1
        seeds.append(clip_seed(seed, epoch, uri if not again else f"{uri}#{again}"))
    return [{**items[i], "seed": s} for i, s in zip(order, seeds, strict=True)][rank::world]


def decode_clip_batch(batch: dict[str, np.ndarray], recipe: ClipRecipe,
                      storage: StorageOptions) -> dict[str, np.ndarray]:
    """Decode one clip per item: {"clip": uint8 [N, T, H, W, 3], "label": int64 [N],
    "ok": bool [N]}. A video that fails to decode gives a zero clip with ok False
    (the trainer skips and counts it), never an exception."""
    clips, labels, oks = [], [], []
    for row in _rows(batch):
        clip, label, ok = _decode_one(row, recipe, storage)
        clips.append(clip)
        labels.append(label)
        oks.append(ok)
    return {"clip": np.stack(clips), "label": np.asarray(labels, np.int64),
            "ok": np.asarray(oks, bool)}


def _rows(batch: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    for i in range(len(batch["uri"])):
        yield {k: _plain(v[i]) for k, v in batch.items()}


def _decode_one(row: dict[str, Any], recipe: ClipRecipe,
                storage: StorageOptions) -> tuple[np.ndarray, int, bool]:
    from pipeline.decode.unit_decoder import DecodeSettings, decode_unit

    rng = np.random.default_rng(int(row["seed"])) if recipe.augment else None
    keyframes = np.asarray(row["keyframes"], np.int64) if "keyframes" in row else None
    frames = clip_indices(recipe, int(row["n_frames"]), rng, float(row["fps"]), keyframes)
    size = FrameSize(recipe.width, recipe.height)
    unit = WorkUnit(unit_id=f"train-{row['seed']}", video=_ref(row), unit_index=0,
                    frame_indices=tuple(sorted(set(frames))), fps=float(row["fps"]),
                    start_frame=frames[0], end_frame=frames[-1] + 1, size=size,
                    source_size=(int(row["width"]), int(row["height"])),
                    keyframes_only=bool(recipe.sample and recipe.sample.needs_keyframes))
    decoded = decode_unit(DecodeSettings(size=size, storage=storage), unit)
    label = int(row["label"])
    if not decoded.ok:
        log.warning("skipping %s: %s", row["uri"], decoded.error)
        return np.zeros((recipe.clip_len, recipe.height, recipe.width, 3), np.uint8), label, False
    clip = decoded.take(frames)
    if rng is not None:
        clip, label = augment(clip, label, recipe, rng)
    return clip, label, True


def clip_batches(shard: list[dict[str, Any]], recipe: ClipRecipe, storage: StorageOptions,
                 batch_size: int) -> Iterator[dict[str, Any]]:
    """Torch batches of decoded clips for one worker's epoch shard, in shard order
    (preserve_order keeps a seeded run reproducible)."""
    import ray

    if not shard:
        return iter(())
    quiet_data_context().execution_options.preserve_order = True
    dataset = ray.data.from_items(shard).map_batches(
        decode_clip_batch,  # type: ignore[arg-type]  # Ray's stubs miss fn_kwargs parameters
        fn_kwargs={"recipe": recipe, "storage": storage},
        batch_size=DECODE_BATCH, batch_format="numpy", num_cpus=DECODE_CPUS)
    return iter(dataset.iter_torch_batches(batch_size=batch_size, prefetch_batches=2))
