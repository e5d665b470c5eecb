"""The Kubernetes manifests parse, every RayJob's entrypoint (including the one the
nightly CronJob holds in a ConfigMap) is a vidlake job whose parser accepts the exact
flags the manifest passes, the CronJob has the RBAC and script it needs, and every Ray node
exports its metrics on a port that monitoring.yaml's PodMonitors select and scrape.

kubectl and a cluster are not available here, so nothing is applied: these tests read
the YAML and run the CronJob's script against a stub `kubectl`. The full check is
`kubectl apply --dry-run=server -f infra/kuberay/` on a cluster with the KubeRay CRDs."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.procs import REPO_ROOT

INFRA = REPO_ROOT / "infra" / "kuberay"
MANIFESTS = sorted(INFRA.glob("*.yaml"))
RAY_KINDS = {"RayCluster", "RayJob", "RayService"}
JOB_COMMAND = re.compile(r"\bpython3? -m (jobs\.[A-Za-z_][A-Za-z0-9_]*)")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _embedded(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The Kubernetes objects a ConfigMap holds as YAML text (values without a kind are
    plain data, not objects)."""
    if doc["kind"] != "ConfigMap":
        return []
    found = []
    for text in (doc.get("data") or {}).values():
        for inner in yaml.safe_load_all(text):
            if isinstance(inner, dict) and "kind" in inner:
                found.append(inner)
    return found


def _all_documents() -> list[tuple[str, dict[str, Any]]]:
    """(id, object) for every object in a manifest file or inside one's ConfigMap."""
    out = []
    for path in MANIFESTS:
        for doc in _documents(path):
            out.append((f"{path.name}:{doc['kind']}", doc))
            out += [(f"{path.name}:{doc['metadata']['name']}:{inner['kind']}", inner)
                    for inner in _embedded(doc)]
    return out


def _name(doc: dict[str, Any]) -> str:
    return doc["metadata"].get("name") or doc["metadata"]["generateName"]


def _of_kind(kinds: set[str]) -> list[Any]:
    return [pytest.param(doc, id=ident) for ident, doc in _all_documents()
            if doc["kind"] in kinds]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _job_modules() -> list[str]:
    """Every `jobs.X` module a manifest runs as `python -m jobs.X` anywhere (RayJob
    entrypoints, container commands), including objects embedded in ConfigMaps."""
    found = {m for _, doc in _all_documents() for s in _strings(doc)
             for m in JOB_COMMAND.findall(s)}
    return sorted(found)


def _cronjob_file() -> list[dict[str, Any]]:
    return _documents(INFRA / "cronjob-relabel.yaml")


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and (name is None or _name(d) == name)]
    return doc


