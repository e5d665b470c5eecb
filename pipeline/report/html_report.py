"""A run's report as one self-contained HTML file: inline CSS, every picture a
`data:image/png;base64,...` URI, no script, no network, so it opens from disk.

Every string from the lake (uris, labels, errors, config values) goes through
`esc` (html.escape, quotes included): they are untrusted. Each chart has the
numbers it was drawn from beside it, as a table whose rows carry `data-`
attributes, so a reader (or a test) can check the picture against the table.

Sections, in order: run summary (with the bottleneck verdict and the cost
figures); stages (totals per stage, utilisation and frames/s per stage over
time) and throughput; failures by reason; labels per model version; shots;
detections; training curves; evaluation. A section whose table (or column)
the lake lacks says so in one line.
"""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError, StorageError
from pipeline.report import figures, report_data, stage_data
from pipeline.report.frame_pictures import Picture, detection_frames, shot_strips
from pipeline.report.report_data import RunInfo
from pipeline.report.stage_data import StageTotals, TimelinePoint
from pipeline.storage import is_remote, write_local_atomic
from pipeline.storage_options import StorageOptions

NO_STAGES = "no stage metrics recorded for this run"
NOT_RECORDED = "not recorded"
_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
td.n{text-align:right}.note{color:#666;font-style:italic}.err{color:#b00}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}code{font-size:.9em}
.bottleneck{font-size:1.1em;padding:.4em .6em;background:#fff6dc;border-left:4px solid #e0a800}"""


def esc(value: object) -> str:
    """`value` as text, HTML-escaped (quotes too): safe in text and attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def img(png: bytes, alt: str, **data: object) -> str:
    """An <img> with the PNG inline and `data-*` attributes."""
    attributes = "".join(f' data-{esc(k.replace("_", "-"))}="{esc(v)}"'
                         for k, v in data.items())
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{esc(alt)}"{attributes} src="data:image/png;base64,{encoded}">'


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, table_id: str = "",
          row_data: Iterable[dict[str, object]] | None = None) -> str:
    """An HTML table, every cell escaped; numbers right-aligned; `row_data`:
    `data-*` attributes per row."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    extras = list(row_data) if row_data is not None else None
    for k, row in enumerate(rows):
        attributes = "".join(f' data-{esc(a.replace("_", "-"))}="{esc(v)}"'
                             for a, v in (extras[k] if extras else {}).items())
        cells = "".join(f'<td class="n">{_number(c)}</td>' if isinstance(c, int | float)
                        and not isinstance(c, bool) else f"<td>{esc(c)}</td>" for c in row)
        body.append(f"<tr{attributes}>{cells}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f"<table{ident}><tr>{head}</tr>{''.join(body)}</table>"


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3f}"


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


@dataclass(frozen=True)
class ReportRequest:
    """What to report: the lake, the run (None: the newest), the output file,
    the sample size of the picture sections, where training metrics are."""

    lake: str
    output: str
    run_id: str | None = None
    videos: int = 6
    training_dir: str | None = None
    storage: StorageOptions = field(default_factory=StorageOptions)


# -- sections -------------------------------------------------------------------
COST_LABELS = {"video_hours": "video-hours", "cpu_hours": "CPU-hours",
               "gpu_hours": "GPU-hours",
               "video_hours_per_cpu_hour": "video-hours per CPU-hour",
               "video_hours_per_gpu_hour": "video-hours per GPU-hour"}
_PER_HOUR = {"video_hours_per_cpu_hour": "cpu_hours", "video_hours_per_gpu_hour": "gpu_hours"}


def cost_text(run: RunInfo, column: str) -> str:
    """A cost figure as shown: 4 significant digits; NOT_RECORDED when the
    run's row lacks it, except a per-hour figure of a run that held no such
    hours (a CPU-only run has no video-hours per GPU-hour)."""
    value = run.cost.get(column)
    if value is not None:
        return f"{value:.4g}"
    hours = run.cost.get(_PER_HOUR.get(column, ""))
    if hours is not None and hours <= 0:
        return f"none: the run held no {COST_LABELS[_PER_HOUR[column]]}"
    return NOT_RECORDED


def bottleneck_line(run: RunInfo) -> str:
    """The run's bottleneck verdict in its own paragraph (id `bottleneck`), or
    a line saying it was not recorded."""
    if run.bottleneck is None:
        return (f'<p id="bottleneck" class="bottleneck" data-recorded="false">bottleneck: '
                f"{esc(NOT_RECORDED)} for this run (its row in runs predates stage metrics)</p>")
    return (f'<p id="bottleneck" class="bottleneck" data-recorded="true">'
            f"<b>{esc(run.bottleneck)}</b></p>")


def summary_section(run: RunInfo) -> str:
    """The run's row: a one-line outcome, the bottleneck verdict, a table of its
    fields, counts and cost figures, and its config's analyses."""
    counts = run.counts
    ok, failed = counts.get("videos_ok", 0), counts.get("videos_failed", 0)
    verdict = (f"{run.status}: {ok} of {counts.get('videos', 0)} videos ok, {failed} failed, "
               f"{counts.get('frames', 0):,} frames")
    rows: list[tuple[str, object]] = [
        ("run_id", run.run_id), ("status", run.status), ("source", run.source),
        ("started_at", run.started_at), ("finished_at", run.finished_at),
        ("wall_s", round(run.wall_s, 3) if run.wall_s is not None else None),
        ("frames_per_s", round(run.frames_per_s, 3) if run.frames_per_s is not None
         else None), ("code_version", run.code_version),
        *((f"counts.{k}", v) for k, v in counts.items()),
        *((COST_LABELS[c], cost_text(run, c)) for c in report_data.COST_COLUMNS)]
    row_data: list[dict[str, object]] = [{"field": k} for k, _ in rows]
    for data, column in zip(row_data[-len(COST_LABELS):], report_data.COST_COLUMNS,
                            strict=True):  # the cost rows: the column and its exact value
        data.update(field=column, value=run.cost.get(column))
    analyses = [(a.get("kind"), (a.get("model") or {}).get("name")
                 if isinstance(a.get("model"), dict) else a.get("model"), a.get("sample"),
                 a.get("size"), json.dumps(a.get("options") or {}, sort_keys=True),
                 ", ".join(map(str, a.get("outputs") or []))) for a in run.analyses]
    return (f'<h2 id="summary">Run summary</h2><p id="verdict"><b>{esc(verdict)}</b></p>'
            + bottleneck_line(run)
            + table(("field", "value"), rows, table_id="run-summary", row_data=row_data)
            + "<h3>Analyses (resolved config)</h3>"
            + (table(("kind", "model", "sample", "size", "options", "outputs"), analyses,
                     table_id="analyses") if analyses else note("the run's config lists no "
                                                                "analyses")))


_TOTAL_HEADERS = ("stage", "analysis", "workers", "items in", "items out", "frames out",
                  "busy s", "idle s", "blocked s", "bytes", "utilisation")


def stage_totals_table(totals: list[StageTotals]) -> str:
    """The per-stage totals, a row each (data- attributes: the exact sums)."""
    rows = [(t.stage, t.analysis, t.workers, t.items_in, t.items_out, t.frames_out,
             t.busy_s, t.idle_s, t.blocked_s, t.bytes,
             None if t.utilisation is None else f"{t.utilisation:.1%}") for t in totals]
    data = [dict(vars(t)) for t in totals]  # None: an empty attribute
    return table(_TOTAL_HEADERS, rows, table_id="stage-totals", row_data=data)


def _series(points: list[TimelinePoint], value: str) -> dict[str, list[figures.Step]]:
    """Per stage (its chart label): the (from s, to s, `value`) steps that have
    that value; a stage whose label is taken gets "(<stage>)" after it."""
    series: dict[tuple[str, str | None], list[figures.Step]] = {}
    for p in points:
        number = getattr(p, value)
        if number is not None:
            series.setdefault((p.stage, p.analysis), []).append((p.start_s, p.end_s,
                                                                 float(number)))
    labelled: dict[str, list[figures.Step]] = {}
    for (stage, analysis), steps in series.items():
        label = stage_data.stage_label(stage, analysis)
        while label in labelled:
            label += f" ({stage})"
        labelled[label] = steps
    return labelled


def timeline_charts(points: list[TimelinePoint]) -> str:
    """Utilisation and frames/s per stage over time, and the numbers drawn."""
    if not points:
        return note("no interval times recorded in run_stages: no stage timeline")
    busy = _series(points, "utilisation")
    frames = {k: v for k, v in _series(points, "frames_per_s").items() if any(s[2] for s in v)}
    numbers = table(("stage", "analysis", "from s", "to s", "frames out", "busy s",
                     "utilisation", "frames/s"),
                    [(p.stage, p.analysis, round(p.start_s, 2), round(p.end_s, 2),
                      p.frames_out, p.busy_s, p.utilisation, p.frames_per_s) for p in points],
                    table_id="stage-timeline",
                    row_data=[dict(vars(p)) for p in points])
    return (img(figures.timeline_chart(busy, "utilisation per stage", "busy share of workers",
                                       1.05), "stage utilisation over time",
                chart="stage-utilisation", series=len(busy))
            + img(figures.timeline_chart(frames, "frames/s per stage", "frames/s"),
                  "frames per second per stage over time", chart="stage-frames",
                  series=len(frames))
            + f"<details><summary>numbers ({len(points)} points)</summary>{numbers}</details>")


def stage_metrics(con: Any, run: RunInfo) -> str:
    """Totals per stage and the stage timeline from run_stages, or NO_STAGES."""
    totals = stage_data.stage_totals(con, run.run_id, run.wall_s)
    if totals is None:
        return note(NO_STAGES)
    more = stage_data.more_stages(totals)
    totals = totals[:stage_data.MAX_SERIES]
    points = stage_data.timeline(con, run.run_id, run.started_at,
                                 [(t.stage, t.analysis) for t in totals])
    return ("<h3>Totals per stage</h3>"
            + note("sums of the run's run_stages rows; utilisation: busy seconds over the "
                   "most workers x the run's wall time")
            + stage_totals_table(totals)
            + (note(f"only the first {stage_data.MAX_SERIES} stages shown") if more else "")
            + "<h3>Stage timeline</h3>"
            + note(f"per stage, its ~5 s intervals (at most {stage_data.MAX_POINTS} points "
                   "each: longer runs are summed into wider buckets)")
            + timeline_charts(points))


def stages_section(con: Any, run: RunInfo) -> str:
    """Stage totals and timeline (run_stages), then throughput over time (status_log)."""
    parts = ['<h2 id="stages">Stages and throughput</h2>', stage_metrics(con, run)]
    parts.append("<h3>Throughput over time</h3>")
    buckets = report_data.throughput(con, run)
    if not buckets:
        parts.append(note("no commit times recorded for this run's videos (status_log): "
                          "no throughput over time"))
        return "".join(parts)
    cumulative, total = [], 0
    for b in buckets:
        total += b.videos
        cumulative.append(total)
    chart = figures.throughput_chart([b.start_s for b in buckets], [b.end_s for b in buckets],
                                     [b.frames_per_s for b in buckets], cumulative)
    parts.append(note("when each video's last analysis was committed (status_log.updated_at), "
                      "with the frames it decoded (videos.n_sampled)"))
    parts.append(img(chart, "throughput over time", chart="throughput"))
    parts.append(table(("from s", "to s", "videos finished", "frames", "frames/s"),
                       [(round(b.start_s, 2), round(b.end_s, 2), b.videos, b.frames,
                         round(b.frames_per_s, 2)) for b in buckets], table_id="throughput",
                       row_data=[{"videos": b.videos, "frames": b.frames} for b in buckets]))
    return "".join(parts)


def failures_section(con: Any, run: RunInfo) -> str:
    reasons, left = report_data.failures(con, run.run_id)
    head = '<h2 id="failures">Failures by reason</h2>'
    if not reasons:
        return head + note("no failed videos in this run")
    rows = [(r.reason, r.videos, "\n".join(r.examples)) for r in reasons]
    body = table(("reason", "videos", "examples"), rows, table_id="failures",
                 row_data=[{"reason": r.reason, "count": r.videos} for r in reasons])
    if left:
        body += note(f"{left} more reasons not shown (top {len(reasons)} by videos)")
    return head + body


def labels_section(con: Any, run: RunInfo) -> str:
    parts = ['<h2 id="labels">Labels per model version</h2>']
    distributions = report_data.label_distribution(con, run.run_id)
    if not distributions:
        return parts[0] + note("this run wrote no frame_labels or clip_labels rows")
    parts.append(note(f"the run's rows; top {report_data.MAX_LABELS} labels per model version"))
    for d in distributions:
        title = f"{d.table}, {d.model} @ {d.model_version} ({d.rows:,} rows)"
        labels = [label for label, _ in d.labels]
        counts = [n for _, n in d.labels]
        chart = figures.bar_chart(labels, counts, title, "rows")
        parts.append(f'<div class="labels" data-table="{esc(d.table)}" '
                     f'data-model-version="{esc(d.model_version)}">'
                     f"<h3>{esc(title)}</h3>"
                     + img(chart, f"labels of {d.table} {d.model_version}", chart="labels",
                           table=d.table, model_version=d.model_version)
                     + table(("label", "rows"), d.labels,
                             row_data=[{"label": label, "count": n} for label, n in d.labels])
                     + "</div>")
    return "".join(parts)


def _pictures(pictures: list[Picture], kind: str) -> str:
    parts = []
    for p in pictures:
        parts.append(f'<div class="{kind}" data-uri="{esc(p.uri)}"><h3>{esc(p.uri)}</h3>'
                     f"<p>{esc(p.caption)}</p>")
        if p.error:
            parts.append(f'<p class="err">decode problem: {esc(p.error)}</p>')
        if p.png is not None:
            parts.append(img(p.png, f"{kind} of {p.uri}", chart=kind))
        parts.append(f'<details><summary>numbers</summary><pre>{esc(json.dumps(p.data))}'
                     "</pre></details></div>")
    return "".join(parts)


def _picture_section(con: Any, table: str, title: str, pictures: Callable[[], list[Picture]],
                     intro: str, kind: str) -> str:
    """A section of decoded pictures drawn from `table`, or a note saying why none."""
    head = f'<h2 id="{table}">{title}</h2>'
    if table not in report_data.views(con):
        return head + note(f"the lake has no {table} table")
    drawn = pictures()
    if not drawn:
        return head + note(f"this run wrote no {table}")
    return head + note(intro.format(n=len(drawn))) + _pictures(drawn, kind)


def shots_section(con: Any, run: RunInfo, request: ReportRequest) -> str:
    return _picture_section(
        con, "shots", "Shots",
        lambda: shot_strips(con, run.run_id, request.videos, request.storage),
        "first, middle and last frame of each shot, for the first {n} videos of the run "
        "(by uri)", "shot-strip")


def detections_section(con: Any, run: RunInfo, request: ReportRequest) -> str:
    return _picture_section(
        con, "detections", "Detections",
        lambda: detection_frames(con, run.run_id, request.videos, request.storage),
        "the frames with the most boxes, for the first {n} videos of the run (by uri)",
        "detection-frame")


def training_section(rows: list[dict[str, Any]], where: str) -> str:
    head = '<h2 id="training">Training curves</h2>'
    if not rows:
        return head + note(f"no training_metrics in {where}")
    epochs = [int(r["epoch"]) for r in rows]
    series = {c: [r[c] for r in rows] for c in ("train_loss", "val_loss", "train_acc",
                                                 "val_acc")}
    chart = figures.training_chart(epochs, series)
    columns = report_data.TRAINING_COLUMNS
    return (head + note(f"training_metrics of {where}")
            + img(chart, "training curves", chart="training")
            + table(columns, [[r[c] for c in columns] for r in rows], table_id="training",
                    row_data=[{"epoch": r["epoch"]} for r in rows]))


def evaluation_section(con: Any) -> str:
    from pipeline.evaluation.confusion_png import confusion_png

    head = '<h2 id="evaluation">Evaluation</h2>'
    found = report_data.confusion(con)
    if found is None or not found.classes:
        return head + note("no evaluation tables in the lake (vidlake evaluate writes them)")
    import numpy as np

    summary = found.summary
    png = confusion_png(np.asarray(found.counts, np.int64), found.classes, found.columns)
    cells = [{"truth": t, "predicted": p, "count": found.counts[i][j]}
             for i, t in enumerate(found.classes) for j, p in enumerate(found.columns)]
    body = (note("the lake's latest evaluation (each `vidlake evaluate` replaces it)")
            + table(list(summary), [list(summary.values())], table_id="evaluation-summary")
            + img(png, "confusion matrix", chart="confusion")
            + table(["truth \\ predicted", *found.columns],
                    [[t, *found.counts[i]] for i, t in enumerate(found.classes)],
                    table_id="confusion")
            + "".join(f'<span hidden class="cell" data-truth="{esc(c["truth"])}" '
                      f'data-predicted="{esc(c["predicted"])}" data-count="{c["count"]}">'
                      "</span>" for c in cells))
    if found.classes_left_out:
        body += note(f"{found.classes_left_out} more classes not drawn")
    return head + body


# -- the page -------------------------------------------------------------------
def _training_rows(con: Any, request: ReportRequest) -> tuple[list[dict[str, Any]], str]:
    if request.training_dir is None:
        return report_data.training_metrics(con), f"the lake {request.lake}"
    from pipeline.query.duckdb_views import open_lake, require_lake

    require_lake(request.training_dir, request.storage)
    return (report_data.training_metrics(open_lake(request.training_dir, request.storage).con),
            f"--training-dir {request.training_dir}")


def render(con: Any, request: ReportRequest, warnings: Sequence[str] = ()) -> tuple[str, str]:
    """The run's id and its report's HTML (`warnings`: what the lake's damage
    left out). ConfigError when the lake has no runs or not the one asked."""
    run = report_data.pick_run(con, request.lake, request.run_id)
    training, where = _training_rows(con, request)
    sections = [summary_section(run), stages_section(con, run), failures_section(con, run),
                labels_section(con, run), shots_section(con, run, request),
                detections_section(con, run, request), training_section(training, where),
                evaluation_section(con)]
    title = f"vidlake run {run.run_id}"
    return run.run_id, ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
                        f"<h1>{esc(title)}</h1><p>lake <code>{esc(request.lake)}</code></p>"
                        + "".join(f'<p class="err">{esc(w)}</p>' for w in warnings)
                        + "\n".join(sections) + "</body></html>\n")


def check_output(path: str) -> None:
    """ConfigError for an s3:// output, StorageError unless its folder exists and
    takes a file (checked before any work)."""
    if is_remote(path):
        raise ConfigError(f"--output {path}: the report is written to a local file")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise StorageError(f"--output {path} is a folder; name the .html file")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise StorageError(f"cannot write --output {path}: {exc.strerror or exc}") from None


def write_html(text: str, path: str) -> None:
    """Write through a temp file and a rename: a reader never sees half a report."""
    write_local_atomic(os.path.abspath(path), text.encode("utf-8"))


def write_report(request: ReportRequest) -> str:
    """Open the lake, render its run's report, write it; returns the run_id.
    StorageError/ConfigError for systemic problems (no lake, no runs, unknown
    run, output not writable)."""
    from pipeline.query.duckdb_views import open_lake, require_lake

    check_output(request.output)
    require_lake(request.lake, request.storage)
    views = open_lake(request.lake, request.storage)
    run_id, text = render(views.con, request, views.warnings())
    write_html(text, request.output)
    return run_id
