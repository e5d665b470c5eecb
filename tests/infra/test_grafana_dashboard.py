"""infra/grafana/vidlake-dashboard.json parses, every panel has a data source and a
query, and every query names only series that vidlake's exporter produces.

The exported names come from pipeline/observe/ray_metrics.py itself: its metrics are
built against a stand-in `ray.util.metrics` that records each metric's kind and name (no
Ray), and Ray's Prometheus naming is applied to them. That naming was read off Ray 2.60's
metrics endpoint (`ray.init(_metrics_export_port=...)`, a sink's publish() and call(), then
GET /metrics): every name gets the `ray_` prefix, a Counter is served as `<name>_total`, a
Gauge as `<name>`, a Histogram as `<name>_bucket` / `_sum` / `_count` (with an `le` label)."""

from __future__ import annotations

import functools
import json
import re
import sys
import types
from typing import Any

import pytest

from pipeline.observe import ray_metrics
from pipeline.observe.ray_metrics import COUNTERS, GAUGES, TAGS
from tests.procs import REPO_ROOT

DASHBOARD = REPO_ROOT / "infra" / "grafana" / "vidlake-dashboard.json"
PREFIX = "ray_"
SERIES_SUFFIXES = {"counter": ("_total",), "gauge": ("",),
                   "histogram": ("_bucket", "_sum", "_count")}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