def _pod_spec(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


# -- every file ------------------------------------------------------------------------
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_parses_into_named_kubernetes_objects(path: Path):
    docs = _documents(path)
    assert docs, f"{path.name} holds no YAML document"
    for doc in [*docs, *(inner for d in docs for inner in _embedded(d))]:
        assert isinstance(doc, dict) and doc["apiVersion"] and doc["kind"], path.name
        assert _name(doc), (path.name, doc["kind"])


def test_there_are_manifests_for_a_cluster_label_train_and_nightly_relabel():
    kinds = {(d["kind"], _name(d)) for p in MANIFESTS for d in _documents(p)}
    assert {("RayCluster", "vidlake"), ("RayJob", "vidlake-label"),
            ("RayJob", "vidlake-train"), ("RayJob", "vidlake-relabel"),
            ("CronJob", "vidlake-relabel")} <= kinds


@pytest.mark.parametrize("doc", _of_kind(RAY_KINDS))
def test_manifest_is_a_ray_resource_with_one_image_per_group(doc: dict[str, Any]):
    assert doc["apiVersion"] == "ray.io/v1"
    spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in groups:
        containers = group["template"]["spec"]["containers"]
        assert containers and all(c["image"].startswith("registry.example.com/vidlake:")
                                  for c in containers)
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


@pytest.mark.parametrize("doc", _of_kind({"RayJob"}))
def test_rayjob_entrypoint_parses_with_the_jobs_own_parser(doc: dict[str, Any]):
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[:2] == ["python", "-m"] and argv[2].startswith("jobs.")
    job = importlib.import_module(argv[2])
    args = job.build_parser().parse_args(argv[3:])  # SystemExit on an unknown flag
    assert args.output.startswith("s3://")


@pytest.mark.parametrize("doc", _of_kind({"RayJob"}))
def test_rayjob_deletes_its_cluster_and_retries(doc: dict[str, Any]):
    spec = doc["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0 and spec["backoffLimit"] >= 1


def test_manifests_run_label_train_and_relabel():
    assert {"jobs.label", "jobs.train", "jobs.relabel"} <= set(_job_modules())


@pytest.mark.parametrize("module", _job_modules())
def test_every_job_module_a_manifest_runs_answers_help(module: str):
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]


# -- the nightly relabel ---------------------------------------------------------------
def test_nightly_rayjob_is_rayjob_relabel_under_a_generated_name():
    docs = _cronjob_file()
    cronjob = _one(docs, "CronJob", "vidlake-relabel")
    (volume,) = [v for v in _pod_spec(cronjob)["volumes"] if "configMap" in v]
    configmap = _one(docs, "ConfigMap", volume["configMap"]["name"])
    (nightly,) = _embedded(configmap)
    standalone = _one(_documents(INFRA / "rayjob-relabel.yaml"), "RayJob", "vidlake-relabel")

    assert nightly["kind"] == "RayJob" and nightly["apiVersion"] == "ray.io/v1"
    # A fixed name would collide with the night before: `kubectl create` with generateName.
    assert "name" not in nightly["metadata"]
    assert nightly["metadata"]["generateName"] == "vidlake-relabel-"
    assert nightly["metadata"]["labels"] == standalone["metadata"]["labels"]
    assert nightly["spec"]["entrypoint"] == standalone["spec"]["entrypoint"]
    assert nightly["spec"] == standalone["spec"], "cronjob-relabel.yaml's copy drifted"

    from jobs.relabel import build_parser

    argv = shlex.split(nightly["spec"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "jobs.relabel"]
    args = build_parser().parse_args(argv[3:])
    assert args.lock_wait > 0  # an overlapping scheduled run waits instead of exiting 3
    assert args.max_attempts >= 1 and not args.dry_run


def test_cronjob_runs_nightly_one_at_a_time():
    cronjob = _one(_cronjob_file(), "CronJob", "vidlake-relabel")
    assert cronjob["apiVersion"] == "batch/v1"
    spec = cronjob["spec"]
    assert len(spec["schedule"].split()) == 5
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    assert _pod_spec(cronjob)["restartPolicy"] in ("Never", "OnFailure")


def test_cronjob_service_account_may_create_rayjobs():
    docs = _cronjob_file()
    account = _pod_spec(_one(docs, "CronJob", "vidlake-relabel"))["serviceAccountName"]
    _one(docs, "ServiceAccount", account)
    (binding,) = [b for b in docs if b["kind"] == "RoleBinding"
                  and {"kind": "ServiceAccount", "name": account} in [
                      {k: s[k] for k in ("kind", "name")} for s in b["subjects"]]]
    assert binding["roleRef"]["kind"] == "Role"
    role = _one(docs, "Role", binding["roleRef"]["name"])
    granted = {(group, resource, verb) for rule in role["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]
               for verb in rule["verbs"]}
    # create the night's RayJob; get/list to see whether the last one still runs
    assert {("ray.io", "rayjobs", v) for v in ("create", "get", "list")} <= granted
    assert {verb for _, _, verb in granted} <= {"create", "get", "list"}  # nothing more


# -- the CronJob's script, against a stub kubectl ---------------------------------------
STUB_KUBECTL = """#!/usr/bin/env bash
echo "$*" >> "$KUBECTL_CALLS"
case "$1" in
  get) printf '%b' "$FAKE_RAYJOBS" ;;
  create) echo "rayjob.ray.io/vidlake-relabel-x7k2q" ;;
  *) echo "stub kubectl: unexpected $1" >&2; exit 1 ;;
esac
"""


def _container(cronjob: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod_spec(cronjob)["containers"]
    return container


def _run_script(tmp_path: Path, rayjobs: str) -> tuple[subprocess.CompletedProcess[str],
                                                       list[str]]:
    """The CronJob container's bash script with `kubectl` a stub whose `get` prints
    `rayjobs` (the script's jsonpath output); (the run, kubectl calls)."""
    container = _container(_one(_cronjob_file(), "CronJob", "vidlake-relabel"))
    assert container["command"] == ["/bin/bash", "-c"]
    (script,) = container["args"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "kubectl"
    stub.write_text(STUB_KUBECTL)
    stub.chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "KUBECTL_CALLS": str(calls),
             "FAKE_RAYJOBS": rayjobs})
    return done, calls.read_text().splitlines()


def test_cronjob_script_is_valid_bash():
    (script,) = _container(_one(_cronjob_file(), "CronJob", "vidlake-relabel"))["args"]
    done = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("rayjobs", [
    "",
    "vidlake-relabel-ab12c Complete\\nvidlake-relabel-de34f Failed\\n",
], ids=["first-night", "all-finished"])
def test_cronjob_script_creates_the_mounted_rayjob(tmp_path: Path, rayjobs: str):
    docs = _cronjob_file()
    cronjob = _one(docs, "CronJob", "vidlake-relabel")
    done, calls = _run_script(tmp_path, rayjobs)
    assert done.returncode == 0, done.stderr
    assert calls[0].startswith("get rayjobs")
    (create,) = [c.split() for c in calls if c.startswith("create")]
    # It creates (never applies) the file the ConfigMap volume puts in the container.
    (mount,) = _container(cronjob)["volumeMounts"]
    (volume,) = [v for v in _pod_spec(cronjob)["volumes"] if v["name"] == mount["name"]]
    (key,) = _one(docs, "ConfigMap", volume["configMap"]["name"])["data"]
    assert create[:3] == ["create", "-f", f"{mount['mountPath']}/{key}"]
    assert "vidlake-relabel-x7k2q" in done.stdout


@pytest.mark.parametrize("rayjobs", [
    "vidlake-relabel-ab12c Complete\\nvidlake-relabel-de34f Running\\n",
    "vidlake-relabel-de34f Retrying\\n",
    "vidlake-relabel-de34f \\n",  # just created: no status yet
], ids=["running", "retrying", "new"])
def test_cronjob_script_skips_a_night_while_a_relabel_is_active(tmp_path: Path, rayjobs: str):
    done, calls = _run_script(tmp_path, rayjobs)
    assert done.returncode == 0, done.stderr
    assert not [c for c in calls if c.startswith("create")]
    assert "vidlake-relabel-de34f" in done.stdout and "not starting" in done.stdout


# -- metrics: every Ray node exports them, the PodMonitors scrape them ------------------
MONITORING = INFRA / "monitoring.yaml"
METRICS_PORT = "metrics"  # the container port name monitoring.yaml's PodMonitors scrape


def _cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def _node_groups(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(node type, group name, group spec) of a Ray resource's head and worker groups, with
    the node types and head group name KubeRay puts in the pods' labels."""
    spec = _cluster_spec(doc)
    return [("head", "headgroup", spec["headGroupSpec"]),
            *(("worker", g["groupName"], g) for g in spec["workerGroupSpecs"])]


def _container_ports(pod_spec: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in pod_spec["containers"]
            for p in c.get("ports", []) if "name" in p}


def _ray_pods() -> list[tuple[str, dict[str, str], dict[str, int]]]:
    """(id, labels, named container ports) of the pods KubeRay makes for every Ray node
    group in every manifest (the CronJob's embedded RayJob too). The labels are the group
    template's plus those KubeRay sets on every Ray pod (ray-operator's labelPod:
    ray.io/cluster, ray.io/node-type, ray.io/group, ray.io/is-ray-node), which win."""
    pods = []
    for ident, doc in _all_documents():
        if doc["kind"] not in RAY_KINDS:
            continue
        for node_type, group_name, group in _node_groups(doc):
            template = group["template"]
            labels = {**((template.get("metadata") or {}).get("labels") or {}),
                      "ray.io/cluster": _name(doc), "ray.io/node-type": node_type,
                      "ray.io/group": group_name, "ray.io/is-ray-node": "yes"}
            pods.append((f"{ident}:{group_name}", labels, _container_ports(template["spec"])))
    return pods


def _pod_monitors() -> list[dict[str, Any]]:
    return [d for d in _documents(MONITORING) if d["kind"] == "PodMonitor"]


def _selects(monitor: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = monitor["spec"]["selector"]
    assert set(selector) == {"matchLabels"}, "only matchLabels selectors are modelled here"
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


@pytest.mark.parametrize("doc", _of_kind(RAY_KINDS))
def test_every_ray_node_group_exports_metrics_on_the_port_named_metrics(doc: dict[str, Any]):
    for _, group_name, group in _node_groups(doc):
        port = group["rayStartParams"].get("metrics-export-port")
        # rayStartParams values are strings in the CRD; a bare 8080 fails validation
        assert isinstance(port, str) and port.isdigit(), (group_name, port)
        # KubeRay runs Ray in the first container
        ray_container = group["template"]["spec"]["containers"][0]
        ports = [(p.get("name"), p["containerPort"]) for p in ray_container.get("ports", [])]
        assert (METRICS_PORT, int(port)) in ports, (group_name, ports)
        numbers = [number for _, number in ports]
        assert len(numbers) == len(set(numbers)), (group_name, ports)


def test_monitoring_yaml_holds_a_head_and_a_worker_pod_monitor():
    monitors = _pod_monitors()
    assert [d["kind"] for d in _documents(MONITORING)] == ["PodMonitor", "PodMonitor"]
    assert all(m["apiVersion"] == "monitoring.coreos.com/v1" for m in monitors)
    node_types = sorted(m["spec"]["selector"]["matchLabels"]["ray.io/node-type"]
                        for m in monitors)
    assert node_types == ["head", "worker"]
    for monitor in monitors:
        endpoints = monitor["spec"]["podMetricsEndpoints"]
        assert endpoints and all(e["port"] == METRICS_PORT for e in endpoints), endpoints


def test_pod_monitors_select_every_ray_pod_exactly_once():
    monitors = _pod_monitors()
    pods = _ray_pods()
    assert len(pods) >= 5 * 3  # 5 Ray resources with a head and 2 worker groups each
    for ident, labels, _ in pods:
        selecting = [_name(m) for m in monitors if _selects(m, labels)]
        # none: the pod is never scraped; two: every series is stored twice
        assert len(selecting) == 1, (ident, selecting)
        (monitor,) = [m for m in monitors if _selects(m, labels)]
        assert (monitor["spec"]["selector"]["matchLabels"]["ray.io/node-type"]
                == labels["ray.io/node-type"]), ident


def test_pod_monitors_scrape_a_port_every_selected_pod_has():
    for monitor in _pod_monitors():
        selected = [(ident, ports) for ident, labels, ports in _ray_pods()
                    if _selects(monitor, labels)]
        assert selected, f"{_name(monitor)} selects no Ray pod of the manifests"
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            for ident, ports in selected:
                assert endpoint["port"] in ports, (_name(monitor), ident, sorted(ports))


def test_pod_monitors_rely_on_kuberays_labels_not_only_vidlakes():
    """The CronJob's kubectl pod carries app.kubernetes.io/name: vidlake as the Ray pods'
    templates do: only the label KubeRay adds (ray.io/node-type) keeps it out."""
    cronjob = _one(_cronjob_file(), "CronJob", "vidlake-relabel")
    labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "vidlake"
    assert not [_name(m) for m in _pod_monitors() if _selects(m, labels)]
