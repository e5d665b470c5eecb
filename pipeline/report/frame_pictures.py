"""Pictures of a sample of a run's videos for the report: shots as thumbnail
strips (the contact-sheet drawing of pipeline/report/contact_sheet.py) and
detections drawn on their frames (boxes and labels, Pillow). Frames are
decoded with the project's decoder, local or S3; a video that cannot be
decoded becomes a picture with an error, never an exception.

Bounded: at most MAX_SAMPLE videos, MAX_STRIP_SHOTS shots per strip,
MAX_DETECTION_FRAMES frames per video, frames at most MAX_FRAME_SIDE pixels wide.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from pipeline.config import FrameSize
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.unit_decoder import DecodeSettings, decode_unit
from pipeline.errors import StorageError
from pipeline.plan.work_unit import WorkUnit
from pipeline.report.contact_sheet import ShotRow, draw_sheet, fit
from pipeline.report.thumbnails import SheetVideo, decode_shot_frames, thumb_size
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors

MAX_SAMPLE = 50  # videos per section
MAX_STRIP_SHOTS = 12  # shots drawn per video
MAX_DETECTION_FRAMES = 2  # frames drawn per video
MAX_BOXES = 50  # boxes drawn per frame
MAX_FRAME_SIDE = 480  # pixels: detection frames are shrunk to this width
MIN_FRAME_SIDE = 240  # pixels: and a smaller video's frames grown to this one
STRIP_WIDTH = 120  # pixels of a shot thumbnail
BOX_COLOUR = (255, 40, 40)


@dataclass(frozen=True)
class Picture:
    """One video's picture: PNG bytes (None when nothing could be decoded), what
    it shows (the numbers it was drawn from) and the error, if any."""

    uri: str
    png: bytes | None
    caption: str
    error: str | None = None
    data: list[dict[str, Any]] = field(default_factory=list)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


_VIDEO_SQL = """SELECT uri, any_value(size_bytes), any_value(etag), any_value(width),
    any_value(height), any_value(fps), any_value(content_key)
