"""The KubeRay manifests parse, and every RayJob's entrypoint is a vidlake job
whose parser accepts the exact flags the manifest passes."""

from __future__ import annotations

import importlib
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.procs import REPO_ROOT

INFRA = REPO_ROOT / "infra" / "kuberay"
MANIFESTS = sorted(INFRA.glob("*.yaml"))


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_there_are_manifests_for_a_cluster_label_and_train():
    kinds = {(d["kind"], d["metadata"]["name"]) for p in MANIFESTS for d in _documents(p)}
    assert {("RayCluster", "vidlake"), ("RayJob", "vidlake-label"),
            ("RayJob", "vidlake-train")} <= kinds


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_a_ray_resource_with_one_image_per_group(path: Path):
    for doc in _documents(path):
        assert doc["apiVersion"] == "ray.io/v1"
        spec = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
        groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        for group in groups:
            containers = group["template"]["spec"]["containers"]
            assert containers and all(c["image"].startswith("registry.example.com/vidlake:")
                                      for c in containers)


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.name.startswith("rayjob-")],
                         ids=lambda p: p.name)
def test_rayjob_entrypoint_parses_with_the_jobs_own_parser(path: Path):
    (doc,) = _documents(path)
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[:2] == ["python", "-m"] and argv[2].startswith("jobs.")
    job = importlib.import_module(argv[2])
    args = job.build_parser().parse_args(argv[3:])  # SystemExit on an unknown flag
    assert args.output.startswith("s3://")


@pytest.mark.parametrize("path", [p for p in MANIFESTS if p.name.startswith("rayjob-")],
                         ids=lambda p: p.name)
def test_rayjob_entrypoint_module_answers_help(path: Path):
    (doc,) = _documents(path)
    module = shlex.split(doc["spec"]["entrypoint"])[2]
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
