"""Contact sheets of a lake's latest shots: read `latest_shots` with DuckDB,
decode each shot's first, middle and last frame with the project's decoder
(decord, PyAV where decord is wrong; local or S3), draw them, write PNGs.

Memory stays bounded whatever the lake: the shot rows stream from DuckDB in
batches, and a video is drawn a page at a time (at most MAX_SHOTS_PER_PAGE
shots, one decode pass over the page's frames, sorted), so a page's
thumbnails are the most held at once.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.config import FrameSize
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.unit_decoder import DecodeSettings, decode_unit
from pipeline.errors import ConfigError, StorageError
from pipeline.plan.work_unit import WorkUnit
from pipeline.report.contact_sheet import ShotRow, draw_sheet, shots_per_page
from pipeline.report.sheet_files import page_file, sheet_name, write_png
from pipeline.storage import is_remote
from pipeline.storage_options import StorageOptions

_FETCH_ROWS = 4096  # shot rows per batch from DuckDB


@dataclass(frozen=True)
class SheetRequest:
    """Which sheets to draw, and how.

    `videos`: the first N videos by uri (None: all); `detector`: only shots of
    that detector (None: each detector of a video gets its own sheet);
    `uri_glob`: only videos whose uri matches (DuckDB GLOB: `*`, `?`, `[...]`);
    `thumb_width`: thumbnail width in pixels (height keeps the video's aspect).
    """

    output: str
    videos: int | None = None
    detector: str | None = None
    uri_glob: str | None = None
    thumb_width: int = 160
    storage: StorageOptions = field(default_factory=StorageOptions)


@dataclass(frozen=True)
class SheetVideo:
    """One video and detector to draw: its identity, displayed size (pixels),
    frame rate, and how many shots it has."""

    ref: VideoRef
    detector: str
    width: int
    height: int
    fps: float
    n_shots: int
    several_detectors: bool

    @property
    def name(self) -> str:
        return sheet_name(self.ref.uri, self.detector if self.several_detectors else None)


@dataclass(frozen=True)
class SheetOutcome:
    """A page written (`path`, its shots [first, last] of `n_shots`), or a video
    that could not be drawn (`path` None); `error` says what went wrong (a page
    can be written with some frames missing, grey, and an error)."""

    uri: str
    detector: str
    path: str | None
    first_shot: int = 0
    last_shot: int = 0
    n_shots: int = 0
    error: str | None = None


def thumb_size(width: int, height: int, thumb_width: int) -> FrameSize:
    """Thumbnail size (pixels, even sides) for a video displayed at width x height:
    `thumb_width` wide, keeping the aspect, height within [8, 2 * thumb_width]
    (16:9 when the size is unknown)."""
    aspect = height / width if width > 0 and height > 0 else 9 / 16
    tall = round(thumb_width * aspect / 2) * 2
    return FrameSize(thumb_width, min(max(tall, 8), 2 * thumb_width))


def prepare_output(folder: str) -> None:
    """Create the local output folder; ConfigError for an s3:// one, StorageError
    when it cannot be made."""
    if is_remote(folder):
        raise ConfigError(f"--output {folder}: sheets are written to a local folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create --output {folder}: {exc}") from None


_SHOTS_SQL = """
WITH picked AS (
    SELECT DISTINCT uri FROM latest_shots WHERE {where} ORDER BY uri {limit}
), detectors AS (
    SELECT uri, count(DISTINCT detector) AS n FROM latest_shots WHERE {where} GROUP BY uri
)
SELECT s.uri, s.detector, v.size_bytes, v.etag, v.width, v.height, v.fps,
       count(*) OVER (PARTITION BY s.uri, s.detector) AS n_shots, d.n > 1 AS several,
       s.shot_index, s.start_frame, s.end_frame, s.start_s, s.end_s
FROM latest_shots s JOIN latest_videos v USING (uri, content_key)
JOIN detectors d USING (uri)
WHERE s.uri IN (SELECT uri FROM picked) AND {where_s}
ORDER BY s.uri, s.detector, s.shot_index
"""


def _filters(request: SheetRequest, alias: str = "") -> tuple[str, list[Any]]:
    """The WHERE condition of --detector and --uri on `alias`'s columns, and its parameters."""
    where, params = ["true"], []
    if request.detector is not None:
        where.append(f"{alias}detector = ?")
        params.append(request.detector)
    if request.uri_glob is not None:
        where.append(f"{alias}uri GLOB ?")
        params.append(request.uri_glob)
    return " AND ".join(where), params


def _query(request: SheetRequest) -> tuple[str, list[Any]]:
    """The SQL of the shot rows to draw, in (uri, detector, shot) order, and its
    parameters."""
    where, params = _filters(request)
    where_s, _ = _filters(request, "s.")
    limit = f"LIMIT {int(request.videos)}" if request.videos is not None else ""
    return _SHOTS_SQL.format(where=where, limit=limit, where_s=where_s), params * 3


def _rows(con: Any, request: SheetRequest) -> Iterator[tuple[Any, ...]]:
    """The shot rows (see _SHOTS_SQL's columns), streamed in batches."""
    sql, params = _query(request)
    cursor = con.execute(sql, params)
    while batch := cursor.fetchmany(_FETCH_ROWS):
        yield from batch


def _video(row: tuple[Any, ...]) -> SheetVideo:
    uri, detector, size_bytes, etag, width, height, fps, n_shots, several = row[:9]
    return SheetVideo(VideoRef(uri, int(size_bytes or 0), etag or ""), detector,
                      int(width or 0), int(height or 0), float(fps or 0.0), int(n_shots),
                      bool(several))


def _shot(row: tuple[Any, ...]) -> ShotRow:
    index, start, end, start_s, end_s = row[9:14]
    return ShotRow(int(index), int(start), int(end), float(start_s), float(end_s))


def require_shots(con: Any, lake: str) -> None:
    """ConfigError unless the connection has a `latest_shots` view."""
    found = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'latest_shots'"
                        ).fetchone()
    if not found or not found[0]:
        raise ConfigError(f"lake {lake} has no shots: run `vidlake label --analysis shots` first")