FROM videos WHERE run_id = ? AND status = 'ok' AND uri IN (SELECT uri FROM {table}
    WHERE run_id = ?) GROUP BY uri ORDER BY uri LIMIT ?"""


def _sample(con: Any, table: str, run_id: str, n: int) -> list[tuple[Any, ...]]:
    """The first `n` (at most MAX_SAMPLE) ok videos of the run with rows in `table`, by uri."""
    return con.execute(_VIDEO_SQL.format(table=table),
                       [run_id, run_id, min(n, MAX_SAMPLE)]).fetchall()


def _errors() -> tuple[type[BaseException], ...]:
    return (StorageError, OSError, *storage_errors())


# -- shots ----------------------------------------------------------------------
def shot_strips(con: Any, run_id: str, n: int, storage: StorageOptions) -> list[Picture]:
    """A strip (contact sheet) of the first MAX_STRIP_SHOTS shots of each of
    the first `n` videos of the run that have shots (one detector each)."""
    pictures = []
    for uri, size_bytes, etag, width, height, fps, content_key in _sample(
            con, "shots", run_id, n):
        rows = con.execute(
            "SELECT shot_index, start_frame, end_frame, start_s, end_s, detector, "
            "count(*) OVER () FROM shots WHERE run_id = ? AND uri = ? AND content_key = ? "
            "AND detector = (SELECT min(detector) FROM shots WHERE run_id = ? AND uri = ?) "
            f"ORDER BY shot_index LIMIT {MAX_STRIP_SHOTS}",
            [run_id, uri, content_key, run_id, uri]).fetchall()
        if not rows:
            continue
        video = SheetVideo(VideoRef(str(uri), int(size_bytes or 0), str(etag or "")),
                           str(rows[0][5]), int(width or 0), int(height or 0),
                           float(fps or 0.0), int(rows[0][6]), False)
        shots = [ShotRow(int(r[0]), int(r[1]), int(r[2]), float(r[3]), float(r[4]))
                 for r in rows]
        pictures.append(_strip(video, shots, storage))
    return pictures


def _strip(video: SheetVideo, shots: list[ShotRow], storage: StorageOptions) -> Picture:
    size = thumb_size(video.width, video.height, STRIP_WIDTH)
    caption = (f"shots {shots[0].shot_index}-{shots[-1].shot_index} of {video.n_shots} "
               f"({video.detector} detector)")
    data = [{"shot": s.shot_index, "start_frame": s.start_frame, "end_frame": s.end_frame,
             "start_s": s.start_s, "end_s": s.end_s} for s in shots]
    try:
        decoded = decode_shot_frames(video, shots, DecodeSettings(size=size, storage=storage))
    except _errors() as exc:
        return Picture(video.ref.uri, None, caption, str(exc), data)
    if decoded.frame_indices.size == 0:
        return Picture(video.ref.uri, None, caption, decoded.error or "no frame decoded", data)
    frames = dict(zip(decoded.frame_indices.tolist(), decoded.frames, strict=True))
    image = draw_sheet((ascii_text(video.ref.uri), caption), shots, frames,
                       (size.width, size.height))
    return Picture(video.ref.uri, _png(image), caption, decoded.error, data)


# -- detections -----------------------------------------------------------------
def detection_frames(con: Any, run_id: str, n: int, storage: StorageOptions) -> list[Picture]:
    """For each of the first `n` videos of the run with detections: its
    MAX_DETECTION_FRAMES frames with the most boxes, boxes and labels drawn."""
    pictures = []
    for uri, size_bytes, etag, width, height, fps, content_key in _sample(
            con, "detections", run_id, n):
        frames = [int(r[0]) for r in con.execute(
            "SELECT frame_index, count(*) AS n FROM detections WHERE run_id = ? AND uri = ? "
            "AND content_key = ? GROUP BY ALL ORDER BY n DESC, frame_index "
            f"LIMIT {MAX_DETECTION_FRAMES}", [run_id, uri, content_key]).fetchall()]
        boxes = con.execute(
            "SELECT frame_index, label, score, x1, y1, x2, y2 FROM detections "
            "WHERE run_id = ? AND uri = ? AND content_key = ? AND list_contains(?, frame_index) "
            "ORDER BY frame_index, score DESC", [run_id, uri, content_key, frames]).fetchall()
        ref = VideoRef(str(uri), int(size_bytes or 0), str(etag or ""))
        pictures.append(_detections(ref, (int(width or 0), int(height or 0)), float(fps or 0),
                                    sorted(frames), boxes, storage))
    return pictures


def _detections(ref: VideoRef, shown: tuple[int, int], fps: float, frames: list[int],
                boxes: list[tuple[Any, ...]], storage: StorageOptions) -> Picture:
    per_frame: dict[int, list[tuple[Any, ...]]] = {f: [] for f in frames}
    for box in boxes:
        if len(per_frame[int(box[0])]) < MAX_BOXES:
            per_frame[int(box[0])].append(box)
    data = [{"frame": int(b[0]), "label": str(b[1]), "score": round(float(b[2]), 3),
             "box": [round(float(v), 1) for v in b[3:7]]} for f in frames for b in per_frame[f]]
    caption = f"frames {', '.join(map(str, frames))}: {len(data)} boxes"
    width, height = shown
    size = frame_size(width, height)
    unit = WorkUnit(unit_id=f"report-{ref.content_key}", video=ref, unit_index=0,
                    frame_indices=tuple(frames), fps=fps, start_frame=frames[0],
                    end_frame=frames[-1] + 1, size=size, source_size=shown)
    try:
        decoded = decode_unit(DecodeSettings(size=size, storage=storage), unit)
    except _errors() as exc:
        return Picture(ref.uri, None, caption, str(exc), data)
    if decoded.frame_indices.size == 0:
        return Picture(ref.uri, None, caption, decoded.error or "no frame decoded", data)
    scale = (size.width / width if width else 1.0, size.height / height if height else 1.0)
    images = [_draw_boxes(Image.fromarray(frame, "RGB"), per_frame.get(int(index), []),
                          scale, f"frame {int(index)}")
              for index, frame in zip(decoded.frame_indices, decoded.frames, strict=True)]
    return Picture(ref.uri, _png(_side_by_side(images)), caption, decoded.error, data)


def _draw_boxes(image: Image.Image, boxes: list[tuple[Any, ...]], scale: tuple[float, float],
                title: str) -> Image.Image:
    """Boxes (x1, y1, x2, y2 in the video's displayed pixels) scaled onto `image`,
    each with its label and score; the frame's title on top."""
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for _, label, score, x1, y1, x2, y2 in boxes:
        corners = (x1 * scale[0], y1 * scale[1], x2 * scale[0] - 1, y2 * scale[1] - 1)
        draw.rectangle(corners, outline=BOX_COLOUR, width=2)
        text = fit(ascii_text(f"{label} {float(score):.2f}"), font, image.width)
        draw.text((corners[0] + 2, max(0.0, corners[1] - 11)), text, fill=BOX_COLOUR, font=font)
    draw.text((2, image.height - 12), title, fill=(255, 255, 0), font=font)
    return image


def _side_by_side(images: list[Image.Image], pad: int = 4) -> Image.Image:
    width = sum(i.width for i in images) + pad * (len(images) + 1)
    height = max(i.height for i in images) + 2 * pad
    out = Image.new("RGB", (width, height), (255, 255, 255))
    x = pad
    for image in images:
        out.paste(image, (x, pad))
        x += image.width + pad
    return out


def ascii_text(text: str) -> str:
    """`text` with every non-ASCII character a `?` (Pillow's default font is ASCII)."""
    return text.encode("ascii", "replace").decode("ascii")


def frame_size(width: int, height: int) -> FrameSize:
    """The size detection frames are drawn at: the video's width within
    [MIN_FRAME_SIDE, MAX_FRAME_SIDE], its aspect."""
    return thumb_size(width, height, min(MAX_FRAME_SIDE, max(MIN_FRAME_SIDE, width // 2 * 2)))