# -- what the exporter defines --------------------------------------------------------
@functools.cache
def _defined_metrics() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(kind, name, tag keys) of every metric the exporter creates (built here
    against the stand-in, not through the process-wide cache real runs use)."""
    created: list[tuple[str, str, tuple[str, ...]]] = []

    def kind_of(kind: str) -> type:
        def init(self: Any, name: str, description: str = "",
                 tag_keys: tuple[str, ...] | None = None, **_: Any) -> None:
            created.append((kind, name, tuple(tag_keys or ())))
        return type(kind.title(), (), {"__init__": init})

    fake = types.ModuleType("ray.util.metrics")
    fake.__dict__.update(Counter=kind_of("counter"), Gauge=kind_of("gauge"),
                         Histogram=kind_of("histogram"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "ray.util.metrics", fake)
        ray_metrics._Metrics()
    return tuple(created)


def _series(kinds: set[str] | None = None) -> set[str]:
    """Prometheus names of the series the exporter serves (of metrics of `kinds`)."""
    return {PREFIX + name + suffix for kind, name, _ in _defined_metrics()
            if kinds is None or kind in kinds for suffix in SERIES_SUFFIXES[kind]}


def _series_of_column(column: str) -> str:
    if column in COUNTERS:
        return PREFIX + COUNTERS[column][0] + "_total"
    return PREFIX + GAUGES[column][0]


def test_the_sink_defines_the_tables_counters_and_gauges_and_one_histogram():
    kinds: dict[str, set[str]] = {}
    for kind, name, tags in _defined_metrics():
        kinds.setdefault(kind, set()).add(name)
        assert tags == TAGS, name
    assert kinds["counter"] == {name for name, _ in COUNTERS.values()}
    assert kinds["gauge"] == {name for name, _ in GAUGES.values()}
    assert len(kinds["histogram"]) == 1
    assert "ray_vidlake_stage_frames_total" in _series()  # the naming applied


# -- PromQL: which metric names an expression selects ---------------------------------
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "and", "or", "unless", "offset"}


def _metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions or
    aggregations (followed by `(`), keywords, label names or values, or range durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, $run
    text = re.sub(r"\{[^{}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", "", text)  # ranges: [5m], [$__rate_interval]
    text = GROUPING.sub("", text)  # by (stage, analysis)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end():].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def _grouping_labels(expr: str) -> set[str]:
    return {label.strip() for group in GROUPING.findall(expr) for label in group.split(",")
            if label.strip()}


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (stage) (rate(foo_total{run=~"$run"}[$__rate_interval]))', {"foo_total"}),
    ("histogram_quantile(0.95, sum by (le, stage) (rate(a_bucket[5m])))", {"a_bucket"}),
    ('max(a{x="rate(b)"}) / on (stage) group_left c offset 5m', {"a", "c"}),
    ("sum(rate(x_total[1m])) without (WorkerId) > bool 2e3", {"x_total"}),
    ("up", {"up"}),
])
def test_metric_names_finds_the_selected_series(expr: str, names: set[str]):
    assert _metric_names(expr) == names


# -- the dashboard --------------------------------------------------------------------
def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels() -> list[dict[str, Any]]:
    """Every panel, also those inside collapsed rows."""
    panels = []
    for panel in _dashboard()["panels"]:
        panels.append(panel)
        panels += panel.get("panels", [])
    return [p for p in panels if p.get("type") != "row"]


def _exprs() -> list[str]:
    return [t["expr"] for p in _panels() for t in p.get("targets", [])]


def _variable(name: str) -> dict[str, Any]:
    (variable,) = [v for v in _dashboard()["templating"]["list"] if v["name"] == name]
    return variable


def test_dashboard_is_readable_json_with_a_uid_and_a_recent_schema():
    text = DASHBOARD.read_text()
    dashboard = json.loads(text)
    assert text == json.dumps(dashboard, indent=2) + "\n"  # indent 2, as written
    assert dashboard["uid"] and dashboard["title"]
    assert 36 <= dashboard["schemaVersion"] <= 41
    ids = [p["id"] for p in _panels()]
    assert len(ids) == len(set(ids))


def test_dashboard_has_a_prometheus_datasource_variable_and_a_run_variable():
    datasource = _variable("datasource")
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    run = _variable("run")
    assert run["type"] == "query" and run["datasource"] == DATASOURCE
    query = run["query"]["query"] if isinstance(run["query"], dict) else run["query"]
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
    assert match, query
    assert _metric_names(match[1]) <= _series() and _metric_names(match[1])
    assert match[2] == "run" and "run" in TAGS


@pytest.mark.parametrize("panel", _panels(), ids=lambda p: p["title"])
def test_every_panel_has_the_datasource_and_a_query(panel: dict[str, Any]):
    assert panel["datasource"] == DATASOURCE
    targets = panel["targets"]
    assert targets and all(t["expr"].strip() for t in targets)
    for target in targets:
        assert target.get("datasource", DATASOURCE) == DATASOURCE
    assert len({t["refId"] for t in targets}) == len(targets)


@pytest.mark.parametrize("expr", _exprs())
def test_every_query_names_only_series_the_exporter_serves(expr: str):
    names = _metric_names(expr)
    assert names, f"no metric in {expr!r}"
    assert names <= _series(), sorted(names - _series())
    # grouping by a label the exporter does not set would merge every series into one
    assert _grouping_labels(expr) <= {*TAGS, "le"}, expr
    assert 'run=~"$run"' in expr  # follows the run variable


@pytest.mark.parametrize("expr", _exprs())
def test_queries_use_counters_as_rates_and_buckets_as_quantiles(expr: str):
    names = _metric_names(expr)
    for counter in names & _series({"counter"}):
        assert re.search(rf"\b(?:rate|increase)\({counter}\{{", expr), expr
    for gauge in names & _series({"gauge"}):
        assert not re.search(rf"\b(?:rate|increase|irate)\({gauge}\{{", expr), expr
    for series in names & _series({"histogram"}):
        assert series.endswith("_bucket") and expr.startswith("histogram_quantile("), expr
        assert "le" in _grouping_labels(expr), expr


def test_dashboard_charts_throughput_utilisation_queues_memory_and_call_times():
    used = set().union(*map(_metric_names, _exprs()))
    wanted = {"frames_out", "busy_s", "bytes", "utilisation", "queue_max", "buffer_bytes",
              "gpu_utilisation", "gpu_memory_bytes"}
    assert {_series_of_column(column) for column in wanted} <= used
    (histogram,) = [name for kind, name, _ in _defined_metrics() if kind == "histogram"]
    quantiles = {float(q) for q in re.findall(
        rf"histogram_quantile\(([0-9.]+),[^;]*{PREFIX}{histogram}_bucket", ";".join(_exprs()))}
    assert {0.5, 0.95} <= quantiles