def contact_sheets(con: Any, request: SheetRequest) -> Iterator[SheetOutcome]:
    """Draw and write the sheets of every selected video, a page at a time;
    one outcome per page written, and one per video that failed. `con`: a
    DuckDB connection with the lake's views (pipeline.query.duckdb_views)."""
    rows = _rows(con, request)
    for _, group in itertools.groupby(rows, key=lambda row: (row[0], row[1])):
        first = next(group)
        yield from video_sheets(_video(first), (_shot(r) for r in itertools.chain([first], group)),
                                request)


def video_sheets(video: SheetVideo, shots: Iterable[ShotRow],
                 request: SheetRequest) -> Iterator[SheetOutcome]:
    """The pages of one video's sheet; stops at the first page with no frame decoded."""
    size = thumb_size(video.width, video.height, request.thumb_width)
    per_page = shots_per_page(size.height)
    pages = (video.n_shots + per_page - 1) // per_page
    settings = DecodeSettings(size=size, storage=request.storage)
    for page, chunk in enumerate(_chunks(shots, per_page), start=1):
        outcome = _page(video, chunk, (page, pages), settings, request.output)
        yield outcome
        if outcome.path is None:
            return


def _chunks(shots: Iterable[ShotRow], size: int) -> Iterator[list[ShotRow]]:
    """Consecutive lists of `size` shots (the last may be shorter)."""
    it = iter(shots)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _page(video: SheetVideo, shots: list[ShotRow], page: tuple[int, int],
          settings: DecodeSettings, output: str) -> SheetOutcome:
    """Decode, draw and write one page of a video's sheet."""
    decoded = decode_shot_frames(video, shots, settings)
    outcome = SheetOutcome(video.ref.uri, video.detector, None, shots[0].shot_index,
                           shots[-1].shot_index, video.n_shots, decoded.error)
    if decoded.frame_indices.size == 0:
        return outcome
    frames = dict(zip(decoded.frame_indices.tolist(), decoded.frames, strict=True))
    heading = (video.ref.uri, f"shots {shots[0].shot_index}-{shots[-1].shot_index} of "
               f"{video.n_shots} ({video.detector} detector), page {page[0]} of {page[1]}")
    image = draw_sheet(heading, shots, frames, (settings.size.width, settings.size.height))
    path = write_png(image, output, page_file(video.name, page[0]))
    return replace(outcome, path=path)


def decode_shot_frames(video: SheetVideo, shots: list[ShotRow],
                       settings: DecodeSettings) -> DecodedUnit:
    """The first, middle and last frame of each shot, decoded in one pass (indices
    sorted) at `settings.size`: frames uint8 [F, H, W, 3]; never raises for a
    bad or missing video (DecodedUnit.error says why)."""
    indices = tuple(sorted({f for shot in shots for f in shot.frames}))
    unit = WorkUnit(unit_id=f"thumbnails-{video.ref.content_key}", video=video.ref,
                    unit_index=0, frame_indices=indices, fps=video.fps,
                    start_frame=indices[0], end_frame=indices[-1] + 1, size=settings.size,
                    source_size=(video.width, video.height))
    return decode_unit(settings, unit)
